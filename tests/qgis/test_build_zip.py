"""The make-free zip builder produces the layout QGIS's "Install from ZIP" expects, with the matching wheel."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_build_zip_layout(plugin_zip):
    with zipfile.ZipFile(plugin_zip) as zf:
        names = zf.namelist()
        meta = configparser.ConfigParser()
        meta.read_string(zf.read("sam2unext_geo/metadata.txt").decode("utf-8"))
    assert {n.split("/")[0] for n in names} == {"sam2unext_geo"}
    for required in (
        "__init__.py",
        "metadata.txt",
        "LICENSE",
        "icon.png",
        "runner.py",
        "provider.py",
        "installer.py",
        "install_dialog.py",
        "aoi.py",
    ):
        assert f"sam2unext_geo/{required}" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    general = meta["general"]
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["hasProcessingProvider"] == "yes"
    assert f"sam2unext_geo/{general['icon']}" in names
    # no placeholder contact data: either real values or none
    assert not any("sam2unext-geo/sam2unext-geo" in general.get(k, "") for k in ("repository", "tracker", "homepage"))
    assert "noreply" not in general.get("email", "")
    assert "Tested with QGIS 3.22" in general["about"]
    # the wheel of this checkout, at the plugin's version
    version = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    wheels = [n for n in names if n.endswith(".whl")]
    assert wheels == [f"sam2unext_geo/wheels/sam2unext_geo-{version}-py3-none-any.whl"], wheels
    assert general["version"] == version


def test_build_zip_refuses_a_mismatched_wheel(tmp_path, sam2unext_wheel):
    wrong = tmp_path / "sam2unext_geo-9.9.9-py3-none-any.whl"
    wrong.write_bytes(sam2unext_wheel.read_bytes())
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "qgis_plugin" / "build_zip.py"),
            "-o",
            str(tmp_path / "z.zip"),
            "--wheel",
            str(wrong),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "9.9.9" in proc.stderr and not (tmp_path / "z.zip").exists()
