"""The plugin's band field takes any band count, as the command does (multispectral models)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "qgis_plugin"))
from sam2unext_geo import commands  # noqa: E402 - pure Python, no QGIS


def test_band_field_accepts_any_count():
    assert commands.normalize_bands("4, 3,2 ,8") == "4,3,2,8"
    assert commands.normalize_bands("1 2 3 4 5 6 7 8 9 10 11 12 13") == ",".join(map(str, range(1, 14)))
    args = commands.predict_args(
        "sam2unext-geo",
        commands.PredictOptions(scene="s.tif", out_dir="o", checkpoint="m.safetensors", bands="4,3,2,8"),
    )
    assert args[args.index("--bands") + 1] == "4,3,2,8"
