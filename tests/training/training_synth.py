"""Generators of tiny image-folder datasets and georeferenced scenes for the training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

PRESET = "sam2unext-test"
#: Short-run settings: lr above the paper's 2e-4 so three epochs on three images visibly learn.
SHORT = dict(epochs=3, lr=1e-3, batch_size=1, snapshot_every=1, seed=3, num_workers=0)


def blob_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A uint8 mask (0/255) with one filled ellipse at a random place."""
    yy, xx = np.mgrid[:height, :width]
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    ry, rx = rng.uniform(0.15, 0.3) * height, rng.uniform(0.15, 0.3) * width
    return ((((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) <= 1).astype(np.uint8) * 255


def blob_image(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An RGB uint8 image: dark noisy background, bright reddish foreground where mask > 0."""
    h, w = mask.shape
    img = rng.integers(0, 70, (h, w, 3)).astype(np.int32)
    img[mask > 0] += np.array([170, 90, 40])
    return np.clip(img, 0, 255).astype(np.uint8)


def make_folder_dataset(
    root: Path, count: int = 6, seed: int = 0, sizes=((72, 96), (80, 64), (90, 90))
) -> tuple[Path, Path]:
    """Write ``images/*.jpg`` and ``masks/*.png`` (varied sizes); returns both folders."""
    rng = np.random.default_rng(seed)
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        h, w = sizes[i % len(sizes)]
        mask = blob_mask(h, w, rng)
        suffix = ".jpg" if i % 2 == 0 else ".png"
        Image.fromarray(blob_image(mask, rng)).save(images / f"sample_{i:02d}{suffix}")
        Image.fromarray(mask).save(masks / f"sample_{i:02d}.png")
    return images, masks


def make_geo_scene(root: Path, size: int = 384, seed: int = 0, dtype: str = "uint16") -> tuple[Path, Path]:
    """Write a 3-band GeoTIFF (UTM 33N, 0.5 m pixels) with bright squares and a GeoPackage of
    the squares' polygons; returns (raster, labels)."""
    import geopandas as gpd
    import rasterio
    from rasterio.transform import from_origin
    from shapely.geometry import box

    rng = np.random.default_rng(seed)
    res, x0, y0 = 0.5, 500_000.0, 5_000_000.0
    transform = from_origin(x0, y0, res, res)
    scale = 40 if dtype == "uint16" else 1
    data = rng.integers(200, 1400, (3, size, size)).astype(np.float64) / 10 * (scale / 4 if dtype == "uint16" else 1)
    polygons = []
    for _ in range(14):
        side = int(rng.integers(20, 48))
        r, c = rng.integers(0, size - side, 2)
        data[0, r : r + side, c : c + side] += 150 * (scale / 4 if dtype == "uint16" else 1)
        data[1, r : r + side, c : c + side] += 60 * (scale / 4 if dtype == "uint16" else 1)
        left, top = x0 + c * res, y0 - r * res
        polygons.append(box(left, top - side * res, left + side * res, top))
    raster, labels = root / "scene.tif", root / "labels.gpkg"
    with rasterio.open(
        raster,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=3,
        dtype=dtype,
        crs="EPSG:32633",
        transform=transform,
    ) as dst:
        dst.write(np.clip(data, 0, np.iinfo(dtype).max).astype(dtype))
    gpd.GeoDataFrame({"cls": [1] * len(polygons)}, geometry=polygons, crs="EPSG:32633").to_file(labels, driver="GPKG")
    return raster, labels
