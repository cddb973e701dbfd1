"""predict_raster(aoi=...): the output covers the AOI window, outside is nodata, far tiles are never read."""

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.features import geometry_mask
from shapely.geometry import Polygon, box

from sam2unext.geo import predict_raster
from sam2unext.geo.demo.stand_ins import PixelModel
from sam2unext.geo.reading.windows import TileReader

from geo_helpers import NORTH_UP, expected_uint8, smooth_rgb, write_raster

X0, Y0 = NORTH_UP.c, NORTH_UP.f  # the 1.5 m north-up grid of write_raster


@pytest.fixture
def scene(tmp_path):
    return write_raster(tmp_path / "s.tif", smooth_rgb(200, 190, seed=1))


def test_polygon_aoi_window_nodata_outside_and_clipped_polygons(scene, tmp_path):
    tri = Polygon([(X0 + 30, Y0 - 30), (X0 + 240, Y0 - 30), (X0 + 30, Y0 - 200)])
    res = predict_raster(
        scene,
        tmp_path / "aoi.tif",
        model=PixelModel(32, None),
        tile_size=32,
        aoi=tri,
        chunk_size=64,
        threshold=0.3,
        progress="none",
    )
    expected, _ = expected_uint8(scene)
    with rasterio.open(res.probability) as out:
        # the bounding window of the triangle on the scene grid: rows 20..133, columns 20..159
        assert (out.transform.c, out.transform.f) == (X0 + 30, Y0 - 30) and out.shape == (114, 140)
        inside = geometry_mask([tri], out_shape=out.shape, transform=out.transform, invert=True)
        values, valid = out.read(1), out.read_masks(1) > 0
    np.testing.assert_array_equal(valid, inside)  # nodata exactly outside the AOI
    np.testing.assert_array_equal(values[valid], expected[20:134, 20:160][valid])  # the full run's values
    assert (res.scene_tiles, res.tiles_run, res.tiles_skipped) == (64, 21, 9)  # 30 tiles over the window
    polygons = gpd.read_file(res.vector)
    assert len(polygons) > 0 and polygons.geometry.within(tri.buffer(1e-6)).all()
    assert polygons.geom_type.eq("Polygon").all()


def test_tiles_far_from_the_aoi_are_never_read(scene, tmp_path, monkeypatch):
    reads = []
    real = TileReader._read_region

    def spy(self, region):
        reads.append(region)
        return real(self, region)

    monkeypatch.setattr(TileReader, "_read_region", spy)
    small = box(X0 + 150, Y0 - 180, X0 + 180, Y0 - 150)  # 20 x 20 px inside the scene
    res = predict_raster(
        scene, tmp_path / "o.tif", model=PixelModel(32, None), tile_size=32, aoi=small, vector=False, progress="none"
    )
    assert res.tiles_run == 1 and len(reads) == 1 and res.scene_tiles == 64
    assert (reads[0].width, reads[0].height) == (20, 20)  # the one tile, clipped to the AOI window
    with rasterio.open(res.probability) as out:
        assert out.shape == (20, 20) and (out.read_masks(1) > 0).all()


def test_bbox_in_another_crs_and_refusals(scene, tmp_path):
    import pyproj

    from sam2unext.errors import InputError

    to_ll = pyproj.Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    lon0, lat0 = to_ll.transform(X0 + 45, Y0 - 150)
    lon1, lat1 = to_ll.transform(X0 + 105, Y0 - 90)
    res = predict_raster(
        scene,
        tmp_path / "o.tif",
        model=PixelModel(32, None),
        tile_size=32,
        aoi=(lon0, lat0, lon1, lat1),
        aoi_crs="EPSG:4326",
        vector=False,
        progress="none",
    )
    with rasterio.open(res.probability) as out:
        assert 40 <= out.width <= 42 and 40 <= out.height <= 42  # 60 m / 1.5 m, widened by the reprojection
    with pytest.raises(InputError, match="does not overlap the scene"):
        predict_raster(
            scene,
            tmp_path / "far.tif",
            model=PixelModel(32, None),
            tile_size=32,
            aoi=(0, 0, 1, 1),
            vector=False,
            progress="none",
        )
    assert not (tmp_path / "far.tif").exists() and not (tmp_path / "far.tif.partial").exists()
