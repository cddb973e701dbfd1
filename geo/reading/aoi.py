"""Area of interest: the part of a scene to segment, resolved onto the scene's pixel grid.

``resolve_aoi`` turns what the user gave (a shapely geometry, a GeoDataFrame, a vector file,
or a ``(minx, miny, maxx, maxy)`` box) into an :class:`AreaOfInterest` in the scene's CRS:
its bounding ``window`` on the grid (clipped to the scene), its ``geometry``, and
``inside(transform, window)``, the pixel mask of any window. Pure functions over plain values
(``Affine``, ``Window``, arrays), like ``rasterio.windows``; no raster is opened here.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from rasterio.features import geometry_mask
from rasterio.transform import Affine
from rasterio.windows import Window
from shapely import box, make_valid, segmentize
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from sam2unext.errors import InputError

#: Points added along each side of a box before reprojecting it, so curved edges stay close.
_DENSIFY_POINTS = 64
#: Fraction of a pixel within which a bound counts as on a pixel edge (float noise of reprojection).
_SNAP = 1e-6


@dataclass(frozen=True)
class AreaOfInterest:
    """An area of interest on one scene grid.

    Attributes:
        geometry: polygonal geometry in the scene's CRS (clipped to nothing: it may extend
            beyond the scene).
        window: the geometry's bounding window on the scene grid, whole pixels, clipped to the
            scene; never empty.
        full_size: ``(height, width)`` of the scene grid, to report what is skipped.
    """

    geometry: BaseGeometry
    window: Window
    full_size: tuple[int, int]

    def inside(self, transform: Affine, window: Window) -> np.ndarray:
        """Which pixels of ``window`` (on the grid of ``transform``) have their centre in the AOI.

        Args:
            transform: the grid's affine transform (the scene's, or the resampled grid's).
            window: a window on that grid (``int`` offsets and sizes).

        Returns:
            ``bool`` array ``[rows, cols]``: True inside the geometry.
        """
        rows, cols = int(window.height), int(window.width)
        if rows <= 0 or cols <= 0:
            return np.zeros((max(rows, 0), max(cols, 0)), dtype=bool)
        win_transform = transform @ Affine.translation(window.col_off, window.row_off)
        return geometry_mask(
            [self.geometry], out_shape=(rows, cols), transform=win_transform, invert=True, all_touched=False
        )

    def touches(self, transform: Affine, window: Window) -> bool:
        """Whether any part of ``window`` (on the grid of ``transform``) meets the geometry.

        A tile for which this is False is never read nor run.
        """
        return bool(self.geometry.intersects(window_polygon(window, transform)))


def window_polygon(window: Window, transform: Affine) -> Polygon:
    """The footprint of a pixel window in map coordinates (its four corners; exact for rotated grids).

    Computed with ``transform @ (x, y)``: ``rasterio.windows.bounds`` uses the ``*`` operator that
    affine 3 deprecates, and its warning would reach the user on every AOI run.
    """
    c0, r0 = float(window.col_off), float(window.row_off)
    c1, r1 = c0 + float(window.width), r0 + float(window.height)
    return Polygon([transform @ (c0, r0), transform @ (c1, r0), transform @ (c1, r1), transform @ (c0, r1)])


def resolve_aoi(
    aoi: Any, aoi_crs: Any = None, *, crs: Any, transform: Affine, height: int, width: int
) -> Optional[AreaOfInterest]:
    """Resolve an area of interest onto a scene grid.

    Args:
        aoi: None (whole scene), a shapely geometry, a GeoDataFrame/GeoSeries, a vector file
            path (anything OGR reads; all features united), or a bbox ``(minx, miny, maxx, maxy)``.
        aoi_crs: the CRS of ``aoi`` when it carries none (geometry, bbox); default the scene's.
            Ignored for a file or GeoDataFrame that has its own CRS.
        crs: the scene's CRS (anything ``pyproj.CRS.from_user_input`` takes), or None.
        transform: the scene grid's affine transform.
        height, width: the scene grid's size in pixels.

    Returns:
        The :class:`AreaOfInterest`, or None when ``aoi`` is None.

    Raises:
        InputError: unreadable or empty file, bad bbox, unknown CRS, a geometry without area, an
            AOI in a CRS while the scene has none, or an AOI that does not overlap the scene.
    """
    if aoi is None:
        return None
    geometry, source_crs, label = _geometry_and_crs(aoi, aoi_crs)
    geometry = _to_scene_crs(geometry, source_crs, crs, label)
    if geometry.is_empty or geometry.area <= 0:
        raise InputError(
            f"area of interest {label} has no area; give polygons or a box with minx < maxx and miny < maxy"
        )
    scene_box = window_polygon(Window(0, 0, width, height), transform)
    window = _bounding_window(geometry, transform, height, width)
    if window is None or not geometry.intersects(scene_box):
        raise InputError(
            f"area of interest {label} (bounds {_fmt_bounds(geometry.bounds)}) does not overlap "
            f"the scene (bounds {_fmt_bounds(scene_box.bounds)}"
            "); check its coordinates and CRS"
        )
    return AreaOfInterest(geometry=geometry, window=window, full_size=(int(height), int(width)))


def _geometry_and_crs(aoi: Any, aoi_crs: Any) -> tuple[BaseGeometry, Any, str]:
    """(geometry, its CRS or None, a label for messages) from any accepted AOI form."""
    if isinstance(aoi, BaseGeometry):
        return make_valid(aoi), aoi_crs, f"geometry {aoi.geom_type}"
    if isinstance(aoi, (str, os.PathLike)):
        return _read_vector(Path(aoi), aoi_crs)
    if hasattr(aoi, "geometry") and hasattr(aoi, "crs"):  # GeoDataFrame / GeoSeries
        series = aoi.geometry if hasattr(aoi.geometry, "crs") else aoi
        if len(series) == 0:
            raise InputError("area of interest GeoDataFrame is empty; give at least one polygon")
        return make_valid(_union(series)), series.crs or aoi_crs, "GeoDataFrame"
    if isinstance(aoi, (tuple, list)) and len(aoi) == 4 and all(isinstance(v, numbers.Real) for v in aoi):
        minx, miny, maxx, maxy = (float(v) for v in aoi)
        if not (minx < maxx and miny < maxy) or not all(map(math.isfinite, (minx, miny, maxx, maxy))):
            raise InputError(
                f"bbox {minx:g} {miny:g} {maxx:g} {maxy:g} must be finite with minx < maxx and "
                "miny < maxy (order: minx miny maxx maxy)"
            )
        return box(minx, miny, maxx, maxy), aoi_crs, f"bbox {minx:g} {miny:g} {maxx:g} {maxy:g}"
    raise InputError(
        f"area of interest {aoi!r} must be a shapely geometry, a GeoDataFrame, a vector file "
        "path or a bbox (minx, miny, maxx, maxy)"
    )


def _read_vector(path: Path, aoi_crs: Any) -> tuple[BaseGeometry, Any, str]:
    import geopandas as gpd

    if not path.exists():
        raise InputError(f"area of interest file {path} does not exist; give a GeoPackage, shapefile or GeoJSON")
    try:
        gdf = gpd.read_file(path, engine="pyogrio")
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad input file
        raise InputError(f"area of interest file {path} cannot be read as vector data ({exc})") from exc
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    if len(gdf) == 0:
        raise InputError(f"area of interest file {path} has no features; give a file with polygons")
    return make_valid(_union(gdf.geometry)), gdf.crs or aoi_crs, f"file {path}"


def _union(series: Any) -> BaseGeometry:
    """The union of a GeoSeries (geopandas has no type information: ``Any``)."""
    return series.union_all() if hasattr(series, "union_all") else series.unary_union


def _to_scene_crs(geometry: BaseGeometry, source_crs: Any, scene_crs: Any, label: str) -> BaseGeometry:
    """Reproject ``geometry`` from ``source_crs`` (None: already in the scene CRS) to ``scene_crs``."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    if source_crs is None:
        return geometry
    try:
        src = CRS.from_user_input(source_crs)
    except CRSError as exc:
        raise InputError(f"CRS {source_crs!r} of area of interest {label} is not known; give e.g. EPSG:4326") from exc
    if scene_crs is None:
        raise InputError(
            f"area of interest {label} is in {src.to_string()} but the scene has no CRS; "
            "give the AOI in pixel-grid coordinates without a CRS, or georeference the scene"
        )
    dst = CRS.from_user_input(scene_crs)
    if src == dst:
        return geometry
    import geopandas as gpd

    minx, miny, maxx, maxy = geometry.bounds
    step = max(maxx - minx, maxy - miny) / _DENSIFY_POINTS
    dense = segmentize(geometry, step) if step > 0 else geometry
    out = gpd.GeoSeries([dense], crs=src).to_crs(dst).iloc[0]
    if out is None or out.is_empty or not all(map(math.isfinite, out.bounds)):
        raise InputError(
            f"area of interest {label} cannot be reprojected from {src.to_string()} to the "
            "scene's CRS; check its coordinates"
        )
    return make_valid(out)


def _bounding_window(geometry: BaseGeometry, transform: Affine, height: int, width: int) -> Optional[Window]:
    """The whole-pixel window covering ``geometry``'s bounds, clipped to the scene; None if empty."""
    minx, miny, maxx, maxy = geometry.bounds
    inverse = ~transform  # works for north-up, south-up and rotated grids alike
    cols, rows = zip(*(inverse @ (x, y) for x in (minx, maxx) for y in (miny, maxy)))
    col0, row0 = math.floor(min(cols) + _SNAP), math.floor(min(rows) + _SNAP)
    col1, row1 = math.ceil(max(cols) - _SNAP), math.ceil(max(rows) - _SNAP)
    col0, row0 = max(col0, 0), max(row0, 0)
    col1, row1 = min(col1, int(width)), min(row1, int(height))
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)


def _fmt_bounds(bounds: Sequence[float]) -> str:
    return " ".join(f"{v:.6g}" for v in bounds)
