"""Probability raster → polygons (threshold, polygonize, filter, attributes, write).

The threshold pass reads the probability raster block by block into a temporary binary
raster; ``rasterio.features.shapes`` then runs on that dataset band (GDAL polygonize streams
rows, so no whole-scene array is made). Polygons are traced in pixel coordinates, their
mean/max probability read from their own window, then mapped to the raster's (possibly
rotated) geotransform. Area, perimeter, ``min_area``, ``simplify`` and the regularization
tolerance are in m² and m on any CRS (geodesic on a geographic CRS, :mod:`.units`), in pixels
for a raster without georeferencing.
"""

from __future__ import annotations

import errno
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import shapes
from rasterio.windows import Window

from sam2unext.errors import InputError, OutputError
from sam2unext.files import write_atomically
from sam2unext.geo.progress import Progress, make_progress
from sam2unext.geo.reading.opening import open_raster
from sam2unext.geo.vectors.regularize import MIN_IOU, check_regularize, regularize_polygons, resolve_overlaps
from sam2unext.geo.vectors.units import Units, format_area, units_of
from sam2unext.geo.writing.cog import check_output, leftover_temporaries, remove_quietly, temp_name

if TYPE_CHECKING:
    import geopandas as gpd
    from rasterio.io import DatasetReader
    from shapely.geometry.base import BaseGeometry

#: format name → (file suffix, OGR driver; None = GeoParquet through pyarrow)
VECTOR_FORMATS = {
    "gpkg": (".gpkg", "GPKG"),
    "geojson": (".geojson", "GeoJSON"),
    "fgb": (".fgb", "FlatGeobuf"),
    "parquet": (".parquet", None),
}
COLUMNS = ("area", "perimeter", "mean_prob", "max_prob")
#: Default regularization tolerance, in pixel sizes.
REGULARIZE_PIXELS = 2.0


@dataclass
class VectorResult:
    """What :func:`vectorize_raster` made: the file, polygon count, total area in ``area_unit``.

    ``area_unit``: ``m²`` for any georeferenced raster (geodesic on a geographic CRS), ``px²``
    without georeferencing, ``map unit²`` for a geotransform without a CRS.
    """

    path: Path
    count: int
    area: float
    geodataframe: gpd.GeoDataFrame | None = None
    area_unit: str = "m²"

    @property
    def area_text(self) -> str:
        """The total area as people write it: ``850 m²``, ``1.25 ha``, ``3.142 km²``."""
        return format_area(self.area, self.area_unit)


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
        raise OutputError(
            f"vector format {vector_format or Path(path or '').suffix!r} must be one of {', '.join(VECTOR_FORMATS)}"
        )
    return fmt


def default_vector_path(prob_path: str | Path, vector_format: str) -> Path:
    """``<probability stem>_polygons.<ext>`` next to the probability raster."""
    p = Path(prob_path)
    return p.with_name(p.stem + "_polygons" + VECTOR_FORMATS[vector_format][0])


def probability_scale(dtype: str) -> float:
    """Divisor from stored values to probabilities (255 for uint8, 1 for float)."""
    return 255.0 if dtype == "uint8" else 1.0


