"""Issue 10: every real raster gives a correct result or a clear refusal.

Small generated rasters of the kinds users have: float32 with NaN and no nodata tag, an
all-NaN raster, 6 bands with and without colour interpretation, a truncated file, no
georeferencing, tiny scenes, striped sources through the xarray path.
"""

from __future__ import annotations

import errno
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning

from sam2unext.errors import InputError, OutputError
from sam2unext.geo import check_scene, predict_raster
from sam2unext.geo.demo.stand_ins import PixelModel
from sam2unext.geo.reading.plan import make_plan

from geo_helpers import NORTH_UP, smooth_rgb, write_raster


class _Counting:
    """A picklable factory that records whether the model was loaded."""

    def __init__(self):
        self.loads = 0

    def __call__(self):
        self.loads += 1
        return PixelModel(32, None)


def _events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _run(src, out: Path, **kw):
    kw.setdefault("model", PixelModel(32, None))
    kw.setdefault("progress", "none")
    return predict_raster(src, out, **kw)


# ---------------------------------------------------------------- NaN / inf are invalid pixels


@pytest.fixture
def nan_raster(tmp_path) -> Path:
    """float32, no nodata tag: a NaN block covering whole 32-px tiles, +inf and -inf strips."""
    data = smooth_rgb(128, 128).astype(np.float32)
    data[:, 0:64, 0:64] = np.nan
    data[1, 100:104, :] = np.inf
    data[2, :, 120:122] = -np.inf
    return write_raster(tmp_path / "nan.tif", data)


def test_nan_and_inf_are_masked_never_in_a_polygon_and_whole_tiles_are_skipped(nan_raster, tmp_path):
    res = _run(nan_raster, tmp_path / "p.tif", overlap=0.0, vector=True, threshold=0.0, as_geodataframe=True)
    with rasterio.open(res.probability) as out:
        valid = out.read_masks(1) > 0
    assert not valid[0:64, 0:64].any() and not valid[100:104].any() and not valid[:, 120:122].any()
    assert valid[70:100, 0:120].all()
    assert res.tiles_skipped == 4  # the 2x2 tiles inside the NaN block were never run
    # threshold 0 makes every valid pixel foreground: polygons cover exactly the valid pixels
    assert res.area == pytest.approx(valid.sum() * 1.5 * 1.5)
    import shapely

    nan_box = shapely.box(*rasterio.transform.array_bounds(64, 64, NORTH_UP)[::1])
    assert res.geodataframe.geometry.intersection(nan_box).area.sum() == pytest.approx(0.0)


def test_float32_without_nodata_is_masked_and_uint8_pays_no_nan_check(nan_raster, rgb_raster):
    assert make_plan(nan_raster).masked and make_plan(nan_raster).finite_check
    assert not make_plan(rgb_raster).masked and not make_plan(rgb_raster).finite_check


@pytest.mark.parametrize("kind", ["nan", "nodata", "alpha"])
def test_a_scene_without_valid_pixels_gives_all_nodata_and_one_warning(tmp_path, capsys, kind):
    if kind == "nan":
        path = write_raster(tmp_path / "s.tif", np.full((1, 64, 64), np.nan, np.float32))
    elif kind == "nodata":
        path = write_raster(tmp_path / "s.tif", np.zeros((3, 64, 64), np.uint8), nodata=0)
    else:
        data = np.concatenate([smooth_rgb(64, 64), np.zeros((1, 64, 64), np.uint8)])
        path = write_raster(
            tmp_path / "s.tif",
            data,
            colorinterp=[ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha],
        )
    res = _run(path, tmp_path / "p.tif", progress="json", vector=True)
    events = _events(capsys.readouterr().out)
    warns = [e for e in events if e["event"] == "warning"]
    assert len(warns) == 1 and "no valid pixel" in warns[0]["message"]
    assert res.tiles_run == 0 and res.area == 0.0
    with rasterio.open(res.probability) as out:
        assert not out.read_masks(1).any()


