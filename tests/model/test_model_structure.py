"""Presets, stage shapes of every preset (meta device), light import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from sam2unext import PRESETS, PresetError, get_preset, list_presets
from sam2unext.api import build_model
from sam2unext.encoders import hiera_stage_features
from sam2unext.presets import PARAMETER_COUNTS

REAL = [f"{family}-{size}" for family in ("sam2unext", "sam2unet") for size in ("large", "base_plus", "small", "tiny")]


def test_preset_names_match_the_contract():
    assert set(REAL + ["sam2unext-test", "sam2unet-test"]) <= set(list_presets())
    assert set(PARAMETER_COUNTS) == set(PRESETS)
    assert get_preset("sam2unext-large").dinov2 == "vit_large_patch14_dinov2"
    assert get_preset("sam2unext-tiny").dinov2 == "vit_small_patch14_dinov2"
    with pytest.raises(PresetError, match="unknown preset 'nope'"):
        get_preset("nope")


#: Sizes that have both a ``sam2unext-<size>`` and a ``sam2unet-<size>`` preset (checked in pairs).
PAIRED_SIZES = ["large", "base_plus", "small", "tiny", "test"]
PAIRED = {f"{family}-{size}" for family in ("sam2unext", "sam2unet") for size in PAIRED_SIZES}


@pytest.mark.parametrize("size", PAIRED_SIZES)
def test_shapes_at_every_stage_of_every_preset_on_meta_device(size):
    """Both families share the trunk: one meta forward per Hiera size checks all 10 presets,
    and their parameter counts in ``PARAMETER_COUNTS``."""
    config = PRESETS[f"sam2unext-{size}"]
    unet = PRESETS[f"sam2unet-{size}"]
    s = config.input_size
    with torch.device("meta"):
        model = build_model(config.name).eval()
        unet_model = build_model(unet.name).eval()
    for preset, built in ((config, model), (unet, unet_model)):  # the table `models` prints
        assert sum(p.numel() for p in built.parameters()) == PARAMETER_COUNTS[preset.name], preset.name
    stages = hiera_stage_features(model.sam, torch.empty(1, 3, s, s, device="meta"))
    assert [tuple(t.shape) for t in stages] == [
        (1, c, s // r, s // r) for c, r in zip(config.stage_channels, config.stage_strides)
    ]
    dino_map = model.dino(torch.empty(1, 3, config.low_res_size, config.low_res_size, device="meta"))[-1]
    grid = config.low_res_size // 14
    assert tuple(dino_map.shape) == (1, config.dinov2_width, grid, grid)
    assert config.low_res_size / s == 448 / 1024
    fused = model.glue(stages, dino_map)
    assert [tuple(t.shape) for t in fused] == [
        (1, config.decoder_channels, s // r, s // r) for r in config.stage_strides
    ]
    assert tuple(model.decode(*fused).shape) == (1, 1, s, s)
    # SAM2-UNet: the same trunk at its own input size, decoder with side outputs
    u = unet.input_size
    unet_stages = [
        torch.empty(1, c, u // r, u // r, device="meta") for c, r in zip(unet.stage_channels, unet.stage_strides)
    ]
    outs = unet_model.decode(*unet_stages, side_outputs=True)
    assert [tuple(o.shape) for o in outs] == [(1, 1, u, u)] * 3


def test_parameter_count_of_every_other_preset():
    """A row of the preset table outside the pairs above gets its ``PARAMETER_COUNTS`` figure checked too."""
    for name in [n for n in PRESETS if n not in PAIRED]:
        with torch.device("meta"):
            model = build_model(name)
        assert sum(p.numel() for p in model.parameters()) == PARAMETER_COUNTS[name], name


def test_paper_parameter_count_of_the_large_preset():
    """The paper reports about 522 M parameters, about 6.0 M of them trainable."""
    with torch.device("meta"):
        model = build_model("sam2unext-large")
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 515e6 < total < 530e6
    assert 5.5e6 < trainable < 6.5e6


def test_forward_shapes_of_tiny_presets_on_cpu():
    for name in ("sam2unext-test", "sam2unet-test"):
        model = build_model(name).eval()
        with torch.no_grad():
            out = model(torch.randn(2, 3, 256, 256))
        assert out.shape == (2, 1, 256, 256) and torch.isfinite(out).all()


def test_import_sam2unext_is_light():
    code = "import sys, sam2unext; print('torch' in sys.modules, 'timm' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]
