"""Multispectral models: N-band encoders widened from RGB weights, band metadata, refusals."""

from __future__ import annotations

import json

import pytest
import torch
from timm.models import adapt_input_conv

from sam2unext import BandConfig, build_model, checkpoint_bands, load_model, read_checkpoint_metadata, save_checkpoint
from sam2unext.api import DEMO_WEIGHTS
from sam2unext.bands import EXTRA_MEAN, adapt_input_weight, input_convs, parameter_counts
from sam2unext.checkpoints import read_safetensors, save_state_with_metadata
from sam2unext.errors import CheckpointError, InputError
from sam2unext.transforms import IMAGENET_MEAN

FAMILIES = ("sam2unext-test", "sam2unet-test")


@pytest.fixture(scope="module")
def rgb_checkpoints(tmp_path_factory):
    """One random RGB checkpoint per family (seeded)."""
    folder = tmp_path_factory.mktemp("rgb")
    paths = {}
    for preset in FAMILIES:
        torch.manual_seed(0)
        paths[preset] = save_checkpoint(build_model(preset), folder / f"{preset}.safetensors")
    return paths


def _spread(x: torch.Tensor, in_chans: int, rgb_channels) -> torch.Tensor:
    """An ``in_chans`` batch holding ``x``'s R, G, B on ``rgb_channels`` and zeros elsewhere."""
    out = torch.zeros(x.shape[0], in_chans, *x.shape[2:])
    for colour, channel in enumerate(rgb_channels):
        out[:, channel] = x[:, colour]
    return out


@pytest.mark.parametrize("preset", FAMILIES)
def test_zero_fill_model_from_rgb_checkpoint_gives_the_rgb_logits(rgb_checkpoints, preset):
    """Extra kernels zero + extra bands zero: the RGB model's logits (R, G, B first), up to float32
    summation order (the zero terms change how some conv kernels block the sum, e.g. on one thread)."""
    rgb = load_model(rgb_checkpoints[preset], device="cpu")
    wide = load_model(rgb_checkpoints[preset], device="cpu", in_chans=4, band_fill="zero")
    assert wide.in_chans == 4 and wide.config.in_chans == 4
    torch.manual_seed(1)
    x = torch.randn(2, 3, 256, 256)
    with torch.inference_mode():
        torch.testing.assert_close(wide(_spread(x, 4, (0, 1, 2))), rgb(x), rtol=0, atol=1e-6)
    image = torch.randint(0, 256, (1, 3, 256, 256), dtype=torch.uint8)
    wide_image = torch.cat([image, torch.zeros(1, 1, 256, 256, dtype=torch.uint8)], dim=1)
    torch.testing.assert_close(wide.predict(wide_image), rgb.predict(image), rtol=0, atol=1e-6)


def test_zero_fill_with_reordered_channels_matches_to_float_rounding(rgb_checkpoints):
    """R, G, B on channels 3, 1, 0 of five: same logits up to float32 summation order."""
    rgb = load_model(rgb_checkpoints["sam2unext-test"], device="cpu")
    wide = load_model(
        rgb_checkpoints["sam2unext-test"], device="cpu", in_chans=5, rgb_channels=(3, 1, 0), band_fill="zero"
    )
    torch.manual_seed(2)
    x = torch.randn(1, 3, 256, 256)
    with torch.inference_mode():
        torch.testing.assert_close(wide(_spread(x, 5, (3, 1, 0))), rgb(x), rtol=0, atol=1e-6)


