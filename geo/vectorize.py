"""Probability raster → polygons (threshold, polygonize, filter, attributes, write).

The threshold pass reads the probability raster block by block into a temporary binary
raster; ``rasterio.features.shapes`` then runs on that dataset band (GDAL polygonize streams
rows, so no whole-scene array is made). Polygons are traced in pixel coordinates, their
mean/max probability read from their own window, then mapped to the raster's (possibly
rotated) geotransform; area, perimeter, ``min_area`` and ``simplify`` are in map units.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import geometry_mask, shapes
from rasterio.windows import Window

from sam2unext.errors import InputError, OutputError

from .progress import Progress, make_progress
from .reading import open_raster
from .writing import check_output, remove_quietly, temp_name

#: format name → (file suffix, OGR driver; None = GeoParquet through pyarrow)
VECTOR_FORMATS = {
    "gpkg": (".gpkg", "GPKG"),
    "geojson": (".geojson", "GeoJSON"),
    "fgb": (".fgb", "FlatGeobuf"),
    "parquet": (".parquet", None),
}
COLUMNS = ("area", "perimeter", "mean_prob", "max_prob")


@dataclass
class VectorResult:
    """What :func:`vectorize_raster` made: the file, polygon count, total area (map units)."""

    path: Path
    count: int
    area: float
    geodataframe: object | None = None


def format_from(path: str | Path | None, vector_format: str | None) -> str:
    """The vector format: explicit name, else from the file suffix, else ``gpkg``.

    Raises:
        OutputError: unknown format.
    """
    if vector_format:
        fmt = vector_format.lower().lstrip(".")
        fmt = {"geoparquet": "parquet", "json": "geojson", "flatgeobuf": "fgb"}.get(fmt, fmt)
    elif path is not None and Path(path).suffix:
        fmt = {v[0]: k for k, v in VECTOR_FORMATS.items()}.get(Path(path).suffix.lower(), "")
    else:
        fmt = "gpkg"
    if fmt not in VECTOR_FORMATS:
        raise OutputError(f"vector format {vector_format or Path(path).suffix!r} must be one of {', '.join(VECTOR_FORMATS)}")
    return fmt


def default_vector_path(prob_path: str | Path, vector_format: str) -> Path:
    """``<probability stem>_polygons.<ext>`` next to the probability raster."""
    p = Path(prob_path)
    return p.with_name(p.stem + "_polygons" + VECTOR_FORMATS[vector_format][0])


def probability_scale(dtype: str) -> float:
    """Divisor from stored values to probabilities (255 for uint8, 1 for float)."""
    return 255.0 if dtype == "uint8" else 1.0


def write_binary(src, path: Path, threshold: float) -> None:
    """Threshold ``src`` band 1 block by block into a uint8 0/1 GeoTIFF at ``path``."""
    scale = probability_scale(src.dtypes[0])
    profile = dict(driver="GTiff", width=src.width, height=src.height, count=1, dtype="uint8",
                   transform=Affine.identity(), tiled=True, blockxsize=512, blockysize=512, compress="DEFLATE")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            for row0 in range(0, src.height, 512):
                window = Window(0, row0, src.width, min(512, src.height - row0))
                values = src.read(1, window=window).astype(np.float32) / np.float32(scale)
                valid = src.read_masks(1, window=window) > 0
                dst.write(((values > threshold) & valid & np.isfinite(values)).astype(np.uint8), 1, window=window)


def polygon_stats(src, geom_px, scale: float) -> tuple[float, float]:
    """Mean and max probability of the pixels inside a pixel-space polygon."""
    minx, miny, maxx, maxy = geom_px.bounds
    col0, row0 = int(np.floor(minx)), int(np.floor(miny))
    window = Window(col0, row0, int(np.ceil(maxx)) - col0, int(np.ceil(maxy)) - row0)
    values = src.read(1, window=window).astype(np.float64) / scale
    inside = geometry_mask([geom_px], out_shape=values.shape, transform=Affine.translation(col0, row0), invert=True)
    vals = values[inside]
    return (float(vals.mean()), float(vals.max())) if vals.size else (0.0, 0.0)


def polygons_from(src, binary_path: Path, threshold: float, *, min_area: float = 0.0, fill_holes: bool = False,
                  simplify: float = 0.0, progress: Progress | None = None):
    """Polygons of the positive pixels of ``src`` with their attributes, as a GeoDataFrame."""
    import geopandas as gpd
    from shapely import affinity
    from shapely.geometry import Polygon, shape

    progress = progress or Progress()
    scale = probability_scale(src.dtypes[0])
    t = src.transform
    coeffs = [t.a, t.b, t.d, t.e, t.c, t.f]
    pixel_area = abs(t.determinant)
    geoms, rows = [], []
    with rasterio.open(binary_path) as binary:
        band = rasterio.band(binary, 1)
        done = 0
        for geom, _value in shapes(band, mask=band, connectivity=4):
            poly_px = shape(geom)
            done += 1
            if poly_px.area * pixel_area < min_area:
                continue
            mean_p, max_p = polygon_stats(src, poly_px, scale)
            poly = affinity.affine_transform(poly_px, coeffs)
            if fill_holes:
                poly = Polygon(poly.exterior)
            if simplify > 0:
                poly = poly.simplify(simplify, preserve_topology=True)
            if poly.is_empty or poly.area < min_area:
                continue
            geoms.append(poly)
            rows.append((poly.area, poly.length, mean_p, max_p))
    data = np.array(rows, dtype=np.float64).reshape(-1, len(COLUMNS))
    return gpd.GeoDataFrame({c: data[:, i] for i, c in enumerate(COLUMNS)},
                            geometry=gpd.GeoSeries(geoms, crs=src.crs), crs=src.crs)


def write_vector(gdf, path: Path, vector_format: str) -> None:
    """Write ``gdf`` to ``path`` (temporary name + rename; temp removed on any failure)."""
    suffix, driver = VECTOR_FORMATS[vector_format]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        if driver is None:
            gdf.to_parquet(tmp)
        else:
            kwargs = {"layer": path.stem} if driver == "GPKG" else {}
            gdf.to_file(tmp, driver=driver, engine="pyogrio", geometry_type="Polygon", **kwargs)
        os.replace(tmp, path)
    finally:
        for q in (tmp, Path(str(tmp) + "-journal"), Path(str(tmp) + "-wal"), Path(str(tmp) + "-shm")):
            if q.exists():
                q.unlink()


def vectorize_raster(prob_path: str | Path, output: str | Path | None = None, *, threshold: float = 0.5,
                     min_area: float = 0.0, fill_holes: bool = False, simplify: float = 0.0,
                     vector_format: str | None = None, overwrite: bool = False, progress="none",
                     as_geodataframe: bool = False) -> VectorResult:
    """Turn a probability raster into polygons.

    Args:
        prob_path: probability raster (uint8 0..255 or float 0..1; masked pixels ignored).
        output: vector file (default ``<stem>_polygons.<ext>`` next to the raster).
        threshold: probability above which a pixel is positive.
        min_area: drop polygons smaller than this (map units squared).
        fill_holes: remove interior rings.
        simplify: Douglas-Peucker tolerance in map units (0 = none).
        vector_format: ``gpkg`` (default), ``geojson``, ``fgb`` or ``parquet``; taken from the
            output suffix when not given.
        overwrite: replace an existing output.
        progress: ``"bar"``, ``"json"``, ``"none"`` or a :class:`~sam2unext.geo.progress.Progress`.
        as_geodataframe: also return the GeoDataFrame.

    Returns:
        :class:`VectorResult` (path, count, total area).

    Raises:
        InputError: unreadable raster or threshold outside (0, 1).
        OutputError: bad format, existing output without ``overwrite``, unwritable folder.

    Example:
        >>> from sam2unext.geo import vectorize_raster
        >>> res = vectorize_raster("scene_prob.tif", threshold=0.6, min_area=50, simplify=0.5)
        >>> res.path, res.count
    """
    if not 0.0 <= threshold < 1.0:
        raise InputError(f"threshold {threshold} must be in [0, 1)")
    fmt = format_from(output, vector_format)
    out = check_output(output or default_vector_path(prob_path, fmt), overwrite)
    reporter = make_progress(progress)
    binary = temp_name(out, "binary")
    try:
        with open_raster(prob_path) as src:
            reporter.update("vectorize", 0, 1)
            write_binary(src, binary, threshold)
            gdf = polygons_from(src, binary, threshold, min_area=min_area, fill_holes=fill_holes,
                                simplify=simplify, progress=reporter)
        write_vector(gdf, out, fmt)
        reporter.update("vectorize", 1, 1)
    finally:
        remove_quietly(binary)
    return VectorResult(out, len(gdf), float(gdf["area"].sum()) if len(gdf) else 0.0,
                        gdf if as_geodataframe else None)
