"""``SegmentationModel.predict`` and ``transforms.low_res_view``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam2unext import InputError, UserError, build_model, load_model
from sam2unext.transforms import IMAGENET_MEAN, IMAGENET_STD, low_res_view, normalize

from model_oracle import randomize_


@pytest.fixture(scope="module")
def model():
    return randomize_(build_model("sam2unext-test"), seed=11).eval()


def test_low_res_view_is_plain_bilinear_without_antialias():
    image = torch.rand(2, 3, 256, 256)
    view = low_res_view(image, 112)
    assert view.shape == (2, 3, 112, 112)
    torch.testing.assert_close(
        view,
        F.interpolate(image, size=(112, 112), mode="bilinear", align_corners=False, antialias=False),
        rtol=0,
        atol=0,
    )


def test_low_res_view_commutes_with_normalization():
    image = torch.rand(1, 3, 256, 256)
    torch.testing.assert_close(
        normalize(low_res_view(image, 112)), low_res_view(normalize(image), 112), rtol=1e-5, atol=1e-5
    )


def test_predict_equals_sigmoid_of_forward_on_normalized_input(model):
    image = torch.rand(2, 3, 256, 256)
    probs = model.predict(image)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = torch.sigmoid(model((image - mean) / std))
    assert probs.dtype == torch.float32 and probs.device.type == "cpu"
    torch.testing.assert_close(probs, expected, rtol=1e-5, atol=1e-6)


def test_predict_accepts_uint8_numpy_and_3d_tensors_and_resizes_back(model):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, size=(300, 200, 3), dtype=np.uint8)
    out = model.predict(array)
    assert isinstance(out, np.ndarray) and out.shape == (300, 200) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    from_uint8 = model.predict(tensor)
    from_float = model.predict(tensor.float() / 255)
    assert from_uint8.shape == (1, 1, 300, 200)
    torch.testing.assert_close(from_uint8, from_float)
    np.testing.assert_allclose(out, from_uint8[0, 0].numpy(), rtol=0, atol=1e-6)


def test_predict_batching_and_explicit_low_res_give_the_same_result(model):
    image = torch.rand(3, 3, 256, 256)
    whole = model.predict(image)
    torch.testing.assert_close(model.predict(image, batch_size=2), whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.predict(image, low_res_view(image, 112)), whole, rtol=1e-4, atol=1e-5)
    other = model.predict(image, torch.rand(3, 3, 112, 112))
    assert (other - whole).abs().max() > 1e-4  # the low-res tile really is used


def test_predict_keeps_training_mode_and_bn_statistics(model):
    model.train()
    before = model.up1.conv.double_conv[1].running_mean.clone()
    model.predict(torch.rand(1, 3, 256, 256))
    assert model.training
    torch.testing.assert_close(model.up1.conv.double_conv[1].running_mean, before)
    model.eval()


def test_predict_bfloat16_is_close_to_float32(model):
    image = torch.rand(1, 3, 256, 256)
    full = model.predict(image)
    half = model.predict(image, dtype="bfloat16")
    assert half.dtype == torch.float32
    assert (half - full).abs().mean() < 0.05


def test_float16_on_cpu_falls_back_to_float32_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="float16 needs a CUDA device"):
        model = load_model(preset="sam2unet-test", device="cpu", dtype="float16")
    assert model.inference_dtype == torch.float32
    with pytest.raises(UserError, match="unknown dtype"):
        load_model(preset="sam2unet-test", device="cpu", dtype="float8")


def test_predict_rejects_malformed_images(model):
    with pytest.raises(InputError, match="HxWx3"):
        model.predict(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(InputError, match=r"\[B,3,H,W\]"):
        model.predict(torch.zeros(1, 4, 10, 10))
    with pytest.raises(InputError, match="low_res batch"):
        model.predict(torch.zeros(2, 3, 256, 256), torch.zeros(1, 3, 112, 112))


def test_sam2unet_predict_ignores_low_res():
    unet = build_model("sam2unet-test").eval()
    image = torch.rand(1, 3, 256, 256)
    torch.testing.assert_close(unet.predict(image, torch.rand(1, 3, 112, 112)), unet.predict(image))


def test_no_forward_pass_holds_an_activation_of_2_to_the_31_elements(model, monkeypatch):
    """CUDA refuses tensors of 2**31 elements (a 32-tile batch of sam2unext-large made one on an H200)."""
    from sam2unext import models

    largest = max(1, models.CUDA_TENSOR_ELEMENTS // model.max_tiles_per_pass(torch.device("cpu")))
    monkeypatch.setattr(models, "CUDA_TENSOR_ELEMENTS", 3 * largest)
    model.__dict__.pop("_pass_limits", None)
    assert model.max_tiles_per_pass(torch.device("cpu")) == 3
    model.__dict__.pop("_pass_limits", None)
