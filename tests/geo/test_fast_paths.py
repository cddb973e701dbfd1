"""The throughput shortcuts give the same values as the plain computations they replace."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import rasterio
import rasterio.shutil
import torch
from affine import Affine
from rasterio.enums import Resampling

from sam2unext.geo.reading.plan import make_plan
from sam2unext.geo.reading.windows import TileReader
from sam2unext.geo.running.chunks import ChunkGrid
from sam2unext.geo.running.tiling import make_grid
from sam2unext.geo.writing.cog import overview_factors, write_probability_cog
from sam2unext.geo.writing.pyramid import chunk_levels, finish_pyramid, write_chunk_pyramid
from sam2unext.geo.writing.quantize import quantize_probability
from sam2unext.geo.writing.store import RunStore
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


def cog_through_store(folder, values, valid, chunk, out_dtype="uint8"):
    """The COG of ``values`` (and 0/255 ``valid``) as a run makes it: chunks, their pyramid in a store, a copy."""
    height, width = values.shape
    store = RunStore(folder / "p.tif.partial")
    masked = valid is not None
    store.create({}, height=height, width=width, chunk_width=chunk, out_dtype=out_dtype, masked=masked)
    levels = chunk_levels(chunk, height, width)
    for c in ChunkGrid(height, width, chunk):
        part = (slice(c.row_off, c.row_off + c.height), slice(c.col_off, c.col_off + c.width))
        store.write(c.row_off, c.col_off, values[part], valid[part] if masked else None)
        write_chunk_pyramid(store, c.row_off, c.col_off, c.height, c.width, levels)
    finish_pyramid(store, height, width, levels)
    out = folder / "p.tif"
    transform = Affine(0.5, 0, 0, 0, -0.5, 0)
    write_probability_cog(
        store,
        out,
        height=height,
        width=width,
        transform=transform,
        crs="EPSG:32633",
        out_dtype=out_dtype,
        masked=masked,
    )
    return out


@pytest.mark.parametrize(
    "height,width,masked,chunk",
    [(1200, 700, True, 512), (1025, 513, False, 1024), (300, 200, True, 16), (2100, 1500, True, 1024)],
)
def test_cog_overviews_match_gdal_auto(tmp_path, height, width, masked, chunk):
    """The overviews the chunks and the client put in the store equal GDAL's own ``average`` overviews."""
    yy, xx = np.mgrid[0:height, 0:width]
    prob = (0.5 + 0.5 * np.sin(yy / 37) * np.cos(xx / 53)).astype(np.float32)
    valid = ((yy - height / 2) ** 2 + (xx - width / 3) ** 2) > (min(height, width) / 5) ** 2
    values = np.where(valid, quantize_probability(prob), 0).astype(np.uint8) if masked else quantize_probability(prob)
    mask = np.where(valid, 255, 0).astype(np.uint8)
    out = cog_through_store(tmp_path, values, mask if masked else None, chunk)
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
    # GDAL's own overviews of the same pixels: built on the file (sizes rounded up), and the COG
    # driver's AUTO ones (sizes rounded down, so an odd side resamples by a factor just over 2)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(strips, "r+") as dst:
        dst.build_overviews(overview_factors(height, width), Resampling.average)
    built = tmp_path / "built.tif"
    rasterio.shutil.copy(strips, built, driver="COG", compress="ZSTD", blocksize=512, overviews="FORCE_USE_EXISTING")
    auto = tmp_path / "auto.tif"
    rasterio.shutil.copy(
        strips, auto, driver="COG", compress="ZSTD", blocksize=512, overviews="AUTO", resampling="average"
    )
    with rasterio.open(out) as ours, rasterio.open(auto) as ref:
        assert ours.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ours.overviews(1) == ref.overviews(1) == overview_factors(height, width)
        np.testing.assert_array_equal(ours.read(1), ref.read(1))
        np.testing.assert_array_equal(ours.read_masks(1), ref.read_masks(1))
    for level, factor in enumerate(overview_factors(height, width)):
        exact = height % factor == 0 and width % factor == 0  # every level down to this one halved exactly
        for reference in (built, auto):
            with rasterio.open(out, overview_level=level) as o, rasterio.open(reference, overview_level=level) as r:
                if exact:
                    np.testing.assert_array_equal(o.read(1), r.read(1))
                    np.testing.assert_array_equal(o.read_masks(1), r.read_masks(1))
                elif o.shape == r.shape:
                    # an odd side: GDAL samples by a ratio just under 2 (drifting up to half an overview
                    # pixel by the far edge), the store's pyramid by whole 2 x 2 blocks
                    diff = np.abs(o.read(1).astype(int) - r.read(1).astype(int))
                    assert diff.mean() < 5.0, diff.mean()  # 3.8 measured on this wavy image
                    assert (o.read_masks(1) != r.read_masks(1)).mean() < 0.02
