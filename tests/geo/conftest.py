"""Small generated rasters for the geo tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rasterio.enums import ColorInterp

from geo_helpers import ROTATED, smooth_rgb, write_raster


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
    return write_raster(
        tmp_path / "u16.tif",
        data,
        colorinterp=[ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha],
    )
