"""Small generated rasters for the geo tests."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning

ROTATED = Affine.translation(500000, 4000000) @ Affine.rotation(17) @ Affine.scale(2.0, -2.0)
NORTH_UP = Affine.translation(500000, 4000000) @ Affine.scale(1.5, -1.5)


def write_raster(path: Path, data: np.ndarray, *, transform=NORTH_UP, crs="EPSG:32633", nodata=None,
                 colorinterp=None, driver="GTiff", **extra) -> Path:
    """Write ``data`` ``[bands, H, W]`` as a tiled GeoTIFF (or another driver)."""
    profile = dict(driver=driver, width=data.shape[2], height=data.shape[1], count=data.shape[0],
                   dtype=data.dtype.name, transform=transform, crs=crs, nodata=nodata, **extra)
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


@pytest.fixture
def rgb_raster(tmp_path) -> Path:
    """A 150x173 RGB uint8 GeoTIFF with a rotated geotransform."""
    return write_raster(tmp_path / "rgb.tif", smooth_rgb(150, 173), transform=ROTATED)


@pytest.fixture
def nodata_raster(tmp_path) -> Path:
    """A 200x190 RGB uint8 GeoTIFF, nodata 0, with a hole and a fully empty top-left block."""
    data = smooth_rgb(200, 190, seed=1)
    data[data == 0] = 1
    data[:, 0:90, 0:90] = 0  # at least one whole 32x32 tile is empty
    data[:, 120:140, 100:170] = 0
    return write_raster(tmp_path / "nodata.tif", data, nodata=0)


@pytest.fixture
def uint16_alpha_raster(tmp_path) -> Path:
    """A 4-band uint16 (RGB + alpha) GeoTIFF with 12-bit values and a transparent corner."""
    rgb = smooth_rgb(120, 140, seed=2).astype(np.uint16) * 16 + 3
    alpha = np.full((1, 120, 140), 65535, dtype=np.uint16)
    alpha[0, 80:, 100:] = 0
    data = np.concatenate([rgb, alpha])
    return write_raster(tmp_path / "u16.tif", data, colorinterp=[ColorInterp.red, ColorInterp.green,
                                                                 ColorInterp.blue, ColorInterp.alpha])
