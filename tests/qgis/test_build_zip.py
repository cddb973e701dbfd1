"""The make-free zip builder produces the layout QGIS's "Install from ZIP" expects."""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_build_zip_layout(tmp_path):
    out = tmp_path / "plugin.zip"
    proc = subprocess.run([sys.executable, str(ROOT / "qgis_plugin" / "build_zip.py"), "-o", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        meta = configparser.ConfigParser()
        meta.read_string(zf.read("sam2unext_geo/metadata.txt").decode("utf-8"))
    assert {n.split("/")[0] for n in names} == {"sam2unext_geo"}
    for required in ("__init__.py", "metadata.txt", "LICENSE", "icon.png", "runner.py", "provider.py"):
        assert f"sam2unext_geo/{required}" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert meta["general"]["qgisMinimumVersion"] == "3.22"
    assert meta["general"]["hasProcessingProvider"] == "yes"
    assert f"sam2unext_geo/{meta['general']['icon']}" in names
