"""Numerical parity with the public SAM2-UNeXT / SAM2-UNet structures (float32, tiny configs)."""

from __future__ import annotations

import pytest
import torch

from sam2unext.api import build_model
from sam2unext.checkpoints import ours_to_upstream, upstream_to_ours
from sam2unext.encoders import build_dinov2, build_hiera_trunk, hiera_stage_features
from sam2unext.presets import get_preset

from model_oracle import (
    OracleSAM2UNet,
    OracleSAM2UNeXT,
    randomize_,
    rel_error,
    sam2_hiera_for,
)

TOL = 1e-4


def _oracle(preset_name: str, trunk_kind: str):
    config = get_preset(preset_name)
    torch.manual_seed(0)
    trunk = sam2_hiera_for(config) if trunk_kind == "sam2" else build_hiera_trunk(config)
    if config.family == "sam2unext":
        oracle = OracleSAM2UNeXT(
            trunk,
            build_dinov2(config),
            config.stage_channels,
            config.dinov2_width,
            config.decoder_channels,
            config.low_res_size,
        )
    else:
        oracle = OracleSAM2UNet(trunk, config.stage_channels, config.decoder_channels)
    return config, randomize_(oracle, seed=1).eval()


def _upstream_state(oracle, trunk_kind):
    state = oracle.state_dict()
    # a timm trunk inside the oracle has timm MLP names; the public files use sam2's
    return state if trunk_kind == "sam2" else ours_to_upstream(state)


def _compare(preset_name: str, trunk_kind: str) -> float:
    config, oracle = _oracle(preset_name, trunk_kind)
    model = build_model(preset_name).eval()
    model.load_state_dict(upstream_to_ours(_upstream_state(oracle, trunk_kind)), strict=True)
    x = torch.randn(2, 3, config.input_size, config.input_size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = oracle(x)
        ref = ref[0] if isinstance(ref, tuple) else ref
        ours = model(x)
    assert ours.shape == ref.shape == (2, 1, config.input_size, config.input_size)
    assert ref.abs().mean() > 1e-3  # a meaningful, non-degenerate signal
    return rel_error(ours, ref)


@pytest.mark.parametrize("preset", ["sam2unext-test", "sam2unet-test"])
def test_parity_with_meta_sam2_hiera(preset):
    """Oracle built from Meta's own ``sam2`` Hiera + the public head == our timm-based model."""
    pytest.importorskip("sam2")
    assert _compare(preset, "sam2") < TOL


@pytest.mark.parametrize("preset", ["sam2unext-test", "sam2unet-test"])
def test_parity_with_public_head_on_timm_trunk(preset):
    """Without ``sam2`` installed: same oracle head on a plain timm trunk."""
    assert _compare(preset, "timm") < TOL


@pytest.mark.slow
def test_sam2_unet_training_mode_returns_side_outputs_like_public_code():
    config, oracle = _oracle("sam2unet-test", "timm")
    model = build_model("sam2unet-test")
    model.load_state_dict(upstream_to_ours(ours_to_upstream(oracle.state_dict())), strict=True)
    model.train()
    oracle.train()
    x = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ours = model(x)
        ref = oracle(x)
    assert len(ours) == 3
    for a, b in zip(ours, ref):
        assert a.shape == (2, 1, 256, 256)
        assert rel_error(a, b) < TOL


def test_zeroed_adapters_equal_plain_timm_hiera():
    """Adapters whose last Linear is zero add GELU(0)=0: the trunk is timm's plain Hiera."""
    config = get_preset("sam2unext-test")
    model = build_model(config).eval()
    plain = build_hiera_trunk(config).eval()
    randomize_(plain, seed=2)
    trunk_state = {
        k.replace(".block.", ".", 1): v for k, v in model.sam.state_dict().items() if ".prompt_learn." not in k
    }
    assert set(trunk_state) == set(plain.state_dict())
    model.sam.load_state_dict(
        {
            **model.sam.state_dict(),
            **{
                k: plain.state_dict()[k.replace(".block.", ".", 1)]
                for k in model.sam.state_dict()
                if ".prompt_learn." not in k
            },
        }
    )
    with torch.no_grad():
        for adapter in model.sam.blocks:
            adapter.prompt_learn[2].weight.zero_()
            adapter.prompt_learn[2].bias.zero_()
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        ours = hiera_stage_features(model.sam, x)
        ref = plain.forward_intermediates(x, intermediates_only=True)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_adapters_change_the_features_when_not_zero():
    config = get_preset("sam2unext-test")
    model = build_model(config).eval()
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        before = hiera_stage_features(model.sam, x)[-1].clone()
        model.sam.blocks[0].prompt_learn[2].bias.fill_(1.0)
        after = hiera_stage_features(model.sam, x)[-1]
    assert rel_error(after, before) > 1e-3


def test_trainable_parameters_are_adapters_glue_and_decoder_only():
    model = build_model("sam2unext-test")
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {
        "sam",
        "align1",
        "align2",
        "align3",
        "align4",
        "reduce1",
        "reduce2",
        "reduce3",
        "reduce4",
        "up1",
        "up2",
        "up3",
        "up4",
        "head",
    }
    sam_trainable = [n for n, p in model.sam.named_parameters() if p.requires_grad]
    assert sam_trainable and all(".prompt_learn." in n for n in sam_trainable)
    assert not any(p.requires_grad for p in model.dino.parameters())


@pytest.mark.slow
def test_meta_sam2_tiny_checkpoint_gives_sam2_trunk_features(tmp_path):
    """Real Hiera-T config: Meta's ``sam2`` Hiera, saved in Meta's checkpoint layout, loaded
    through our key mapping into timm's Hiera, gives the same four stage maps."""
    pytest.importorskip("sam2")
    from sam2.modeling.backbones.hieradet import Hiera

    from sam2unext.checkpoints import load_sam2_hiera

    meta = Hiera(
        embed_dim=96,
        num_heads=1,
        stages=(1, 2, 7, 2),
        global_att_blocks=(5, 7, 9),
        window_pos_embed_bkg_spatial_size=(7, 7),
    )  # sam2_hiera_t.yaml
    randomize_(meta, seed=12).eval()
    path = tmp_path / "sam2_hiera_tiny.pt"
    torch.save({"model": {"image_encoder.trunk." + k: v for k, v in meta.state_dict().items()}}, path)
    trunk = build_hiera_trunk(get_preset("sam2unext-tiny")).eval()
    load_sam2_hiera(trunk, path, "sam2unext-tiny")
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(13))
    with torch.no_grad():
        ref = meta(x)
        ours = hiera_stage_features(trunk, x)
    assert len(ref) == len(ours) == 4
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        assert rel_error(a, b) < TOL
