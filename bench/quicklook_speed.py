"""Time the quick-look of a large result (scene COG + probability COG + polygons).

Builds (once, in ``--folder``) a ``--size``² RGB scene COG by repeating a generated 2048² demo
scene, a probability COG from its truth mask (the same repetition, smoothed edges) and the
polygons of that probability, then draws the quick-look ``--repeat`` times and prints each
time. The rasters carry overviews, as every probability raster ``predict_raster`` writes.

    python bench/quicklook_speed.py --size 16384 --folder /tmp/ql16k --repeat 3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from scipy import ndimage

from sam2unext.geo.demo.demo_scene import generate_scene
from sam2unext.geo.quicklook import write_quicklook
from sam2unext.geo.vectors.vectorize import vectorize_raster

BASE = 2048


def _write_repeated(path: Path, tile: np.ndarray, size: int, transform, crs, **profile) -> None:
    """A ``size``² COG made of ``tile`` repeated, written block row by block row, then copied to COG."""
    tmp = path.with_suffix(".tmp.tif")
    count, side = tile.shape[0], tile.shape[-1]
    with rasterio.open(
        tmp,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=count,
        dtype=tile.dtype,
        crs=crs,
        transform=transform,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="zstd",
        **profile,
    ) as dst:
        row_band = np.concatenate([tile] * (size // side), axis=2)
        for r in range(size // side):
            dst.write(row_band, window=rasterio.windows.Window(0, r * side, size, side))
    rasterio.shutil.copy(
        tmp, path, driver="COG", compress="ZSTD", level=1, blocksize=512, overviews="AUTO", resampling="average"
    )
    tmp.unlink()


def build(folder: Path, size: int) -> tuple[Path, Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    scene, prob, vector = folder / "scene.tif", folder / "scene_prob.tif", folder / "scene_prob_polygons.gpkg"
    if not scene.exists() or not prob.exists():
        demo = generate_scene(BASE, seed=7)
        _write_repeated(scene, demo.image, size, demo.transform, demo.crs, photometric="RGB")
        p = ndimage.gaussian_filter(demo.truth.astype(np.float32), 1.5)
        _write_repeated(prob, np.rint(p * 255).astype(np.uint8)[None], size, demo.transform, demo.crs)
    if not vector.exists():
        t0 = time.perf_counter()
        res = vectorize_raster(prob, vector)
        print(f"polygons: {res.count} in {time.perf_counter() - t0:.1f} s")
    return scene, prob, vector


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=16384)
    ap.add_argument("--folder", type=Path, default=Path("/tmp/sam2unext-quicklook-bench"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    scene, prob, vector = build(args.folder, args.size)
    with rasterio.open(scene) as src:
        print(f"scene {src.width} x {src.height}, overviews {src.overviews(1)}")
    times = []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        write_quicklook(scene, prob, vector, args.folder / f"quicklook_{i}.png")
        times.append(time.perf_counter() - t0)
        print(f"quick-look {i + 1}: {times[-1]:.2f} s")
    print(f"best {min(times):.2f} s, median {sorted(times)[len(times) // 2]:.2f} s")


if __name__ == "__main__":
    main()
