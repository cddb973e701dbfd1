"""Building regularization (geo/vectors/regularize.py): square walls from staircase outlines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio.features import rasterize, shapes
from scipy import ndimage
from shapely import affinity
from shapely.geometry import Polygon, box, shape

from sam2unext.geo import vectorize_raster
from sam2unext.geo.vectors.regularize import dominant_angle, regularize_polygons, resolve_overlaps

from geo_helpers import write_raster

L_SHAPE = Polygon([(0, 0), (60, 0), (60, 25), (25, 25), (25, 50), (0, 50)])


def burn(polys, size=220, noise=0.0, seed=0) -> np.ndarray:
    """Pixels whose centres are inside ``polys``; with ``noise``, boundary pixels flipped at that rate."""
    mask = rasterize(list(polys), out_shape=(size, size)).astype(bool)
    if noise:
        band = ndimage.binary_dilation(mask) ^ ndimage.binary_erosion(mask)
        mask ^= band & (np.random.default_rng(seed).random(mask.shape) < noise)
    return mask.astype(np.uint8)


def traced(mask: np.ndarray) -> list:
    return [shape(g) for g, _ in shapes(mask, mask=mask > 0, connectivity=4)]


def corner_angles(poly: Polygon) -> np.ndarray:
    c = np.asarray(poly.exterior.coords)[:-1]
    u, v = np.roll(c, 1, axis=0) - c, np.roll(c, -1, axis=0) - c
    cos = (u * v).sum(1) / np.hypot(*u.T) / np.hypot(*v.T)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def shapes_under_test():
    rng = np.random.default_rng(3)
    for k in range(24):
        w, h = rng.uniform(14, 70), rng.uniform(14, 50)
        base = box(0, 0, w, h) if k % 2 else affinity.scale(L_SHAPE, w / 60, h / 50, origin=(0, 0))
        angle = rng.uniform(0, 90)
        yield k, affinity.rotate(affinity.translate(base, 80, 80), angle, origin=(110, 110)), angle


@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_rotated_rectangles_and_l_shapes_get_right_angles_and_keep_their_area(noise):
    cases = list(shapes_under_test())
    outlines = [max(traced(burn([g], noise=noise, seed=k)), key=lambda p: p.area) for k, g, _ in cases]
    squared = regularize_polygons(np.array(outlines, dtype=object), 2.0)
    for (k, truth, angle), before, after in zip(cases, outlines, squared):
        corners = len(truth.exterior.coords) - 1
        assert after.is_valid and len(after.exterior.coords) - 1 == corners, k
        assert np.abs(corner_angles(after) - 90).max() < 3.0, k  # right angles within 3 degrees
        assert after.area == pytest.approx(truth.area, rel=0.04), k  # area within 4 %
        assert len(before.exterior.coords) > 2 * corners or angle % 90 < 1 or noise  # it was a staircase
        walls = math.degrees(dominant_angle(np.asarray(after.exterior.coords)))
        assert min(abs(walls - angle % 90), 90 - abs(walls - angle % 90)) < 3.0, k  # the building's own direction


def test_no_polygon_disappears_merges_or_overlaps():
    # two rotated houses one pixel apart, a blob, a courtyard with a shed inside it, and specks
    houses = [
        affinity.rotate(box(20, 20, 70, 50), 30, origin=(45, 35)),
        affinity.rotate(box(20, 55, 70, 80), 30, origin=(45, 35)),
    ]
    blob = shapely.Point(160, 50).buffer(25)
    court = box(100, 110, 200, 200).difference(box(125, 135, 175, 175))
    shed = box(138, 146, 162, 164)
    mask = burn([*houses, blob, court, shed]) | burn([box(5, 200, 7, 202), box(30, 150, 31, 151)])
    before = np.array(traced(mask), dtype=object)
    after = resolve_overlaps(regularize_polygons(before, 2.0), before)
    assert len(after) == len(before)
    assert shapely.is_valid(after).all() and (shapely.area(after) > 0).all()
    tree = shapely.STRtree(after)
    left, right = tree.query(after, predicate="intersects")
    pairs = left < right
    assert (shapely.area(shapely.intersection(after[left[pairs]], after[right[pairs]])) < 1e-9).all()
    # each output polygon is its own input's: it overlaps that one most
    for i, g in enumerate(after):
        assert int(np.argmax(shapely.area(shapely.intersection(before, g)))) == i
    # the blob is no building: it keeps (nearly) its outline
    b = int(np.argmin([p.centroid.distance(shapely.Point(160, 50)) for p in before]))
    assert after[b].symmetric_difference(before[b]).area < 0.1 * before[b].area


def test_overlapping_squared_neighbours_go_back_to_their_traced_outlines():
    traced_ = np.array([box(0, 0, 10, 10), box(10, 0, 20, 10), box(30, 0, 40, 10)], dtype=object)
    squared = np.array([box(0, 0, 11, 10), box(10, 0, 20, 10), box(30, 0, 41, 10)], dtype=object)
    out = resolve_overlaps(squared, traced_)
    assert out[0].equals(traced_[0]) and out[1].equals(traced_[1]) and out[2].equals(squared[2])


def test_regularize_on_a_geographic_scene_gives_right_angles_on_the_ground(tmp_path):
    lat, gsd = 60.0, 0.5
    dy, dx = gsd / 111_412.0, gsd / 55_800.0
    size = 220
    house = affinity.rotate(affinity.translate(L_SHAPE, 80, 80), 27, origin=(110, 110))
    data = burn([house], size=size, noise=0.1, seed=5)[None] * np.uint8(220)
    transform = Affine(dx, 0, 13.0, 0, -dy, lat)
    path = write_raster(tmp_path / "p.tif", data, transform=transform, crs="EPSG:4326")
    res = vectorize_raster(path, regularize=1.0, as_geodataframe=True)
    gdf = res.geodataframe
    main = gdf.sort_values("area").iloc[-1:]
    utm = main.to_crs(main.estimate_utm_crs()).geometry.iloc[0]
    assert len(utm.exterior.coords) == 7
    assert np.abs(corner_angles(utm) - 90).max() < 3.0
    assert main["area"].iloc[0] == pytest.approx(house.area * gsd**2, rel=0.04)
    plain = vectorize_raster(path, tmp_path / "plain.gpkg", as_geodataframe=True).geodataframe
    assert len(plain) == len(gdf)  # no polygon disappears