def test_repeat_fill_is_timms_adaptation_on_both_encoders():
    torch.manual_seed(0)
    rgb = build_model("sam2unext-test")
    torch.manual_seed(0)
    wide = build_model("sam2unext-test", in_chans=5, rgb_channels=(3, 1, 0))
    convs, rgb_convs = input_convs(wide), input_convs(rgb)
    assert set(convs) == {"sam.patch_embed.proj", "dino.model.patch_embed.proj"}
    for name, conv in convs.items():
        timm_weight = adapt_input_conv(5, rgb_convs[name].weight.detach().clone())
        expected = torch.empty_like(conv.weight)
        expected[:, [3, 1, 0]] = timm_weight[:, :3]  # R, G, B kernels (scaled 3/5 by timm)
        expected[:, [2, 4]] = timm_weight[:, 3:]  # timm's repeats
        assert torch.equal(conv.weight, expected)
        assert torch.equal(conv.bias, rgb_convs[name].bias)
        assert conv.weight.requires_grad and conv.bias.requires_grad
    assert wide.bands.rgb_channels == (3, 1, 0)
    assert wide.bands.mean[3] == IMAGENET_MEAN[0] and wide.bands.mean[4] == EXTRA_MEAN
    counts, rgb_counts = parameter_counts(wide), parameter_counts(rgb)
    layer_params = sum(p.numel() for c in convs.values() for p in c.parameters())
    assert counts["input_layers"] == layer_params and rgb_counts["input_layers"] == 0
    assert counts["trainable"] == rgb_counts["trainable"] + layer_params


def test_adapt_input_weight_zero_fill_and_errors():
    w = torch.randn(8, 3, 7, 7)
    out = adapt_input_weight(w, 4, (1, 2, 3), fill="zero")
    assert torch.equal(out[:, 1:], w) and not out[:, 0].any()
    with pytest.raises(ValueError, match="three different channels"):
        adapt_input_weight(w, 4, (0, 0, 1))
    with pytest.raises(ValueError, match="RGB conv weight"):
        adapt_input_weight(torch.randn(8, 4, 7, 7), 5)


def test_band_metadata_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model("sam2unext-test", in_chans=4, rgb_channels=(2, 1, 0))
    model.bands = BandConfig.for_channels(
        4, (2, 1, 0), source_bands=(4, 3, 2, 8), stretch=((0.0, 3000.0),) * 4
    ).with_extra_stats([0.1, 0.2, 0.3, 0.6], [0.1, 0.1, 0.1, 0.2])
    path = save_checkpoint(model, tmp_path / "rgbn.safetensors")
    meta = read_checkpoint_metadata(path)
    assert meta["bands"] == model.bands and meta["preset_config"]["in_chans"] == 4
    assert json.loads(read_safetensors(path)[1]["bands"])["source_bands"] == [4, 3, 2, 8]
    assert checkpoint_bands(path) == model.bands
    loaded = load_model(path, device="cpu", dtype="float32")  # bit-exact: the float32 of build_model
    assert loaded.bands == model.bands and loaded.in_chans == 4
    assert all(p.requires_grad for c in input_convs(loaded).values() for p in c.parameters())
    x = torch.rand(1, 4, 256, 256)
    torch.testing.assert_close(loaded.predict(x), model.predict(x), rtol=0, atol=0)


def test_checkpoints_without_band_metadata_stay_rgb(tmp_path):
    """Files written before multispectral models (no ``bands``, no ``in_chans``) load as RGB."""
    torch.manual_seed(0)
    model = build_model("sam2unext-test")
    state, metadata = read_safetensors(save_checkpoint(model, tmp_path / "new.safetensors"))
    del metadata["bands"]
    config = json.loads(metadata["preset_config"])
    del config["in_chans"]
    metadata["preset_config"] = json.dumps(config)
    save_state_with_metadata(state, tmp_path / "old.safetensors", metadata)
    old = load_model(tmp_path / "old.safetensors", device="cpu")
    assert old.in_chans == 3 and old.bands == BandConfig()
    assert checkpoint_bands(tmp_path / "old.safetensors") == BandConfig()
    assert load_model(DEMO_WEIGHTS, device="cpu").bands == BandConfig()
    assert checkpoint_bands("demo") == BandConfig() and checkpoint_bands(None) == BandConfig()


def test_wrong_band_count_is_refused(rgb_checkpoints, tmp_path):
    wide = load_model(rgb_checkpoints["sam2unet-test"], device="cpu", in_chans=4)
    with pytest.raises(InputError, match="image has 3 bands but the model takes 4"):
        wide.predict(torch.rand(1, 3, 64, 64))
    path = save_checkpoint(wide, tmp_path / "four.safetensors")
    with pytest.raises(CheckpointError, match="takes 4 bands, not 5"):
        load_model(path, device="cpu", in_chans=5)
