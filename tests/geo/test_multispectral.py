"""Multispectral scenes in the geo processor: N-band plans and tiles, band-count refusals,
predict_raster with a 4-band model (path and xarray)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rasterio.windows import Window

from sam2unext import build_model, save_checkpoint
from sam2unext.errors import InputError
from sam2unext.geo import predict_raster
from sam2unext.geo.demo.stand_ins import PixelModel
from sam2unext.geo.models import ModelChoice
from sam2unext.geo.reading.bands import apply_stretch
from sam2unext.geo.reading.model_bands import make_model_plan
from sam2unext.geo.reading.plan import make_plan
from sam2unext.geo.reading.windows import TileReader
from sam2unext.transforms import to_unit_float

from geo_helpers import write_raster


@pytest.fixture(scope="module")
def four_band(tmp_path_factory):
    """A 4-band uint16 scene (300 x 280) and its data."""
    rng = np.random.default_rng(0)
    data = rng.integers(100, 9000, (4, 280, 300)).astype(np.uint16)
    data[3, :, :150] += 1000
    return write_raster(tmp_path_factory.mktemp("ms") / "rgbn.tif", data), data


@pytest.fixture(scope="module")
def model4(tmp_path_factory):
    """A random 4-band sam2unet-test model (R, G, B on channels 0..2) and its checkpoint."""
    torch.manual_seed(0)
    model = build_model("sam2unet-test", in_chans=4).eval()
    path = save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "rgbn.safetensors")
    return model, path


def test_n_band_plan_and_tiles(four_band):
    path, data = four_band
    plan = make_plan(path, bands=(4, 3, 2, 1), n_bands=4, rgb_bands=(3, 2, 1))
    assert plan.bands == (4, 3, 2, 1) and len(plan.stretch) == 4 and plan.rgb_channels == (1, 2, 3)
    reader = TileReader(plan, 128)
    try:
        tile = reader.read(Window(10, 20, 128, 128))
    finally:
        reader.close()
    expected = apply_stretch(data[[3, 2, 1, 0], 20:148, 10:138], plan.stretch)
    assert tile.dtype == np.uint8 and tile.shape == (4, 128, 128)
    np.testing.assert_array_equal(tile, expected)
    assert tuple(to_unit_float([tile, tile]).shape) == (2, 4, 128, 128)
    assert make_plan(path, n_bands=4).bands == (1, 2, 3, 4)  # all bands of a 4-band scene


def test_band_count_mismatch_names_both_counts(four_band, tmp_path):
    path, data = four_band
    with pytest.raises(InputError, match="name 3 bands but the model takes 4"):
        make_plan(path, bands=(1, 2, 3), n_bands=4)
    three = write_raster(tmp_path / "rgb.tif", data[:3])
    with pytest.raises(InputError, match="has 3 bands but the model takes 4"):
        make_plan(three, n_bands=4)
    with pytest.raises(InputError, match="has 3 bands but the model takes 4 \\(trained on bands 4,3,2,1\\)"):
        make_plan(three, n_bands=4, default_bands=(4, 3, 2, 1))
    with pytest.raises(InputError, match="rgb band 4 is not among"):
        make_plan(path, bands=(1, 2, 3), rgb_bands=(4, 3, 2))


def test_checkpoint_decides_bands_and_refuses_other_counts(four_band, model4, tmp_path):
    path, data = four_band
    _, checkpoint = model4
    assert make_model_plan(path, ModelChoice(checkpoint=checkpoint).band_config()).bands == (1, 2, 3, 4)
    three = write_raster(tmp_path / "rgb.tif", data[:3])
    with pytest.raises(InputError, match="has 3 bands but the model takes 4"):
        predict_raster(three, tmp_path / "out.tif", checkpoint=checkpoint, device="cpu", progress="none")
    with pytest.raises(InputError, match="differ from the model's R, G, B mapping"):
        make_model_plan(path, ModelChoice(checkpoint=checkpoint).band_config(), rgb_bands=(3, 2, 1))
    # an RGB stand-in model reads three bands as before, R, G, B in order
    assert make_model_plan(path, ModelChoice(PixelModel()).band_config()).bands == (1, 2, 3)
    assert make_model_plan(
        path, ModelChoice(PixelModel()).band_config(), bands=(3, 2, 1), rgb_bands=(3, 2, 1)
    ).bands == (3, 2, 1)
    with pytest.raises(InputError, match="reads its bands as R, G, B"):
        make_model_plan(path, ModelChoice(PixelModel()).band_config(), bands=(3, 2, 1), rgb_bands=(1, 2, 3))


def test_predict_raster_four_bands_path_and_xarray(four_band, model4, tmp_path):
    """A 4-band model over a 4-band scene, from the file and from a 4-band DataArray: same map."""
    import rioxarray

    path, _ = four_band
    model, _ = model4
    res = predict_raster(
        path,
        tmp_path / "file_prob.tif",
        model=model,
        overlap=0.25,
        batch_size=2,
        vector=False,
        progress="none",
        out_dtype="float32",
    )
    da = rioxarray.open_rasterio(path)
    assert da.sizes["band"] == 4
    res_x = predict_raster(
        da,
        tmp_path / "xr_prob.tif",
        model=model,
        overlap=0.25,
        batch_size=2,
        vector=False,
        progress="none",
        out_dtype="float32",
        as_xarray=True,
    )
    a = rioxarray.open_rasterio(res.probability).values
    b = res_x.data_array.values
    assert res.tiles_run == res_x.tiles_run > 1
    np.testing.assert_array_equal(a[0], b)
    assert np.isfinite(b).all() and 0 <= b.min() and b.max() <= 1
