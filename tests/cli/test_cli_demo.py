"""``demo``: the whole pipeline on a generated scene with the bundled demo weights.

A smaller scene than the documented one (3072 px) keeps the test fast; it still runs 16 tiles
with overlap, blending and stitching.
"""

from __future__ import annotations

import re

import geopandas as gpd
import pytest
import rasterio

from cli_helpers import run_cli

DEMO_FILES = [
    "demo_quicklook.png",
    "demo_scene.tif",
    "demo_scene_prob.tif",
    "demo_scene_prob_polygons.gpkg",
    "demo_truth.tif",
]


@pytest.mark.slow
def test_demo_runs_the_pipeline_and_meets_the_iou_bars(tmp_path):
    out = tmp_path / "demo"
    res = run_cli("demo", "-o", out, "--size", "768", "--seed", "5", "--progress", "none")
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == DEMO_FILES

    tiled = float(re.search(r"IoU against the generated truth: ([0-9.]+)", res.stdout).group(1))
    whole = float(re.search(r"untiled: ([0-9.]+)", res.stdout).group(1))
    assert tiled >= 0.9, res.stdout
    assert tiled >= whole - 0.01, res.stdout  # tiling must not cost accuracy
    assert "synthetic" in res.stdout  # says plainly what the demo weights know

    with rasterio.open(out / "demo_scene.tif") as scene, rasterio.open(out / "demo_scene_prob.tif") as prob:
        assert scene.crs.to_epsg() == 32633 and prob.crs == scene.crs and prob.transform == scene.transform
    assert gpd.read_file(out / "demo_scene_prob_polygons.gpkg").crs == scene.crs
    with open(out / "demo_quicklook.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_demo_refuses_to_overwrite_without_the_flag(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo_scene_prob.tif").write_bytes(b"old")
    res = run_cli("demo", "-o", out, "--size", "256", "--no-quicklook", "--progress", "none")
    assert res.returncode == 2 and "already exists" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["demo_scene_prob.tif"]
