"""Real units on any CRS (geo/vectors/units.py): geodesic m² on geographic CRSs, m² on projected ones."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine
from shapely.geometry import Polygon, box

from sam2unext.errors import InputError
from sam2unext.geo import vectorize_raster
from sam2unext.geo.vectors.units import format_area, units_of

from geo_helpers import write_raster

GSD = 0.5  # metres per pixel on the ground


def geographic_scene(tmp_path, lat: float, lon: float = 13.0, crs: str = "EPSG:4326"):
    """A 400 x 300 probability raster in a geographic CRS at ~0.5 m per pixel: an L, a rectangle, a ring, specks."""
    dy = GSD / 111_320.0
    dx = GSD / (111_320.0 * math.cos(math.radians(lat)))
    transform = Affine(dx, 0, lon, 0, -dy, lat + 150 * dy)
    data = np.full((1, 300, 400), 10, dtype=np.uint8)
    data[0, 20:120, 20:60] = 220  # an L: 100 x 40 px plus 40 x 60 px
    data[0, 80:120, 60:120] = 220
    data[0, 150:280, 200:380] = 200  # a 130 x 180 px block with a 30 x 40 px courtyard
    data[0, 200:230, 260:300] = 10
    data[0, 30:34, 300:303] = 230  # specks of 12 and 9 px (3 and 2.25 m²)
    data[0, 250:253, 30:33] = 230
    return write_raster(tmp_path / f"prob_{lat:g}.tif", data, transform=transform, crs=crs)


@pytest.mark.parametrize("lat", [0.3, -33.9, 47.0, 60.0, 69.7, 78.2])
def test_geodesic_areas_match_the_utm_zone(tmp_path, lat):
    res = vectorize_raster(geographic_scene(tmp_path, lat), as_geodataframe=True)
    gdf = res.geodataframe
    assert res.area_unit == "m²" and len(gdf) == 4
    utm = gdf.to_crs(gdf.estimate_utm_crs())
    np.testing.assert_allclose(gdf["area"], utm.area, rtol=0.01)
    np.testing.assert_allclose(gdf["perimeter"], utm.length, rtol=0.01)
    # and they are the ground areas drawn: 6400 px, 130*180 - 30*40 px, at 0.5 m per pixel (within the
    # scene's own scale error of the rounded degree sizes)
    big = gdf.sort_values("area").iloc[-1]
    assert big["area"] == pytest.approx((130 * 180 - 30 * 40) * GSD**2, rel=0.01)
    assert res.area == pytest.approx(gdf["area"].sum())


def test_min_area_and_simplify_are_metres_on_a_geographic_crs(tmp_path):
    path = geographic_scene(tmp_path, 60.0)
    kept = vectorize_raster(path, tmp_path / "a.gpkg", min_area=20, as_geodataframe=True).geodataframe
    assert len(kept) == 2 and (kept["area"] > 1000).all()  # the 3 m² specks go, nothing else does
    assert vectorize_raster(path, tmp_path / "b.gpkg", min_area=2.5).count == 3  # 3 m² kept, 2.25 m² not
    # 1 m in degrees of latitude is ~9e-6: simplifying by 1 "map unit" would collapse everything,
    # 1 m keeps the rectangle-like outlines to within a metre
    plain = vectorize_raster(path, tmp_path / "c.gpkg", min_area=20, as_geodataframe=True).geodataframe
    simple = vectorize_raster(path, tmp_path / "d.gpkg", min_area=20, simplify=1.0, as_geodataframe=True)
    for a, b in zip(plain.geometry, simple.geodataframe.geometry):
        assert shapely.hausdorff_distance(a, b) < 1.0 / 111_000 * 2  # within ~1 m (in degrees, latitude ~60)
        assert b.is_valid
    np.testing.assert_allclose(simple.geodataframe["area"], plain["area"], rtol=0.02)


def test_projected_crs_in_feet_reports_square_metres(tmp_path):
    data = np.full((1, 40, 50), 10, dtype=np.uint8)
    data[0, 5:15, 5:25] = 200
    path = write_raster(tmp_path / "ft.tif", data, transform=Affine(2.0, 0, 980000, 0, -2.0, 200000), crs="EPSG:2263")
    res = vectorize_raster(path, as_geodataframe=True)
    foot = 0.3048006096012192
    assert res.geodataframe["area"].iloc[0] == pytest.approx(200 * 4 * foot**2)
    assert res.geodataframe["perimeter"].iloc[0] == pytest.approx(60 * 2 * foot)
    assert vectorize_raster(path, tmp_path / "x.gpkg", min_area=75).count == 0  # 74.3 m² (800 ft²)


def test_no_georeferencing_stays_in_pixels(tmp_path):
    data = np.zeros((1, 30, 30), dtype=np.uint8)
    data[0, 2:8, 3:7] = 255
    path = write_raster(tmp_path / "plain.tif", data, transform=Affine.identity(), crs=None)
    res = vectorize_raster(path, as_geodataframe=True)
    assert res.area_unit == "px²" and res.area == 24 and res.area_text == "24 px²"


def test_units_and_format():
    assert units_of(None).kind == "pixel"
    assert units_of(None, Affine.scale(2.0, -2.0)).area_unit == "map unit²"
    assert units_of("EPSG:32633").describe().startswith("m² and m")
    geo = units_of("EPSG:4326")
    assert geo.kind == "geodesic" and "WGS 84" in geo.describe()
    east, north = geo.metres_per_map_unit(60.0)
    assert east == pytest.approx(55_800, rel=0.002) and north == pytest.approx(111_412, rel=0.001)
    assert [format_area(v, "m²") for v in (850.4, 12_500, 3_141_593)] == ["850 m²", "1.25 ha", "3.142 km²"]
    # a polygon with a hole: geodesic area subtracts it, the perimeter counts both rings (as shapely.length)
    ring = Polygon(
        box(13, 60, 13.001, 60.001).exterior.coords, [box(13.0004, 60.0004, 13.0006, 60.0006).exterior.coords]
    )
    area, perimeter = geo.measure(np.array([ring, box(13, 61, 13.001, 61.001)], dtype=object))
    utm = gpd.GeoSeries([ring], crs=4326).to_crs(32633)
    assert area[0] == pytest.approx(utm.area[0], rel=0.001) and perimeter[0] == pytest.approx(utm.length[0], rel=0.001)


@pytest.mark.parametrize("bad", [0, -1.5, "wide"])
def test_bad_regularize_tolerance_is_a_user_error(tmp_path, bad):
    with pytest.raises(InputError, match="regularize"):
        vectorize_raster(geographic_scene(tmp_path, 10.0), regularize=bad)
