"""Real units for polygons on any CRS: areas in m², lengths and tolerances in metres.

* A projected CRS: planar measures, converted from the CRS's linear unit to metres (a foot
  CRS gives m² too).
* A geographic CRS: areas and perimeters are geodesic on the CRS's ellipsoid
  (:class:`pyproj.Geod`); tolerances in metres are applied in a local metric frame around each
  polygon (east and north scaled by the ellipsoid's radii of curvature at its latitude).
* No georeferencing: pixel units (x = column, y = -row), as the polygons themselves.
* A geotransform without a CRS: the map's own units, unnamed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from affine import Affine
    from pyproj import Geod

__all__ = ["LocalFrames", "Units", "area_unit_of", "format_area", "units_of"]

#: kind → (area unit, length unit) as printed
UNIT_NAMES = {
    "metre": ("m²", "m"),
    "geodesic": ("m²", "m"),
    "pixel": ("px²", "px"),
    "map": ("map unit²", "map unit"),
}


@dataclass(frozen=True)
class Units:
    """How polygons of one raster are measured.

    Attributes:
        kind: ``metre`` (projected CRS), ``geodesic`` (geographic CRS), ``pixel`` (no
            georeferencing) or ``map`` (a geotransform without a CRS).
        metres_per_unit: the projected CRS's linear unit in metres (1 for the other kinds).
        degrees_per_unit: the geographic CRS's angular unit in degrees (1 for the other kinds).
        geod: the CRS's ellipsoid (``geodesic`` only).
        ellipsoid: its name, for messages (``geodesic`` only).
    """

    kind: str
    metres_per_unit: float = 1.0
    degrees_per_unit: float = 1.0
    geod: Geod | None = None
    ellipsoid: str = ""

    @property
    def area_unit(self) -> str:
        """``m²``, ``px²`` or ``map unit²``."""
        return UNIT_NAMES[self.kind][0]

    @property
    def length_unit(self) -> str:
        """``m``, ``px`` or ``map unit``."""
        return UNIT_NAMES[self.kind][1]

    def describe(self) -> str:
        """One line for ``info``: how areas, lengths and tolerances are measured."""
        if self.kind == "geodesic":
            return f"m² and m, geodesic on the {self.ellipsoid} ellipsoid; tolerances in metres"
        if self.kind == "metre":
            scale = "" if self.metres_per_unit == 1.0 else f" (1 CRS unit = {self.metres_per_unit:g} m)"
            return f"m² and m{scale}; tolerances in metres"
        if self.kind == "pixel":
            return "pixels (no georeferencing); tolerances in pixels"
        return "map units (a geotransform without a CRS); tolerances in map units"

    def measure(self, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Area and perimeter (all rings) of each polygon, in :attr:`area_unit` and :attr:`length_unit`."""
        import shapely

        geoms = np.asarray(geoms, dtype=object)
        if self.kind != "geodesic":
            k = self.metres_per_unit
            return shapely.area(geoms) * k * k, shapely.length(geoms) * k
        return self._geodesic(geoms)

    def _geodesic(self, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import shapely

        assert self.geod is not None
        area = np.zeros(len(geoms))
        perimeter = np.zeros(len(geoms))
        if not len(geoms):
            return area, perimeter
        rings, owner = shapely.get_rings(geoms, return_index=True)
        exterior = np.r_[True, owner[1:] != owner[:-1]]  # get_rings lists the shell of each polygon first
        coords, ring_of = shapely.get_coordinates(rings, return_index=True)
        coords = coords * self.degrees_per_unit
        starts = np.searchsorted(ring_of, np.arange(len(rings)))
        ends = np.r_[starts[1:], len(coords)]
        for i, (s, e) in enumerate(zip(starts, ends)):
            a, p = self.geod.polygon_area_perimeter(coords[s:e, 0], coords[s:e, 1])
            area[owner[i]] += abs(a) if exterior[i] else -abs(a)
            perimeter[owner[i]] += p
        return area, perimeter

    def metres_per_map_unit(self, latitude: float) -> tuple[float, float]:
        """Metres per map unit east and north at ``latitude`` (degrees; used by geographic CRSs only)."""
        if self.kind != "geodesic":
            return self.metres_per_unit, self.metres_per_unit
        assert self.geod is not None
        a, e2 = self.geod.a, self.geod.es
        phi = math.radians(latitude)
        w = math.sqrt(1.0 - e2 * math.sin(phi) ** 2)
        north = a * (1.0 - e2) / w**3  # meridional radius of curvature
        east = a / w * math.cos(phi)  # prime vertical radius × cos(latitude)
        per_degree = math.pi / 180.0 * self.degrees_per_unit
        return east * per_degree, north * per_degree

    def max_pixel_area(self, transform: Affine, bounds: tuple[float, float, float, float]) -> float:
        """An upper bound of one pixel's area (in :attr:`area_unit`) anywhere in ``bounds`` (map units)."""
        pixel = abs(transform.determinant)
        if self.kind != "geodesic":
            return pixel * self.metres_per_unit**2
        lat = sorted(abs(v * self.degrees_per_unit) for v in (bounds[1], bounds[3]))
        nearest_equator = 0.0 if bounds[1] * bounds[3] <= 0 else lat[0]
        east = self.metres_per_map_unit(nearest_equator)[0]
        north = self.metres_per_map_unit(min(lat[1], 90.0))[1]  # grows towards the poles
        return pixel * east * north

    def frames(self, geoms: np.ndarray) -> LocalFrames:
        """Local metric frames, one per polygon (see :class:`LocalFrames`)."""
        import shapely

        geoms = np.asarray(geoms, dtype=object)
        centres = shapely.get_coordinates(shapely.centroid(geoms)) if len(geoms) else np.zeros((0, 2))
        if self.kind == "geodesic":
            scale = np.array([self.metres_per_map_unit(lat) for lat in centres[:, 1]]).reshape(-1, 2)
        else:
            scale = np.full((len(geoms), 2), self.metres_per_unit)
        return LocalFrames(centres, scale)


@dataclass(frozen=True)
class LocalFrames:
    """Per-polygon local frames in metres: ``x' = (x - x0) · kx``, ``y' = (y - y0) · ky``.

    The origin is the polygon's centroid; ``kx``, ``ky`` are metres per map unit east and north
    there (equal for a projected CRS; for a geographic CRS the ellipsoid's radii of curvature
    at the polygon's latitude). Over a building-sized polygon the frame is metric to far better
    than a millimetre, so tolerances in metres and right angles mean what they say.
    """

    origin: np.ndarray
    scale: np.ndarray

    def to_local(self, geoms: np.ndarray) -> np.ndarray:
        """The polygons in their local metric frames."""
        return self._map(geoms, lambda xy, o, k: (xy - o) * k)

    def from_local(self, geoms: np.ndarray) -> np.ndarray:
        """Polygons of :meth:`to_local` (same order) back in map units."""
        return self._map(geoms, lambda xy, o, k: xy / k + o)

    def _map(self, geoms: np.ndarray, fn: Any) -> np.ndarray:
        import shapely

        geoms = np.asarray(geoms, dtype=object)
        if not len(geoms):
            return geoms
        xy, index = shapely.get_coordinates(geoms, return_index=True)
        return shapely.set_coordinates(geoms.copy(), fn(xy, self.origin[index], self.scale[index]))


def units_of(crs: Any, transform: Affine | None = None) -> Units:
    """The :class:`Units` of a raster's CRS (rasterio or pyproj CRS, WKT, EPSG string) and transform.

    No CRS with an identity (or no) transform: pixels; no CRS with a transform: map units.
    """
    if crs is None:
        return Units("pixel" if transform is None or transform.is_identity else "map")
    from pyproj import CRS

    pcrs = CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    axis = pcrs.axis_info[0] if pcrs.axis_info else None
    factor = float(axis.unit_conversion_factor) if axis is not None and axis.unit_conversion_factor else 1.0
    if pcrs.is_geographic:
        ellipsoid = pcrs.ellipsoid.name if pcrs.ellipsoid is not None else "CRS's"
        return Units("geodesic", degrees_per_unit=math.degrees(factor), geod=pcrs.get_geod(), ellipsoid=ellipsoid)
    return Units("metre", metres_per_unit=factor)


def area_unit_of(crs: Any, transform: Affine | None = None) -> str:
    """The printed area unit of a raster, without pyproj: m² for any CRS (planar or geodesic), else
    the unit of :func:`units_of` (px² or map unit²)."""
    return "m²" if crs is not None else units_of(None, transform).area_unit


def format_area(value: float, unit: str) -> str:
    """``850 m²``, ``1.25 ha``, ``3.142 km²`` for areas in m²; ``1,234 px²`` for the other units."""
    if unit != "m²":
        return f"{value:,.6g} {unit}"
    if value < 10_000:
        return f"{value:,.0f} m²"
    if value < 1_000_000:
        return f"{value / 10_000:,.2f} ha"
    return f"{value / 1_000_000:,.3f} km²"
