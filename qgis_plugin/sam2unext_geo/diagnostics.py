"""*Copy diagnostics*: the versions and last error a bug report needs, as plain text."""

from __future__ import annotations

import platform
from typing import Optional

_LAST_ERROR: list = []


def remember_error(message: str) -> None:
    """Keep the latest error shown to the user (for the diagnostics text)."""
    _LAST_ERROR[:] = [message]


def last_error() -> Optional[str]:
    return _LAST_ERROR[0] if _LAST_ERROR else None


def plugin_version() -> str:
    """``version`` from the plugin's metadata.txt."""
    import configparser
    import os

    meta = configparser.ConfigParser()
    meta.read(os.path.join(os.path.dirname(__file__), "metadata.txt"), encoding="utf-8")
    return meta.get("general", "version", fallback="?")


def diagnostics_text(
    qgis_version: str, executable: Optional[str], probe: Optional[dict], problem: Optional[str] = None
) -> str:
    """Lines ``key: value``: QGIS, plugin, OS, environment, Python, torch, CUDA, GPU, last error.

    Args:
        qgis_version: ``Qgis.QGIS_VERSION``.
        executable: the configured or found ``sam2unext-geo`` (None: not found).
        probe: :func:`environment.probe_environment` result, or None when it failed / did not run.
        problem: why the environment check failed, if it did.
    """
    probe = probe or {}
    gpu = probe.get("gpu_name") or {True: "CUDA GPU (name unknown)", False: "none visible to torch"}.get(
        probe.get("gpu"), "unknown"
    )
    lines = [
        f"QGIS: {qgis_version}",
        f"plugin: sam2unext_geo {plugin_version()}",
        f"OS: {platform.platform()}",
        f"sam2unext-geo command: {executable or 'not found'}",
        f"sam2unext-geo version: {probe.get('version', 'unknown')}",
        f"environment Python: {probe.get('python', 'unknown')}",
        f"torch: {probe.get('torch') or probe.get('torch_error') or 'unknown'}",
        f"torchvision: {probe.get('torchvision') or probe.get('torchvision_error') or 'unknown'}",
        f"CUDA (torch build): {probe.get('cuda') or ('none (CPU build)' if probe.get('torch') else 'unknown')}",
        f"GPU: {gpu}",
    ]
    if problem:
        lines.append(f"environment problem: {problem}")
    lines.append(f"last error: {last_error() or 'none'}")
    return "\n".join(lines)
