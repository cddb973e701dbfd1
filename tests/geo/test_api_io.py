"""xarray in/out, GeoDataFrame out, JSON progress stream, describe_raster."""

import json

import numpy as np
import rasterio

from sam2unext.geo import JsonProgress, describe_raster, predict_raster
from sam2unext.geo.demo.stand_ins import PixelModel

from geo_helpers import expected_uint8


def open_rasterio(path):
    """``rioxarray.open_rasterio``, imported by the worker that runs this file only (xarray, pandas)."""
    import rioxarray

    return rioxarray.open_rasterio(path)


def test_xarray_in_and_out(rgb_raster, tmp_path):
    da = open_rasterio(rgb_raster)
    res = predict_raster(
        da,
        tmp_path / "o.tif",
        model=PixelModel(32, 14),
        vector=True,
        progress="none",
        as_xarray=True,
        as_geodataframe=True,
    )
    out = res.data_array
    assert out.rio.crs == da.rio.crs
    assert out.shape == da.shape[1:]
    assert out.rio.transform() == da.rio.transform()
    np.testing.assert_array_equal(out.values.astype(np.uint8), expected_uint8(rgb_raster)[0])
    assert res.geodataframe is not None and res.geodataframe.crs == da.rio.crs
    assert len(res.geodataframe) > 0


def test_xarray_without_output_leaves_no_folder_on_failure(rgb_raster, tmp_path, monkeypatch):
    import tempfile

    import pytest

    from sam2unext.errors import InputError

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    da = open_rasterio(rgb_raster)
    with pytest.raises(InputError, match="band"):
        predict_raster(da, model=PixelModel(32, 14), bands=(9, 9, 9), progress="none")
    assert list(temp.iterdir()) == []


def test_json_progress_stream(rgb_raster, tmp_path, capsys):
    res = predict_raster(rgb_raster, tmp_path / "o.tif", model=PixelModel(32, None), progress="json")
    lines = capsys.readouterr().out.splitlines()
    events = [json.loads(line) for line in lines]
    assert events[0] == {"event": "progress", "stage": "load", "done": 0, "total": 1}
    assert events[1] == {"event": "progress", "stage": "load", "done": 1, "total": 1}
    start = events[2]
    assert {k: start[k] for k in ("event", "scene", "tiles", "width", "height")} == {
        "event": "start",
        "scene": "rgb.tif",
        "tiles": res.tiles_run,
        "width": 173,
        "height": 150,
    }
    assert start["bands"] == [1, 2, 3]
    assert start["chunks"] == res.chunks == 1 and start["computations"] == res.tiles_computed == res.tiles_run
    progress = [e for e in events if e["event"] == "progress"]
    assert {e["stage"] for e in progress} >= {"predict", "write", "vectorize"}
    predict = [e for e in progress if e["stage"] == "predict"]
    assert predict[-1]["done"] == predict[-1]["total"] == res.tiles_run
    assert [e["done"] for e in predict] == sorted(e["done"] for e in predict)
    done = events[-1]
    assert done["event"] == "done" and done["probability"] == str(res.probability)
    assert done["vector"] == str(res.vector) and done["tiles_skipped"] == 0
    assert isinstance(done["seconds"], float) and done["area"] == res.area


def test_json_error_and_complete(capsys):
    p = JsonProgress()
    p.error("input x.tif does not exist", 2)
    p.error("x_prob.tif exists; pass --overwrite", 2, ["overwrite"])
    p.complete(3, 1.5)
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert events == [
        {"event": "error", "message": "input x.tif does not exist", "exit_code": 2},
        {"event": "error", "message": "x_prob.tif exists; pass --overwrite", "exit_code": 2, "options": ["overwrite"]},
        {"event": "complete", "scenes": 3, "seconds": 1.5},
    ]
    assert captured.err == ""  # the command prints the stderr line itself


def test_describe_raster(uint16_alpha_raster):
    info = describe_raster(uint16_alpha_raster, tile_size=64, overlap=0.25)
    assert (info["width"], info["height"], info["count"]) == (140, 120, 4)
    assert info["default_bands"] == [1, 2, 3]
    assert info["crs"] == "EPSG:32633" and info["tiles"] == 9
    with rasterio.open(uint16_alpha_raster) as src:
        assert info["transform"] == list(src.transform)[:6]


def test_describe_raster_measures_time_with_a_model(uint16_alpha_raster):
    info = describe_raster(uint16_alpha_raster, preset="sam2unext-test", device="cpu", overlap=0.25, batch_size=2)
    assert info["tile_size"] == 256 and info["tiles"] == 1 and info["chunks"] == 1
    assert info["model"] == "sam2unext-test" and info["parameters"] > 100_000
    assert info["seconds_per_tile"] > 0 and info["estimated_seconds"] == info["seconds_per_tile"] * 1
    assert info["bands_used"] == [1, 2, 3] and len(info["stretch"]) == 3


def test_random_weights_are_announced_in_the_api_words(rgb_raster, tmp_path, capsys):
    predict_raster(
        rgb_raster,
        tmp_path / "o.tif",
        preset="sam2unext-test",
        device="cpu",
        tile_size=64,
        vector=False,
        progress="none",
    )
    err = capsys.readouterr().err
    assert "RANDOM weights" in err and "checkpoint='FILE'" in err and "--checkpoint" not in err