def test_all_nan_raster_through_the_command_exits_0_with_a_warning(tmp_path, capsys):
    from sam2unext.cli.main import main

    path = write_raster(tmp_path / "allnan.tif", np.full((1, 64, 64), np.nan, np.float32))
    assert main(["predict", str(path), "--checkpoint", "demo", "--progress", "json"]) == 0
    captured = capsys.readouterr()
    events = _events(captured.out)
    assert [e for e in events if e["event"] == "warning" and "no valid pixel" in e["message"]]
    done = [e for e in events if e["event"] == "done"][0]
    assert done["tiles_run"] == 0 and done["area"] == 0.0


# ---------------------------------------------------------------- multispectral band choice

SIX = ["blue", "green", "red", "nir", "swir1", "swir2"]


def _six_bands(path: Path, *, colorinterp: bool, descriptions: bool) -> Path:
    data = np.concatenate([smooth_rgb(96, 96, seed=3), smooth_rgb(96, 96, seed=4)])
    interp = [ColorInterp.blue, ColorInterp.green, ColorInterp.red] + [ColorInterp.undefined] * 3
    write_raster(path, data, colorinterp=interp if colorinterp else None)
    if descriptions:
        with rasterio.open(path, "r+") as ds:
            for i, name in enumerate(SIX, start=1):
                ds.set_band_description(i, name)
    return path


def test_six_bands_with_colour_interpretation_use_the_declared_red_green_blue(tmp_path, capsys):
    path = _six_bands(tmp_path / "landsat.tif", colorinterp=True, descriptions=False)
    res = _run(path, tmp_path / "p.tif", progress="json", vector=False)
    events = _events(capsys.readouterr().out)
    assert res.bands == (3, 2, 1)
    assert [e["bands"] for e in events if e["event"] == "start"] == [[3, 2, 1]]
    assert not [e for e in events if e["event"] == "warning"]
    with rasterio.open(res.probability) as out:
        assert out.tags()["SAM2UNEXT_BANDS"] == "3,2,1"


def test_six_bands_without_colour_interpretation_warn_naming_the_bands_used(tmp_path, capsys):
    path = _six_bands(tmp_path / "six.tif", colorinterp=False, descriptions=True)
    res = _run(path, tmp_path / "p.tif", progress="json", vector=False)
    warns = [e["message"] for e in _events(capsys.readouterr().out) if e["event"] == "warning"]
    assert res.bands == (1, 2, 3) and len(warns) == 1
    assert "has 6 bands" in warns[0] and "1 (blue), 2 (green), 3 (red)" in warns[0]
    assert "choose others with bands='4,3,2'" in warns[0]


def test_bands_by_description_and_unknown_names(tmp_path):
    path = _six_bands(tmp_path / "six.tif", colorinterp=False, descriptions=True)
    assert make_plan(path, bands=("red", "GREEN", "blue")).bands == (3, 2, 1)
    assert make_plan(path, bands="nir").bands == (4, 4, 4)
    with pytest.raises(InputError, match="'yellow' matches no band of six.tif; its band descriptions are 1=blue"):
        make_plan(path, bands=("yellow", "green", "blue"))


