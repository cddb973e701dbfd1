"""The real tiny preset (``sam2unext-test``) through the whole pipeline."""

import numpy as np
import pytest
import rasterio
import torch

import sam2unext
from sam2unext.geo import predict_raster
from sam2unext.geo.running.forward import single_thread_forward
from sam2unext.transforms import to_unit_float

from geo_helpers import ROTATED, smooth_rgb, write_raster


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return sam2unext.load_model(preset="sam2unext-test", device="cpu")


def test_single_tile_matches_model_predict(tiny_model, tmp_path):
    size = tiny_model.input_size
    data = smooth_rgb(size, size, seed=3)
    path = write_raster(tmp_path / "scene.tif", data, transform=ROTATED)
    res = predict_raster(path, tmp_path / "p.tif", model=tiny_model, vector=False, progress="none", out_dtype="float32")
    image = to_unit_float(data[None])
    with single_thread_forward():  # the pipeline's forward passes run on one thread (thread-count-free bits)
        direct = tiny_model.predict(image, sam2unext.low_res_view(image, tiny_model.low_res_size))[0, 0].numpy()
    with rasterio.open(res.probability) as out:
        assert out.transform == ROTATED and out.shape == (size, size)
        np.testing.assert_array_equal(out.read(1), direct)


def test_multi_tile_scene_runs_end_to_end(tiny_model, tmp_path):
    size = tiny_model.input_size
    path = write_raster(tmp_path / "scene.tif", smooth_rgb(size + 60, size + 40, seed=4))
    res = predict_raster(
        path, tmp_path / "p.tif", model=tiny_model, overlap=0.25, batch_size=2, progress="none", as_geodataframe=True
    )
    assert res.tiles_run == 4 and res.vector.exists()
    with rasterio.open(res.probability) as out, rasterio.open(path) as src:
        assert out.crs == src.crs and out.transform == src.transform and out.shape == src.shape
        values = out.read(1)
    assert values.dtype == np.uint8 and values.min() < values.max()
