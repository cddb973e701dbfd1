"""Cost of the polygon options on a large probability raster: plain, ``regularize``, and geodesic units.

Uses the 16384² probability COG of ``bench/quicklook_speed.py`` (built once in ``--folder``:
the 2048² demo scene repeated, its smoothed truth as probability), vectorizes it with and
without ``regularize=True`` (default tolerance: two pixel sizes) and, with ``--geographic``,
the same raster relabelled in EPSG:4326 at its latitude (geodesic areas). Prints polygons,
vertices and seconds of each pass.

    python bench/vector_options.py --size 16384 --folder /tmp/ql16k
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from quicklook_speed import build

from sam2unext.geo.vectors.vectorize import vectorize_raster


def timed(prob: Path, out: Path, **options) -> tuple[float, object]:
    t0 = time.perf_counter()
    res = vectorize_raster(prob, out, overwrite=True, as_geodataframe=True, **options)
    return time.perf_counter() - t0, res


def geographic_copy(prob: Path, folder: Path, lat: float = 60.0) -> Path:
    """The probability raster with a geographic geotransform of the same ground size at ``lat``."""
    out = folder / f"scene_prob_4326_{lat:g}.tif"
    if not out.exists():
        shutil.copy(prob, out)
        with rasterio.open(prob) as src:
            gsd = src.transform.a
        with rasterio.open(out, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
            dst.crs = "EPSG:4326"
            dst.transform = Affine(gsd / 55_800.0, 0, 13.0, 0, -gsd / 111_412.0, lat)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=16384)
    ap.add_argument("--folder", type=Path, default=Path("/tmp/sam2unext-quicklook-bench"))
    ap.add_argument("--geographic", action="store_true")
    args = ap.parse_args()
    _, prob, _ = build(args.folder, args.size)
    print(f"load average {os.getloadavg()[0]:.1f}")
    runs = [("plain", prob, {}), ("regularize", prob, {"regularize": True})]
    if args.geographic:
        geo = geographic_copy(prob, args.folder)
        runs += [("plain, EPSG:4326", geo, {}), ("regularize, EPSG:4326", geo, {"regularize": True})]
    for name, path, options in runs:
        secs, res = timed(path, args.folder / f"bench_{name.replace(', ', '_').replace(':', '')}.gpkg", **options)
        gdf = res.geodataframe
        vertices = int(shapely.get_num_coordinates(np.asarray(gdf.geometry.values)).sum())
        print(f"{name:24s} {res.count:7d} polygons {vertices:9d} vertices {secs:7.1f} s  area {res.area_text}")


if __name__ == "__main__":
    main()
