"""``predict`` and ``vectorize`` driven as a user would: outputs, CRS, JSON stream, summary."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import rasterio

from cli_helpers import json_events, run_cli


def test_predict_writes_cog_and_polygons_with_input_crs_and_json_stream(scene):
    res = run_cli("predict", scene, "--preset", "sam2unext-test", "--progress", "json", "--batch-size", "8")
    assert res.returncode == 0, res.stderr
    assert "RANDOM" in res.stderr  # random-weight preset is announced on stderr, not stdout

    events = json_events(res.stdout)
    assert [e["stage"] for e in events[:2]] == ["load", "load"]  # the model loads before the scene starts
    assert events[2]["event"] == "start" and events[2]["tiles"] == 4  # 384 px, 256 px tiles
    assert events[-1] == {"event": "complete", "scenes": 1, "seconds": events[-1]["seconds"]}
    assert {e["event"] for e in events} <= {"start", "progress", "done", "complete"}
    done = [e for e in events if e["event"] == "done"]
    assert len(done) == 1 and done[0]["tiles_run"] == 4

    prob, vector = scene.with_name("scene_prob.tif"), scene.with_name("scene_prob_polygons.gpkg")
    assert done[0]["probability"] == str(prob) and done[0]["vector"] == str(vector)
    with rasterio.open(scene) as src, rasterio.open(prob) as out:
        assert out.crs == src.crs and out.transform == src.transform
        assert (out.width, out.height, out.count) == (src.width, src.height, 1)
        # GDAL marks a file LAYOUT=COG only when its COG driver wrote it (tiles, then overviews
        # when the raster is larger than a block; this 384 px scene fits in one block)
        assert out.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert out.profile["tiled"] and out.compression is not None
        assert out.read(1).dtype == np.uint8
        crs = src.crs
    gdf = gpd.read_file(vector)
    assert gdf.crs == crs


def test_predict_many_scenes_from_a_glob_into_a_folder(scenes_dir, tmp_path):
    out = tmp_path / "results"
    res = run_cli(
        "predict",
        f"{scenes_dir}/[ab]*a.tif",
        "-o",
        out,
        "--checkpoint",
        "demo",
        "--format",
        "geojson",
        "--progress",
        "none",
        "--batch-size",
        "8",
    )
    assert res.returncode == 0, res.stderr
    assert "synthetic" in res.stderr  # the demo-weights note
    assert sorted(p.name for p in out.iterdir()) == [
        "alpha_prob.tif",
        "alpha_prob_polygons.geojson",
        "beta_prob.tif",
        "beta_prob_polygons.geojson",
    ]
    assert "total: 2 scenes" in res.stdout and "found" in res.stdout
    for name in ("alpha", "beta"):
        with rasterio.open(scenes_dir / f"{name}.tif") as src:
            assert gpd.read_file(out / f"{name}_prob_polygons.geojson").crs == src.crs
            with rasterio.open(out / f"{name}_prob.tif") as prob:
                assert prob.crs == src.crs and prob.shape == src.shape


def test_vectorize_rethresholds_a_probability_raster(scenes_dir, tmp_path):
    # A probability raster made from the truth mask: polygons must cover the truth exactly.
    with rasterio.open(scenes_dir / "alpha_truth.tif") as src:
        truth = src.read(1)
        profile = src.profile
        pixel_area = abs(src.transform.a * src.transform.e)
    prob_path = tmp_path / "prob.tif"
    with rasterio.open(prob_path, "w", **profile) as dst:
        dst.write((truth * 230).astype(np.uint8), 1)

    res = run_cli("vectorize", prob_path, "-o", tmp_path / "objects.fgb", "--threshold", "0.6")
    assert res.returncode == 0, res.stderr
    gdf = gpd.read_file(tmp_path / "objects.fgb")
    assert gdf.crs == profile["crs"] and len(gdf) > 0
    assert np.isclose(gdf.area.sum(), truth.sum() * pixel_area, rtol=1e-6)
    assert f"{len(gdf)} polygons" in res.stdout

    high = run_cli("vectorize", prob_path, "-o", tmp_path / "none.gpkg", "--threshold", "0.95")
    assert high.returncode == 0, high.stderr
    assert len(gpd.read_file(tmp_path / "none.gpkg")) == 0
