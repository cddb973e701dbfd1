"""Polygons from probability rasters: formats, CRS, attributes, filters."""

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from sam2unext.geo import vectorize_raster

from geo_helpers import ROTATED, write_raster


@pytest.fixture
def prob_raster(tmp_path):
    """uint8 probabilities: a 10x10 square (p=0.8) with a 2x2 hole, a 2x2 speck (p=0.6), background 0.1."""
    data = np.full((1, 40, 50), 26, dtype=np.uint8)
    data[0, 5:15, 5:15] = 204
    data[0, 9:11, 9:11] = 26
    data[0, 30:32, 40:42] = 153
    data[0, 6, 6] = 255
    return write_raster(tmp_path / "prob.tif", data)


@pytest.mark.parametrize("fmt", ["gpkg", "geojson", "fgb", "parquet"])
def test_formats_keep_crs_and_attributes(prob_raster, tmp_path, fmt):
    res = vectorize_raster(prob_raster, vector_format=fmt, as_geodataframe=True)
    assert res.path.suffix == {"gpkg": ".gpkg", "geojson": ".geojson", "fgb": ".fgb", "parquet": ".parquet"}[fmt]
    gdf = gpd.read_parquet(res.path) if fmt == "parquet" else gpd.read_file(res.path)
    assert gdf.crs.to_epsg() == 32633
    assert len(gdf) == 2 == res.count
    assert set(["area", "perimeter", "mean_prob", "max_prob"]) <= set(gdf.columns)
    big = gdf.sort_values("area").iloc[-1]
    assert big["area"] == pytest.approx((100 - 4) * 1.5**2)
    assert big["perimeter"] == pytest.approx((40 + 8) * 1.5)
    assert big["max_prob"] == pytest.approx(1.0)
    assert big["mean_prob"] == pytest.approx((95 * 204 + 255) / 96 / 255)
    assert res.area == pytest.approx(gdf["area"].sum())
    assert not list(tmp_path.glob(".*"))


def test_min_area_fill_holes_simplify(prob_raster, tmp_path):
    res = vectorize_raster(
        prob_raster, tmp_path / "v.gpkg", min_area=10.0, fill_holes=True, simplify=0.5, as_geodataframe=True
    )
    gdf = res.geodataframe
    assert len(gdf) == 1
    assert gdf.iloc[0]["area"] == pytest.approx(100 * 1.5**2)
    assert len(gdf.geometry.iloc[0].interiors) == 0


def test_threshold_and_rotated_float(tmp_path):
    data = np.zeros((1, 30, 30), dtype=np.float32)
    data[0, 10:20, 10:20] = 0.7
    data[0, 0, 0] = np.nan
    path = write_raster(tmp_path / "p.tif", data, transform=ROTATED, nodata=float("nan"))
    assert vectorize_raster(path, tmp_path / "a.gpkg", threshold=0.75).count == 0
    res = vectorize_raster(path, tmp_path / "b.gpkg", threshold=0.5, as_geodataframe=True)
    poly = res.geodataframe.geometry.iloc[0]
    assert poly.area == pytest.approx(100 * 4.0)
    with rasterio.open(path) as src:
        cx, cy = src.transform @ (15, 15)
    assert poly.centroid.x == pytest.approx(cx) and poly.centroid.y == pytest.approx(cy)
    empty = gpd.read_file(tmp_path / "a.gpkg")
    assert len(empty) == 0 and empty.crs.to_epsg() == 32633
