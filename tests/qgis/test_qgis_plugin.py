"""Runs the QGIS plugin's checks inside the real QGIS (system python3 + python3-qgis), headless.

The checks live in ``tests/qgis/inside_qgis.py`` (QGIS's Python cannot import this venv's
packages and vice versa); this file runs them once under ``/usr/bin/python3`` with
``QT_QPA_PLATFORM=offscreen`` and an isolated QGIS profile, and turns each result into a test.
The real ``sam2unext-geo`` of this venv runs the task and ``qgis_process`` checks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = os.environ.get("QGIS_PYTHON", "/usr/bin/python3")
CHECKS = [
    "load_unload",
    "zip_install",
    "desktop_app",
    "dialog_options",
    "missing_environment",
    "task_adds_layers",
    "cancel_leaves_nothing",
    "cancel_keeps_other_runs",
    "background_check",
    "stage_and_error_words",
    "aoi_plugin",
    "installer",
    "processing_model",
    "qgis_process",
]

pytestmark = [pytest.mark.qgis, pytest.mark.slow]  # the one QGIS run behind these tests: ~45 s


def _qgis_importable() -> str | None:
    """None when QGIS's Python bindings import, else the reason."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} not found"
    proc = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import qgis.core"],
        capture_output=True,
        text=True,
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
        timeout=120,
    )
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["failed"])[-1]


def _venv_cli() -> str:
    exe = Path(sys.executable).parent / "sam2unext-geo"
    return str(exe) if exe.exists() else (shutil.which("sam2unext-geo") or str(exe))


@pytest.fixture(scope="module")
def qgis_results(tmp_path_factory, sam2unext_wheel) -> dict:
    reason = _qgis_importable()
    if reason:
        pytest.skip(
            f"QGIS Python bindings unavailable ({SYSTEM_PYTHON} -c 'import qgis.core': {reason}); "
            "install Debian qgis + python3-qgis"
        )
    tmp = tmp_path_factory.mktemp("qgis_profile")
    runtime = tmp / "runtime"
    runtime.mkdir(mode=0o700)
    out = tmp / "results.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(
        QT_QPA_PLATFORM="offscreen",
        XDG_CONFIG_HOME=str(tmp / "config"),
        XDG_DATA_HOME=str(tmp / "data"),
        XDG_RUNTIME_DIR=str(runtime),
    )
    proc = subprocess.run(
        [
            SYSTEM_PYTHON,
            str(HERE / "inside_qgis.py"),
            "--results",
            str(out),
            "--real-cli",
            _venv_cli(),
            "--wheel",
            str(sam2unext_wheel),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if not out.exists():
        pytest.fail(f"inside_qgis.py crashed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    results = json.loads(out.read_text())
    results["_log"] = proc.stdout + proc.stderr
    return results


@pytest.mark.parametrize("name", CHECKS)
def test_inside_qgis(qgis_results, name):
    result = qgis_results.get(name)
    assert result is not None, f"check {name} did not run:\n{qgis_results['_log'][-3000:]}"
    if result["status"] == "skipped":
        pytest.skip(result["detail"])
    assert result["status"] == "passed", result["detail"]
