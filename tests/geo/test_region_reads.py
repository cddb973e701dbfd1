"""Tiles read as one region per batch row equal tiles read one by one, and the validity the
reads record (used for the output mask instead of a second read) equals GDAL's masks."""

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from sam2unext.geo.reading.plan import make_plan
from sam2unext.geo.reading.windows import RegionValidity, TileReader, read_valid, region_groups
from sam2unext.geo.running.tiling import make_grid

from geo_helpers import smooth_rgb, write_raster


def scenes(tmp_path, uint16_alpha_raster):
    """A plain, a nodata, an alpha (uint16, stretched) and a float scene with NaN holes."""
    plain = write_raster(tmp_path / "plain.tif", smooth_rgb(150, 130, seed=1))
    holes = smooth_rgb(150, 130, seed=2)
    holes[holes == 0] = 1
    holes[1, 10:40, 5:30] = 0
    holes[:, 100:150, 0:64] = 0
    nodata = write_raster(tmp_path / "nodata.tif", holes, nodata=0)
    floats = smooth_rgb(150, 130, seed=3).astype(np.float32)
    floats[2, 20:50, 70:100] = np.nan
    floats[:, 0:40, 0:40] = np.nan
    nan = write_raster(tmp_path / "nan.tif", floats)
    return {"plain": plain, "nodata": nodata, "alpha": uint16_alpha_raster, "nan": nan}


def test_region_groups_join_touching_windows_of_one_row_only():
    w = [Window(c, r, 32, 32) for c, r in [(0, 0), (24, 0), (56, 0), (100, 0), (0, 24)]]
    assert [[i for i, _ in g] for g in region_groups(w)] == [[0, 1, 2], [3], [4]]


@pytest.mark.parametrize("kind", ["plain", "nodata", "alpha", "nan"])
@pytest.mark.parametrize("bands", [None, (3, 1, 2), (2,)])
def test_batch_reads_equal_single_reads(tmp_path, uint16_alpha_raster, kind, bands):
    path = scenes(tmp_path, uint16_alpha_raster)[kind]
    plan = make_plan(path, bands=bands)
    grid = make_grid(plan.height, plan.width, 32, 0.25)
    windows = [grid.window(i) for i in range(len(grid))]
    reader = TileReader(plan, 32)
    together = reader.read_many(windows)  # one region per run of touching tiles of a row
    alone = [reader.read(w) for w in windows]
    reader.close()
    assert len(region_groups(windows)) < len(windows)
    for a, b in zip(together, alone):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.shape == (3, 32, 32) and a.dtype == np.uint8
            np.testing.assert_array_equal(a, b)
    if kind == "nodata":
        assert any(t is None for t in together)  # the empty region's tiles are skipped


@pytest.mark.parametrize("kind", ["nodata", "alpha", "nan"])
def test_recorded_validity_equals_gdal_masks(tmp_path, uint16_alpha_raster, kind):
    path = scenes(tmp_path, uint16_alpha_raster)[kind]
    plan = make_plan(path)
    assert plan.masked
    grid = make_grid(plan.height, plan.width, 32, 0.25)
    chunk_col, chunk_width = 16, 96  # a chunk that does not start at column 0
    validity = RegionValidity(chunk_col, chunk_width)
    reader = TileReader(plan, 32, validity)
    reader.read_many([grid.window(i) for i in range(len(grid))])
    with rasterio.open(path) as ds:
        for row0 in range(0, plan.height - 10, 10):
            expected = read_valid(ds, Window(chunk_col, row0, chunk_width, 10), plan.bands)
            np.testing.assert_array_equal(validity.rows(row0, 10), expected)
    reader.close()
    validity.forget_above(plan.height)
    assert not validity.rows(0, 5).any()  # forgotten regions: nothing is valid any more
