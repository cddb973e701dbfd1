"""The tile reader's nodata fast path gives exactly GDAL's masks and the same tiles."""

import numpy as np
import pytest
import rasterio

from sam2unext.geo.reading import windows as reading
from sam2unext.geo.reading.plan import make_plan
from sam2unext.geo.reading.windows import TileReader, integer_nodata, read_valid, valid_from_nodata
from sam2unext.geo.running.tiling import make_grid

from geo_helpers import smooth_rgb, write_raster


def per_band_holes(dtype, nodata):
    data = smooth_rgb(150, 130, seed=4).astype(dtype)
    data[data == nodata] = nodata + 1
    data[0, 10:40, 5:30] = nodata  # holes in single bands only
    data[2, 60:70, 50:120] = nodata
    data[:, 100:150, 0:64] = nodata  # a whole empty region
    return data


@pytest.mark.parametrize("dtype,nodata", [(np.uint8, 0), (np.uint8, 255 - 1), (np.uint16, 7)])
def test_validity_from_nodata_equals_gdal_masks(tmp_path, dtype, nodata):
    path = write_raster(tmp_path / "s.tif", per_band_holes(dtype, nodata), nodata=nodata)
    with rasterio.open(path) as ds:
        nd = integer_nodata(ds, [1, 2, 3])
        assert nd == (nodata,) * 3
        window = rasterio.windows.Window(0, 0, 130, 150)
        expected = read_valid(ds, window, (1, 2, 3))
        np.testing.assert_array_equal(valid_from_nodata(ds.read([1, 2, 3], window=window), nd), expected)
        assert not expected.all() and expected.any()


def test_no_fast_path_without_a_plain_integer_nodata(tmp_path, uint16_alpha_raster):
    plain = write_raster(tmp_path / "plain.tif", smooth_rgb(40, 40))
    floats = write_raster(tmp_path / "f.tif", smooth_rgb(40, 40).astype(np.float32), nodata=0)
    for path in (plain, floats, uint16_alpha_raster):
        with rasterio.open(path) as ds:
            assert integer_nodata(ds, [1, 2, 3]) is None


def test_tiles_are_the_same_with_and_without_the_fast_path(tmp_path, monkeypatch):
    path = write_raster(tmp_path / "s.tif", per_band_holes(np.uint8, 0), nodata=0)
    plan = make_plan(path)
    grid = make_grid(plan.height, plan.width, 32, 0.25)
    windows = [grid.window(i) for i in range(len(grid))]
    fast = TileReader(plan, 32).read_many(windows)
    monkeypatch.setattr(reading, "integer_nodata", lambda ds, bands: None)
    slow = TileReader(plan, 32).read_many(windows)
    assert sum(t is None for t in slow) > 0
    for a, b in zip(fast, slow):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)
