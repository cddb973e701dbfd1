"""Exactness of the stitched result against the per-pixel function on the whole scene."""

import numpy as np
import pytest
import rasterio

from sam2unext.geo import predict_raster
from sam2unext.geo.demo.stand_ins import PixelModel

from geo_helpers import expected_uint8, whole_scene_probability


@pytest.mark.parametrize("tile,overlap", [(32, 0.25), (48, 0.5), (64, "10px"), (40, 0.0), (256, 0.25)])
def test_uint8_bit_exact_rotated(rgb_raster, tmp_path, tile, overlap):
    model = PixelModel(input_size=tile, low_res_size=14)
    res = predict_raster(
        rgb_raster, tmp_path / "out.tif", model=model, overlap=overlap, batch_size=3, vector=False, progress="none"
    )
    expected, _ = expected_uint8(rgb_raster)
    with rasterio.open(res.probability) as out, rasterio.open(rgb_raster) as src:
        assert out.crs == src.crs
        assert out.transform == src.transform
        assert out.shape == src.shape
        assert out.dtypes[0] == "uint8"
        np.testing.assert_array_equal(out.read(1), expected)
        assert out.profile["tiled"] and out.compression is not None
    assert res.tiles_skipped == 0 and res.tiles_run > 0
    assert all(s[1:] == (3, 14, 14) for s in model.low_res_shapes)
    assert model.low_res_shapes, "the low-res view must be passed when the tile is the model's size"


def test_float32_exact_and_batch_independent(rgb_raster, tmp_path):
    prob, _ = whole_scene_probability(rgb_raster)
    for batch in (1, 5):
        res = predict_raster(
            rgb_raster,
            tmp_path / f"out{batch}.tif",
            model=PixelModel(36, None),
            overlap=0.3,
            batch_size=batch,
            vector=False,
            progress="none",
            out_dtype="float32",
        )
        with rasterio.open(res.probability) as out:
            np.testing.assert_array_equal(out.read(1), prob)


def test_nodata_holes_and_skipped_tiles(nodata_raster, tmp_path):
    res = predict_raster(
        nodata_raster, tmp_path / "out.tif", model=PixelModel(32, 14), overlap=0.25, vector=False, progress="none"
    )
    expected, valid = expected_uint8(nodata_raster)
    assert res.tiles_skipped >= 1
    with rasterio.open(res.probability) as out:
        data, mask = out.read(1), out.read_masks(1)
    np.testing.assert_array_equal(mask > 0, valid)
    np.testing.assert_array_equal(data[valid], expected[valid])
    res32 = predict_raster(
        nodata_raster,
        tmp_path / "out32.tif",
        model=PixelModel(32, 14),
        vector=False,
        progress="none",
        out_dtype="float32",
    )
    with rasterio.open(res32.probability) as out:
        data = out.read(1)
        assert np.isnan(out.nodata)
    assert np.isnan(data[~valid]).all() and not np.isnan(data[valid]).any()


def test_scene_smaller_than_tile_is_padded(tmp_path):
    from geo_helpers import smooth_rgb, write_raster

    path = write_raster(tmp_path / "small.tif", smooth_rgb(17, 23))
    res = predict_raster(path, tmp_path / "o.tif", model=PixelModel(64, 28), vector=False, progress="none")
    with rasterio.open(res.probability) as out:
        np.testing.assert_array_equal(out.read(1), expected_uint8(path)[0])
    assert res.tiles_run == 1


def test_uint16_alpha_stretch_is_scene_wide(uint16_alpha_raster, tmp_path):
    res = predict_raster(
        uint16_alpha_raster, tmp_path / "o.tif", model=PixelModel(32, None), overlap=0.25, vector=False, progress="none"
    )
    expected, valid = expected_uint8(uint16_alpha_raster)
    assert not valid[100, 120] and valid[0, 0]
    with rasterio.open(res.probability) as out:
        np.testing.assert_array_equal(out.read_masks(1) > 0, valid)
        np.testing.assert_array_equal(out.read(1)[valid], expected[valid])


def test_fixed_stretch_and_band_selection(uint16_alpha_raster, tmp_path):
    kwargs = dict(bands=(3, 2, 1), stretch=(0, 4095))
    res = predict_raster(
        uint16_alpha_raster, tmp_path / "o.tif", model=PixelModel(32, None), vector=False, progress="none", **kwargs
    )
    expected, valid = expected_uint8(uint16_alpha_raster, **kwargs)
    with rasterio.open(res.probability) as out:
        np.testing.assert_array_equal(out.read(1)[valid], expected[valid])


def test_single_band_is_replicated_and_png_without_georef(tmp_path):
    from geo_helpers import smooth_rgb, write_raster

    grey = write_raster(
        tmp_path / "grey.png", smooth_rgb(40, 50)[:1], driver="PNG", crs=None, transform=rasterio.Affine.identity()
    )
    res = predict_raster(grey, tmp_path / "o.tif", model=PixelModel(16, None), vector=False, progress="none")
    expected, _ = expected_uint8(grey)
    with rasterio.open(res.probability) as out:
        assert out.crs is None
        np.testing.assert_array_equal(out.read(1), expected)


def test_resolution_resamples_grid(rgb_raster, tmp_path):
    res = predict_raster(
        rgb_raster, tmp_path / "o.tif", model=PixelModel(32, None), resolution=4.0, vector=False, progress="none"
    )
    with rasterio.open(res.probability) as out, rasterio.open(rgb_raster) as src:
        assert out.shape == (75, 86) or out.shape == (75, 87)
        assert out.crs == src.crs
        assert np.isclose(np.hypot(out.transform.a, out.transform.d), 4.0, rtol=0.01)
        bounds_src = src.transform @ (src.width, src.height)
        bounds_out = out.transform @ (out.width, out.height)
        np.testing.assert_allclose(bounds_src, bounds_out)


def test_cog_has_overviews(tmp_path):
    from geo_helpers import smooth_rgb, write_raster

    path = write_raster(tmp_path / "big.tif", smooth_rgb(700, 600))
    res = predict_raster(path, tmp_path / "o.tif", model=PixelModel(256, None), vector=False, progress="none")
    with rasterio.open(res.probability) as out:
        assert out.overviews(1)
        assert out.block_shapes[0] == (512, 512)
