"""The throughput shortcuts give the same values as the plain computations they replace."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import rasterio
import rasterio.shutil
import torch
from affine import Affine

from sam2unext.geo.reading.plan import make_plan
from sam2unext.geo.reading.windows import TileReader
from sam2unext.geo.running.tiling import make_grid
from sam2unext.geo.writing.cog import ProbabilityWriter, overview_factors
from sam2unext.geo.writing.quantize import quantize_probability
from sam2unext.transforms import to_unit_float

from geo_helpers import smooth_rgb, write_raster


def test_to_unit_float_equals_torch_division():
    tiles = np.random.default_rng(0).integers(0, 256, (3, 3, 17, 19), dtype=np.uint8)
    tiles[0, 0, 0, :2] = (0, 255)
    ref = torch.div(torch.from_numpy(tiles), 255.0)
    for given in (tiles, list(tiles)):
        out = to_unit_float(given)
        assert out.dtype == torch.float32 and torch.equal(out, ref)


def test_batch_read_equals_single_reads(tmp_path):
    path = write_raster(tmp_path / "s.tif", smooth_rgb(90, 70))
    plan = make_plan(path, bands=(3, 1, 2))
    grid = make_grid(plan.height, plan.width, 32, 0.25)
    reader = TileReader(plan, 32)
    try:
        windows = [grid.window(i) for i in range(len(grid))]
        batch = reader.read_many(windows)
        with rasterio.open(path) as src:
            for w, tile in zip(windows, batch):
                np.testing.assert_array_equal(tile, reader.read(w))
                inner = src.read((3, 1, 2), window=w, boundless=False)
                np.testing.assert_array_equal(tile[:, : inner.shape[1], : inner.shape[2]], inner)
        with ThreadPoolExecutor(4) as pool:  # threads take turns on the reader's one handle
            again = list(pool.map(reader.read_many, [windows[i : i + 3] for i in range(0, len(windows), 3)]))
        for tile, same in zip(batch, [t for part in again for t in part]):
            np.testing.assert_array_equal(tile, same)
    finally:
        reader.close()


@pytest.mark.parametrize("height,width,masked", [(1200, 700, True), (1025, 513, False), (300, 200, True)])
def test_cog_overviews_match_gdal_auto(tmp_path, height, width, masked):
    yy, xx = np.mgrid[0:height, 0:width]
    prob = (0.5 + 0.5 * np.sin(yy / 37) * np.cos(xx / 53)).astype(np.float32)
    valid = ((yy - height / 2) ** 2 + (xx - width / 3) ** 2) > (min(height, width) / 5) ** 2
    out = tmp_path / "p.tif"
    with ProbabilityWriter(
        out, height=height, width=width, transform=Affine(0.5, 0, 0, 0, -0.5, 0), crs="EPSG:32633", masked=masked
    ) as writer:
        values = (
            np.where(valid, quantize_probability(prob), 0).astype(np.uint8) if masked else quantize_probability(prob)
        )
        mask = np.where(valid, 255, 0).astype(np.uint8)
        for r0 in range(0, height, 100):
            writer.write_block(r0, 0, values[r0 : r0 + 100], mask[r0 : r0 + 100] if masked else None)
        writer.commit()
    # the reference: the same pixels in a plain tiled GeoTIFF, made a COG by GDAL's own AUTO overviews
    strips = tmp_path / "strips.tif"
    values = quantize_probability(prob)
    profile = dict(
        driver="GTiff",
        width=width,
        height=height,
        count=1,
        dtype="uint8",
        crs="EPSG:32633",
        transform=Affine(0.5, 0, 0, 0, -0.5, 0),
        tiled=True,
        blockxsize=512,
        blockysize=512,
    )
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(strips, "w", **profile) as dst:
        dst.write(np.where(valid, values, 0) if masked else values, 1)
        if masked:
            dst.write_mask(np.where(valid, 255, 0).astype(np.uint8))
    auto = tmp_path / "auto.tif"
    rasterio.shutil.copy(
        strips, auto, driver="COG", compress="ZSTD", blocksize=512, overviews="AUTO", resampling="average"
    )
    with rasterio.open(out) as ours, rasterio.open(auto) as ref:
        assert ours.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ours.overviews(1) == ref.overviews(1) == overview_factors(height, width)
        np.testing.assert_array_equal(ours.read(1), ref.read(1))
        np.testing.assert_array_equal(ours.read_masks(1), ref.read_masks(1))
        for level in range(len(ours.overviews(1))):
            with rasterio.open(out, overview_level=level) as o, rasterio.open(auto, overview_level=level) as a:
                if o.shape == a.shape:
                    np.testing.assert_array_equal(o.read(1), a.read(1))
                    np.testing.assert_array_equal(o.read_masks(1), a.read_masks(1))
                else:  # odd side: GDAL's COG driver rounds the overview size down, building rounds up
                    assert abs(o.height - a.height) <= 1 and abs(o.width - a.width) <= 1
                    h, w = min(o.height, a.height), min(o.width, a.width)
                    diff = np.abs(o.read(1)[:h, :w].astype(int) - a.read(1)[:h, :w].astype(int))
                    assert diff.mean() < 2.0, diff.mean()
