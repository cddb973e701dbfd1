"""Generated rasters and reference computations for the geo tests (imported by name: a
module called ``conftest`` would clash with other test folders' conftest files)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from sam2unext.geo.demo.stand_ins import pixel_function
from sam2unext.geo.reading.bands import apply_stretch
from sam2unext.geo.reading.plan import make_plan
from sam2unext.geo.running.chunks import Chunk, OverlapLayout, make_chunk_grid
from sam2unext.geo.writing.device_stitching import DeviceChunkStitcher
from sam2unext.geo.writing.quantize import finish_sums, quantize_probability
from sam2unext.geo.writing.stitching import ChunkStitcher, SceneWeights


def whole_scene_probability(path, **plan_kwargs) -> tuple[np.ndarray, np.ndarray]:
    """The stand-in's function on the whole scene (float32 [H, W]) and the validity mask."""
    plan = make_plan(path, **plan_kwargs)
    with rasterio.open(path) as src:
        unique = sorted(set(plan.bands))
        data = src.read(unique)[[unique.index(b) for b in plan.bands]]
        valid = np.all(src.read_masks(unique) > 0, axis=0)
    u8 = apply_stretch(data, plan.stretch)
    prob = pixel_function(u8[None].astype(np.float32) / np.float32(255.0))[0, 0]
    return prob, valid


def expected_uint8(path, **plan_kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Expected uint8 output and validity for the stand-in."""
    prob, valid = whole_scene_probability(path, **plan_kwargs)
    return quantize_probability(prob), valid


ROTATED = Affine.translation(500000, 4000000) @ Affine.rotation(17) @ Affine.scale(2.0, -2.0)
NORTH_UP = Affine.translation(500000, 4000000) @ Affine.scale(1.5, -1.5)


def write_raster(
    path: Path,
    data: np.ndarray,
    *,
    transform=NORTH_UP,
    crs="EPSG:32633",
    nodata=None,
    colorinterp=None,
    driver="GTiff",
    **extra,
) -> Path:
    """Write ``data`` ``[bands, H, W]`` as a tiled GeoTIFF (or another driver)."""
    profile = dict(
        driver=driver,
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype.name,
        transform=transform,
        crs=crs,
        nodata=nodata,
        **extra,
    )
    if driver == "GTiff":
        profile.update(tiled=True, blockxsize=64, blockysize=64, compress="deflate")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            if colorinterp:
                dst.colorinterp = colorinterp
    return path


def smooth_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 ``[3, H, W]`` with smooth blobs plus noise (both bright and dark regions)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 127 + 100 * np.sin(yy / 17.0) * np.cos(xx / 23.0)
    out = np.stack([base, 255 - base, (base + 60) % 256]) + rng.normal(0, 12, (3, height, width))
    return np.clip(out, 0, 255).astype(np.uint8)


def stitch_sums(grid, probs, size: int, device=None, weights=None) -> np.ndarray:
    """The scene's fixed-point blend sums, each chunk's own tiles through a stitcher over its
    extended window, the chunks' bands added together (overlap-add, exact in any order).
    ``probs``: one ``[T, T]`` array (or None) per tile of ``grid`` in its order; device=None:
    the CPU stitcher, else the device one."""
    chunks = make_chunk_grid(grid.height, grid.width, grid.tile_size, size)
    layout = OverlapLayout(grid, chunks)
    sums = np.zeros((grid.height, grid.width))
    weights = weights or SceneWeights(grid)
    for k in range(len(chunks)):
        ext = layout.extended(k)
        if ext is None:
            continue
        rows, cols = layout.owned(k)
        window = Chunk(k, int(ext.row_off), int(ext.col_off), int(ext.height), int(ext.width))

        def emit(row0, band, st, c0=window.col_off):
            sums[row0 : row0 + band.shape[0], c0 : c0 + band.shape[1]] += st.to_host(band)

        if device is None:
            st = ChunkStitcher(grid, window, rows, cols, emit, weights)
        else:
            st = DeviceChunkStitcher(grid, window, rows, cols, emit, weights, device=device)
        for r, c in st.tiles:
            p = probs[r * len(grid.col_offsets) + c]
            st.add(None if p is None else (p if device is None else torch.from_numpy(p)))
        assert st.complete
    return sums


def stitch(grid, probs, size: int, device=None, quantize: bool = False, weights=None) -> np.ndarray:
    """The blended scene (float32, or uint8 when ``quantize``) through :func:`stitch_sums`."""
    return finish_sums(stitch_sums(grid, probs, size, device, weights), "uint8" if quantize else "float32")
