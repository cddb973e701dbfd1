"""``predict``/``vectorize``/``info`` with real units on a geographic scene, ``--regularize`` and ``--tta``."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
import rasterio
from affine import Affine

from sam2unext.geo.demo.demo_scene import generate_scene

from cli_helpers import run_cli

GSD = 0.5


@pytest.fixture
def wgs84_scene(tmp_path):
    """The 256 px demo scene (0.5 m per pixel) written in EPSG:4326 at 60° N, and its truth area in m²."""
    demo = generate_scene(256, seed=7)
    lat = 60.0
    transform = Affine(GSD / 55_800.0, 0, 13.0, 0, -GSD / 111_412.0, lat)
    path = tmp_path / "wgs84.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=256, height=256, count=3, dtype="uint8", crs="EPSG:4326", transform=transform
    ) as dst:
        dst.write(demo.image)
    return path, float(demo.truth.sum()) * GSD**2


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_geographic_scene_gets_square_metres_min_area_regularize_and_tta(wgs84_scene, tmp_path):
    scene, truth_m2 = wgs84_scene
    args = ["predict", scene, "-o", tmp_path / "out", "--checkpoint", "demo", "--min-area", "20"]
    res = run_cli(*args, "--tta", "flip", "--regularize", "--progress", "json")
    assert res.returncode == 0, res.stderr
    events = _events(res.stdout)
    start = next(e for e in events if e["event"] == "start")
    done = next(e for e in events if e["event"] == "done")
    assert start["forward_passes"] == 2 * start["computations"]
    assert done["area_unit"] == "m²" and done["area_text"].endswith(("m²", "ha"))
    assert done["area"] == pytest.approx(truth_m2, rel=0.25)  # the demo weights find the demo objects
    gdf = gpd.read_file(done["vector"])
    assert len(gdf) > 0 and (gdf["area"] >= 20).all() and gdf.is_valid.all()
    text = run_cli(*args, "--overwrite", "--progress", "none")
    assert text.returncode == 0 and "degree" not in text.stdout
    assert (" m² found" in text.stdout) or (" ha found" in text.stdout)


def test_vectorize_regularize_and_info_tta(wgs84_scene, tmp_path):
    scene, _ = wgs84_scene
    assert run_cli("predict", scene, "-o", tmp_path, "--checkpoint", "demo", "--progress", "none").returncode == 0
    prob = tmp_path / "wgs84_prob.tif"
    out = run_cli("vectorize", prob, "-o", tmp_path / "r.gpkg", "--regularize", "--regularize-tolerance", "1")
    assert out.returncode == 0 and (" m² at threshold" in out.stdout or " ha at threshold" in out.stdout)
    squared = gpd.read_file(tmp_path / "r.gpkg")
    plain = gpd.read_file(tmp_path / "wgs84_prob_polygons.gpkg")
    assert len(squared) == len(plain)  # none disappears or merges
    vertices = lambda g: sum(len(p.exterior.coords) for p in g.geometry)  # noqa: E731
    assert vertices(squared) < vertices(plain) / 3
    info = run_cli("info", scene, "--tile-size", "128", "--tta", "d4", "--json")
    facts = json.loads(info.stdout)
    assert facts["forward_passes"] == 8 * facts["computations"] and "geodesic" in facts["units"]
    refused = run_cli("predict", scene, "-o", tmp_path / "x", "--checkpoint", "demo", "--regularize-tolerance", "-1")
    assert refused.returncode == 2 and "--regularize-tolerance" in refused.stderr