def write_binary(src: DatasetReader, path: Path, threshold: float) -> None:
    """Threshold ``src`` band 1 block by block into a uint8 0/1 GeoTIFF at ``path``."""
    scale = probability_scale(src.dtypes[0])
    profile = dict(
        driver="GTiff",
        width=src.width,
        height=src.height,
        count=1,
        dtype="uint8",
        transform=Affine.identity(),
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="DEFLATE",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            for row0 in range(0, src.height, 512):
                window = Window(0, row0, src.width, min(512, src.height - row0))
                values = src.read(1, window=window).astype(np.float32) / np.float32(scale)
                valid = src.read_masks(1, window=window) > 0
                dst.write(((values > threshold) & valid & np.isfinite(values)).astype(np.uint8), 1, window=window)


def polygon_stats(
    src: DatasetReader, geoms_px: np.ndarray, scale: float, strip: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and max probability of the pixels inside each pixel-space polygon.

    Polygons are burnt as ids into one row strip at a time (pixel centres, the same pixels
    that were polygonized) and probabilities are summed per id, so memory is one strip.
    """
    import shapely
    from rasterio.features import rasterize

    n = len(geoms_px)
    sums = np.zeros(n + 1, dtype=np.float64)
    counts = np.zeros(n + 1, dtype=np.float64)
    maxes = np.full(n + 1, -np.inf, dtype=np.float64)
    if n == 0:
        return sums[1:], np.zeros(0)
    tree = shapely.STRtree(geoms_px)
    for row0 in range(0, src.height, strip):
        h = min(strip, src.height - row0)
        idx = tree.query(shapely.box(0, row0, src.width, row0 + h))
        if idx.size == 0:
            continue
        ids = rasterize(
            ((geoms_px[i], int(i) + 1) for i in idx),
            out_shape=(h, src.width),
            transform=Affine.translation(0, row0),
            fill=0,
            dtype="int32",
        ).ravel()
        hit = ids > 0
        if not hit.any():
            continue
        vals = src.read(1, window=Window(0, row0, src.width, h)).astype(np.float64).ravel()[hit] / scale
        ids = ids[hit]
        sums += np.bincount(ids, weights=vals, minlength=n + 1)
        counts += np.bincount(ids, minlength=n + 1)
        np.maximum.at(maxes, ids, vals)
    counts[counts == 0] = np.nan
    return (sums / counts)[1:], np.where(np.isfinite(maxes), maxes, np.nan)[1:]


#: Polygons of a raster without georeferencing: pixel units, x = column, y = -row (where QGIS
#: shows a raster without a geotransform: from (0, -height) to (width, 0)).
PIXEL_UNITS = Affine(1.0, 0.0, 0.0, 0.0, -1.0, 0.0)


def vector_transform(src: DatasetReader) -> Affine:
    """The transform polygons are mapped with: the raster's, or :data:`PIXEL_UNITS` without one."""
    if src.crs is None and src.transform.is_identity:
        return PIXEL_UNITS
    return src.transform


def raster_units(src: DatasetReader) -> Units:
    """How the polygons of ``src`` are measured (see :mod:`sam2unext.geo.vectors.units`)."""
    t = vector_transform(src)
    return units_of(src.crs, None if t is PIXEL_UNITS else t)


def pixel_size_metres(src: DatasetReader, units: Units | None = None) -> float:
    """The side of a square of one pixel's area at the raster's centre, in metres (pixels without georeferencing)."""
    units = units or raster_units(src)
    t = vector_transform(src)
    if units.kind != "geodesic":
        return math.sqrt(abs(t.determinant)) * units.metres_per_unit
    _, lat = t @ (src.width / 2, src.height / 2)
    east, north = units.metres_per_map_unit(lat)
    return math.sqrt(abs(t.determinant) * east * north)


def default_regularize_tolerance(src: DatasetReader) -> float:
    """The regularization tolerance used when none is given: :data:`REGULARIZE_PIXELS` pixel sizes, in metres."""
    return REGULARIZE_PIXELS * pixel_size_metres(src)


def _map_bounds(src: DatasetReader, t: Affine) -> tuple[float, float, float, float]:
    xs, ys = zip(*(t @ (c, r) for c in (0, src.width) for r in (0, src.height)))
    return min(xs), min(ys), max(xs), max(ys)


def polygons_from(
    src: DatasetReader,
    binary_path: Path,
    *,
    min_area: float = 0.0,
    fill_holes: bool = False,
    simplify: float = 0.0,
    regularize: bool | float = False,
    clip: BaseGeometry | None = None,
) -> gpd.GeoDataFrame:
    """Polygons of the positive pixels of ``src`` with their attributes, as a GeoDataFrame.

    Areas, perimeters, ``min_area``, ``simplify`` and a ``regularize`` tolerance are in m² and m on
    any georeferenced raster (geodesic on a geographic CRS), in pixels without georeferencing
    (:class:`~sam2unext.geo.vectors.units.Units`). ``clip``: a geometry in the raster's CRS that
    the polygons are cut to (parts become polygons).
    """
    import geopandas as gpd
    import shapely
    from shapely.geometry import shape

    scale = probability_scale(src.dtypes[0])
    t = vector_transform(src)
    units = raster_units(src)
    with rasterio.open(binary_path) as binary:
        band = rasterio.band(binary, 1)
        geoms = np.array([shape(g) for g, _v in shapes(band, mask=band, connectivity=4)], dtype=object)
    if geoms.size and min_area > 0:  # a first cut in pixels that keeps every polygon the exact test below keeps
        pixel_area = units.max_pixel_area(t, _map_bounds(src, t)) * (1 + 1e-6)
        if regularize:  # a squared outline keeps an IoU >= MIN_IOU with the traced one: at most 1/MIN_IOU its area
            pixel_area /= MIN_IOU
        outline = shapely.polygons(shapely.get_exterior_ring(geoms)) if fill_holes else geoms
        geoms = geoms[shapely.area(outline) * pixel_area >= min_area]
    mean_p, max_p = polygon_stats(src, geoms, scale)
    matrix = np.array([[t.a, t.b], [t.d, t.e]])
    offset = np.array([t.c, t.f])
    geoms = shapely.transform(geoms, lambda xy: xy @ matrix.T + offset) if geoms.size else geoms
    if fill_holes and geoms.size:
        geoms = shapely.polygons(shapely.get_exterior_ring(geoms))
    if regularize and geoms.size:
        tolerance = default_regularize_tolerance(src) if regularize is True else float(regularize)
        frames = units.frames(geoms)
        squared = frames.from_local(regularize_polygons(frames.to_local(geoms), tolerance))
        geoms = resolve_overlaps(squared, geoms)
    if simplify > 0 and geoms.size:
        if units.kind == "geodesic":
            frames = units.frames(geoms)
            geoms = frames.from_local(shapely.simplify(frames.to_local(geoms), simplify, preserve_topology=True))
        else:
            geoms = shapely.simplify(geoms, simplify / units.metres_per_unit, preserve_topology=True)
    if clip is not None and geoms.size:
        parts, index = shapely.get_parts(shapely.intersection(geoms, clip), return_index=True)
        polygonal = shapely.get_type_id(parts) == 3
        geoms, mean_p, max_p = parts[polygonal], mean_p[index[polygonal]], max_p[index[polygonal]]
    area, perimeter = units.measure(geoms)
    keep = ~shapely.is_empty(geoms) & (area >= min_area) if geoms.size else np.zeros(0, bool)
    data = {"area": area[keep], "perimeter": perimeter[keep], "mean_prob": mean_p[keep], "max_prob": max_p[keep]}
    frame = gpd.GeoDataFrame(
        {k: np.asarray(v, dtype=np.float64) for k, v in data.items()},
        geometry=gpd.GeoSeries(geoms[keep], crs=src.crs),
        crs=src.crs,
    )
    frame.attrs["area_unit"] = units.area_unit
    return frame


def vector_temp_name(path: Path, suffix: str) -> Path:
    """The temporary name the polygons are written under before the rename onto ``path``."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")


def leftover_vector_temporaries(path: Path) -> list[Path]:
    """Files a killed run left beside the polygon output ``path``: its binary raster, its
    temporary polygon file and SQLite's side files; only names made for ``path`` match."""
    folder = path.parent if str(path.parent) else Path(".")
    pattern = re.compile(rf"\.{re.escape(path.name)}\.\d+\.tmp\.[a-z]+(-journal|-wal|-shm)?")
    try:
        found = [p for p in folder.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        found = []
    return sorted(found + leftover_temporaries(path))


def write_vector(gdf: gpd.GeoDataFrame, path: Path, vector_format: str) -> None:
    """Write ``gdf`` to ``path`` through :func:`sam2unext.files.write_atomically` (temporary
    name + rename; the temporary file and SQLite's side files are removed on any failure).

    Raises:
        OutputError: the disk is full or the file cannot be written (one line naming the folder).
    """
    suffix, driver = VECTOR_FORMATS[vector_format]

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            # no CRS (a raster without georeferencing) is expected here, not worth a warning
            warnings.filterwarnings("ignore", message=".*crs.*", category=UserWarning)
            if driver is None:
                gdf.to_parquet(tmp)
            else:
                kwargs = {"layer": path.stem} if driver == "GPKG" else {}
                gdf.to_file(tmp, driver=driver, engine="pyogrio", geometry_type="Polygon", **kwargs)

    tmp = vector_temp_name(path, suffix)
    try:
        write_atomically(path, write, tmp=tmp)
    except Exception as exc:
        raise write_error(path, exc) from None
    finally:
        for side in ("-journal", "-wal", "-shm"):
            Path(str(tmp) + side).unlink(missing_ok=True)


def write_error(path: Path, exc: Exception) -> Exception:
    """An :class:`OutputError` for a failed polygon write (disk full, I/O error); other errors unchanged."""
    folder = path.parent if str(path.parent) else Path(".")
    text = " ".join(str(exc).split())
    if getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in text:
        return OutputError(f"no space left in {folder} while writing {path.name}; free some space or write elsewhere")
    if isinstance(exc, OSError) or type(exc).__module__.startswith("pyogrio"):
        return OutputError(f"cannot write {path} in {folder}: {text[:200]}")
    return exc


def vectorize_raster(
    prob_path: str | Path,
    output: str | Path | None = None,
    *,
    threshold: float = 0.5,
    min_area: float = 0.0,
    fill_holes: bool = False,
    simplify: float = 0.0,
    regularize: bool | float = False,
    vector_format: str | None = None,
    overwrite: bool = False,
    progress: str | Progress | None = "none",
    as_geodataframe: bool = False,
    clip: BaseGeometry | None = None,
) -> VectorResult:
    """Turn a probability raster into polygons.

    Args:
        prob_path: probability raster (uint8 0..255 or float 0..1; masked pixels ignored).
        output: vector file (default ``<stem>_polygons.<ext>`` next to the raster).
        threshold: probability above which a pixel is positive.
        min_area: drop polygons smaller than this, in m² (geodesic on a geographic CRS; pixels
            without georeferencing).
        fill_holes: remove interior rings.
        simplify: Douglas-Peucker tolerance in metres (0 = none); on a geographic CRS applied in
            a local metric frame at each polygon's latitude.
        regularize: square building-like outlines (straight walls at right angles; see
            :mod:`sam2unext.geo.vectors.regularize`): True (outline details smaller than two
            pixel sizes are removed) or that tolerance in metres, e.g. ``1.5``; False: off.
        vector_format: ``gpkg`` (default), ``geojson``, ``fgb`` or ``parquet``; taken from the
            output suffix when not given.
        overwrite: replace an existing output.
        progress: ``"bar"``, ``"json"``, ``"none"`` or a :class:`~sam2unext.geo.progress.Progress`.
        as_geodataframe: also return the GeoDataFrame.
        clip: a shapely geometry in the raster's CRS the polygons are cut to (an area of interest).

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
    regularize = check_regularize(regularize)
    fmt = format_from(output, vector_format)
    out = check_output(output or default_vector_path(prob_path, fmt), overwrite)
    reporter = make_progress(progress)
    binary = temp_name(out, "binary")
    try:
        with open_raster(prob_path) as src:
            reporter.update("vectorize", 0, 1)
            write_binary(src, binary, threshold)
            gdf = polygons_from(
                src,
                binary,
                min_area=min_area,
                fill_holes=fill_holes,
                simplify=simplify,
                regularize=regularize,
                clip=clip,
            )
        write_vector(gdf, out, fmt)
        reporter.update("vectorize", 1, 1)
    finally:
        remove_quietly(binary)
    total = float(gdf["area"].sum()) if len(gdf) else 0.0
    return VectorResult(out, len(gdf), total, gdf if as_geodataframe else None, gdf.attrs["area_unit"])