def test_bands_by_description_through_the_command(tmp_path, capsys):
    from sam2unext.cli.main import main

    path = _six_bands(tmp_path / "six.tif", colorinterp=False, descriptions=True)
    assert (
        main(
            [
                "predict",
                str(path),
                "--checkpoint",
                "demo",
                "--bands",
                "red,green,blue",
                "--no-vector",
                "--progress",
                "none",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    assert "bands 3,2,1" in out.out and "has 6 bands" not in out.err
    assert main(["predict", str(path), "--checkpoint", "demo", "--no-vector", "--overwrite", "--progress", "none"]) == 0
    err = capsys.readouterr().err
    assert "has 6 bands" in err and "choose others with --bands 4,3,2 (or by description: blue, green" in err


# ---------------------------------------------------------------- truncated and corrupt files


@pytest.fixture
def truncated(tmp_path) -> Path:
    full = write_raster(tmp_path / "full.tif", smooth_rgb(256, 256))
    data = full.read_bytes()
    path = tmp_path / "truncated.tif"
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_file_is_refused_before_the_model_loads(truncated, tmp_path):
    factory = _Counting()
    with pytest.raises(InputError) as err:
        _run(truncated, tmp_path / "p.tif", model=factory)
    message = str(err.value)
    assert "truncated.tif" in message and "window col" in message and "\n" not in message
    assert factory.loads == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.tif", "truncated.tif"]


def test_corrupt_block_in_the_middle_is_one_line_naming_file_and_window(tmp_path):
    full = write_raster(tmp_path / "full.tif", smooth_rgb(256, 256))
    with rasterio.open(full) as src:
        offset = int(src.get_tag_item("BLOCK_OFFSET_1_1", "TIFF", bidx=1))
    data = bytearray(full.read_bytes())
    data[offset : offset + 64] = b"\xff" * 64
    bad = tmp_path / "corrupt.tif"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError) as err:
        _run(bad, tmp_path / "p.tif", vector=False)
    assert "corrupt.tif" in str(err.value) and "window col" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "p.tif").exists()


def test_truncated_file_through_the_command_exits_2_with_one_line(truncated, tmp_path, capfd):
    from sam2unext.cli.main import main

    assert (
        main(["predict", str(truncated), "--checkpoint", "demo", "-o", str(tmp_path / "out"), "--progress", "none"])
        == 2
    )
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert err[-1].startswith("error: cannot read") and "truncated.tif" in err[-1]
    assert not [line for line in err if line.startswith("ERROR")]
    assert not (tmp_path / "out").exists()  # a refused run leaves no empty output folder


# ---------------------------------------------------------------- no georeferencing


def test_non_georeferenced_input_gives_output_without_geotransform_and_pixel_polygons(tmp_path, capsys):
    path = tmp_path / "plain.tif"
    with rasterio.open(path, "w", driver="GTiff", width=80, height=60, count=3, dtype="uint8") as dst:
        dst.write(smooth_rgb(60, 80))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = _run(path, tmp_path / "p.tif", progress="json", threshold=0.0, as_geodataframe=True)
    assert not [
        w for w in caught if issubclass(w.category, UserWarning) and not issubclass(w.category, NotGeoreferencedWarning)
    ], [str(w.message) for w in caught]
    warns = [e["message"] for e in _events(capsys.readouterr().out) if e["event"] == "warning"]
    assert len(warns) == 1 and "no georeferencing" in warns[0] and "pixel units" in warns[0]
    with pytest.warns(NotGeoreferencedWarning):  # the output carries no geotransform either
        with rasterio.open(res.probability) as out:
            assert out.crs is None and out.transform.is_identity and out.shape == (60, 80)
    minx, miny, maxx, maxy = res.geodataframe.total_bounds
    assert (minx, miny, maxx, maxy) == (0.0, -60.0, 80.0, 0.0)  # where QGIS shows the input
    assert res.area_unit == "px²" and res.area_text == "4,800 px²"


# ---------------------------------------------------------------- sizes and overlap


@pytest.mark.parametrize("side", [1, 5, 15])
def test_tiny_scenes_are_refused(tmp_path, side):
    path = write_raster(tmp_path / "tiny.tif", smooth_rgb(side, side))
    with pytest.raises(InputError, match=f"tiny.tif is {side}x{side} pixels; scenes need at least 16"):
        _run(path, tmp_path / "p.tif", model=_Counting())


def test_overlap_zero_warns_about_seams(rgb_raster, tmp_path, capsys):
    _run(rgb_raster, tmp_path / "p.tif", overlap=0, progress="json", vector=False)
    warns = [e["message"] for e in _events(capsys.readouterr().out) if e["event"] == "warning"]
    assert len(warns) == 1 and "seams" in warns[0]


@pytest.mark.parametrize("overlap", [1.0, 1.5, 64, "32px", "abc"])
def test_ambiguous_overlaps_are_refused(rgb_raster, tmp_path, overlap):
    with pytest.raises(InputError, match="overlap"):
        _run(rgb_raster, tmp_path / "p.tif", overlap=overlap, tile_size=32)


def test_overlap_in_pixels(rgb_raster, tmp_path):
    res = _run(rgb_raster, tmp_path / "p.tif", overlap="8px", vector=False)
    assert res.tiles_run == 6 * 7  # 150x173 with stride 24


def test_tiles_larger_than_the_scene_are_clamped(rgb_raster, tmp_path):
    res = _run(rgb_raster, tmp_path / "p.tif", tile_size=100_000, vector=False)
    assert res.tiles_run == 1


def test_a_tile_size_that_cannot_fit_in_memory_is_refused_before_the_model_loads(rgb_raster, tmp_path, monkeypatch):
    import sam2unext.geo.scene_plan as scene_plan

    monkeypatch.setattr(scene_plan, "available_memory", lambda: 2 * 10**6)
    factory = _Counting()
    with pytest.raises(InputError, match="tile_size=1024 or batch_size=1") as err:
        _run(rgb_raster, tmp_path / "p.tif", model=factory, tile_size=160, batch_size=8)
    assert "GB of memory" in str(err.value) and factory.loads == 0


def test_check_scene_refuses_what_predict_would_refuse(rgb_raster, truncated, tmp_path):
    check_scene(rgb_raster, tmp_path / "ok.tif")
    with pytest.raises(InputError):
        check_scene(truncated, tmp_path / "t.tif")
    (tmp_path / "exists.tif").write_bytes(b"x")
    with pytest.raises(OutputError):
        check_scene(rgb_raster, tmp_path / "exists.tif")
    with pytest.raises(InputError, match="overlap"):
        check_scene(rgb_raster, tmp_path / "ok.tif", overlap=2)
    assert not (tmp_path / "ok.tif").exists() and not (tmp_path / "t.tif").exists()


# ---------------------------------------------------------------- the xarray path


@pytest.mark.parametrize("layout", ["striped", "tiled"])
def test_xarray_source_from_a_striped_or_tiled_geotiff_keeps_the_exact_transform(tmp_path, layout):
    rioxarray = pytest.importorskip("rioxarray")
    transform = rasterio.Affine(0.1234567891234, 0.0, 712345.678901234, 0.0, -0.1234567891234, 5123456.78901234)
    path = tmp_path / f"{layout}.tif"
    extra = dict(tiled=True, blockxsize=64, blockysize=64) if layout == "tiled" else dict(tiled=False)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=173,
        height=150,
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=transform,
        **extra,
    ) as dst:
        dst.write(smooth_rgb(150, 173))
    da = rioxarray.open_rasterio(path)
    res = _run(da, tmp_path / "p.tif", vector=False)
    with rasterio.open(res.probability) as out:
        assert out.transform == transform  # exact, not rebuilt from coordinates
    part = da.isel(x=slice(20, 120), y=slice(10, 110))
    res = _run(part, tmp_path / "part.tif", vector=False)
    with rasterio.open(res.probability) as out:
        assert out.transform == transform @ rasterio.Affine.translation(20, 10)


# ---------------------------------------------------------------- polygon writer errors


def test_disk_full_while_writing_polygons_names_the_folder(tmp_path):
    from sam2unext.geo.vectors.vectorize import write_error

    err = write_error(tmp_path / "out.gpkg", OSError(errno.ENOSPC, "No space left on device"))
    assert isinstance(err, OutputError) and f"no space left in {tmp_path}" in str(err)
    other = write_error(tmp_path / "out.gpkg", OSError(errno.EIO, "I/O error"))
    assert isinstance(other, OutputError) and str(tmp_path) in str(other)
