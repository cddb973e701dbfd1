"""The plugin zip, built once per session (with its sam2unext-geo wheel), for the zip and QGIS tests."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def plugin_zip(tmp_path_factory) -> Path:
    """``qgis_plugin/build_zip.py -o plugin.zip`` (builds the wheel with ``pip wheel --no-deps``)."""
    out = tmp_path_factory.mktemp("plugin_zip") / "plugin.zip"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "qgis_plugin" / "build_zip.py"), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="session")
def sam2unext_wheel(plugin_zip, tmp_path_factory) -> Path:
    """The wheel the zip carries, extracted."""
    folder = tmp_path_factory.mktemp("wheel")
    with zipfile.ZipFile(plugin_zip) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".whl"))
        (folder / Path(name).name).write_bytes(zf.read(name))
    return folder / Path(name).name
