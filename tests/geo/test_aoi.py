"""Area of interest: resolved onto the scene grid from every accepted form (geo/reading/aoi.py)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from rasterio.transform import Affine
from rasterio.windows import Window
from shapely import Polygon, box

from sam2unext.errors import InputError
from sam2unext.geo.reading.aoi import resolve_aoi

# A 100 x 200 (rows x cols) UTM 33N grid, 10 m pixels, origin (500000, 5000000).
CRS = "EPSG:32633"
T = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0)
H, W = 100, 200
GRID = dict(crs=CRS, transform=T, height=H, width=W)


def xy(col: float, row: float) -> tuple[float, float]:
    return T @ (col, row)


def bbox_of(col0, row0, col1, row1) -> tuple:
    (x0, y0), (x1, y1) = xy(col0, row0), xy(col1, row1)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def test_none_means_whole_scene():
    assert resolve_aoi(None, **GRID) is None


def test_bbox_on_pixel_edges_gives_that_window_and_a_full_mask():
    aoi = resolve_aoi(bbox_of(20, 10, 70, 40), **GRID)
    assert aoi.window == Window(20, 10, 50, 30)
    assert aoi.full_size == (H, W)
    inside = aoi.inside(T, aoi.window)
    assert inside.shape == (30, 50) and inside.all()


def test_bbox_off_edges_rounds_the_window_outward_and_clips_to_the_scene():
    minx, miny, maxx, maxy = bbox_of(20.4, 10.6, 70.2, 40.3)
    aoi = resolve_aoi((minx, miny, maxx, maxy), **GRID)
    assert aoi.window == Window(20, 10, 51, 31)
    beyond = resolve_aoi(bbox_of(-50, -30, 40, 20), **GRID)
    assert beyond.window == Window(0, 0, 40, 20)


def test_polygon_mask_is_pixel_centres_inside():
    # a right triangle with legs along the window's left and bottom edges
    (x0, y0), (x1, _), (_, y1) = xy(0, 60), xy(60, 60), xy(0, 0)
    tri = Polygon([(x0, y0), (x1, y0), (x0, y1)])
    aoi = resolve_aoi(tri, **GRID)
    assert aoi.window == Window(0, 0, 60, 60)
    mask = aoi.inside(T, aoi.window)
    rows, cols = np.mgrid[0:60, 0:60]
    # the hypotenuse runs from (col 0, row 0) to (col 60, row 60): centre (c+.5, r+.5) is inside
    # when c < r; GDAL's rasterizer also counts centres lying on the edge (c == r)
    np.testing.assert_array_equal(mask, cols <= rows)
    # any window of the grid, including one partly outside the AOI's own window
    part = aoi.inside(T, Window(50, 50, 20, 20))
    assert part.shape == (20, 20) and part[:, 10:].sum() == 0 and part[9, 0]


def test_touches_is_geometry_not_bounding_box():
    (x0, y0), (x1, _), (_, y1) = xy(0, 60), xy(60, 60), xy(0, 0)
    aoi = resolve_aoi(Polygon([(x0, y0), (x1, y0), (x0, y1)]), **GRID)
    assert aoi.touches(T, Window(0, 40, 10, 10))
    assert not aoi.touches(T, Window(45, 0, 10, 10))  # inside the bounding window, off the triangle


def test_bbox_crs_is_reprojected():
    from pyproj import Transformer

    to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    minx, miny, maxx, maxy = bbox_of(50, 20, 150, 80)
    lon0, lat0 = to_ll.transform(minx, miny)
    lon1, lat1 = to_ll.transform(maxx, maxy)
    aoi = resolve_aoi((lon0, lat0, lon1, lat1), "EPSG:4326", **GRID)
    # a lon/lat box is not a UTM box: the window is close to, and covers, the UTM one
    w = aoi.window
    assert abs(w.col_off - 50) <= 2 and abs(w.row_off - 20) <= 2
    assert abs(w.width - 100) <= 4 and abs(w.height - 60) <= 4
    assert aoi.geometry.area == pytest.approx(box(minx, miny, maxx, maxy).area, rel=0.02)


def test_geodataframe_and_file_with_their_own_crs(tmp_path):
    poly_utm = box(*bbox_of(10, 10, 30, 30))
    other = box(*bbox_of(100, 50, 120, 70))
    gdf = gpd.GeoDataFrame(geometry=[poly_utm, other], crs=CRS).to_crs("EPSG:3857")
    from_gdf = resolve_aoi(gdf, "EPSG:4326", **GRID)  # aoi_crs ignored: the frame has one
    w = from_gdf.window  # a round trip through EPSG:3857 moves edges by far less than a pixel
    assert (w.col_off, w.row_off) == (10, 10) and w.width in (110, 111) and w.height in (60, 61)
    path = tmp_path / "aoi.gpkg"
    gdf.to_file(path, driver="GPKG", engine="pyogrio")
    from_file = resolve_aoi(str(path), **GRID)
    assert from_file.window == from_gdf.window
    mask = from_file.inside(T, from_file.window)
    assert mask.sum() == pytest.approx(2 * 20 * 20, abs=8)  # two 20x20 squares, not the 110x60 box


def test_geometry_without_crs_is_in_the_scene_crs():
    aoi = resolve_aoi(box(*bbox_of(0, 0, 10, 10)), **GRID)
    assert aoi.window == Window(0, 0, 10, 10)


@pytest.mark.parametrize(
    "bad, match",
    [
        ((5.0, 1.0, 2.0, 3.0), "minx < maxx"),
        (bbox_of(300, 0, 400, 50), "does not overlap"),
        ("missing.gpkg", "does not exist"),
        (box(0, 0, 0, 0), "no area"),
        (object(), "must be a shapely geometry"),
    ],
)
def test_bad_aois_are_one_line_input_errors(bad, match):
    with pytest.raises(InputError, match=match) as info:
        resolve_aoi(bad, **GRID)
    assert "\n" not in str(info.value)


def test_unknown_crs_and_scene_without_crs():
    with pytest.raises(InputError, match="not known"):
        resolve_aoi(bbox_of(0, 0, 10, 10), "EPSG:999999", **GRID)
    with pytest.raises(InputError, match="scene has no CRS"):
        resolve_aoi((0, 0, 10, 10), "EPSG:4326", crs=None, transform=Affine.identity(), height=20, width=20)
    pixels = resolve_aoi((2, 3, 8, 9), crs=None, transform=Affine.identity(), height=20, width=20)
    assert pixels.window == Window(2, 3, 6, 6)


def test_empty_vector_file_is_an_input_error(tmp_path):
    path = tmp_path / "empty.gpkg"
    gpd.GeoDataFrame(geometry=[], crs=CRS).to_file(path, driver="GPKG", engine="pyogrio")
    with pytest.raises(InputError, match="no features"):
        resolve_aoi(path, **GRID)
