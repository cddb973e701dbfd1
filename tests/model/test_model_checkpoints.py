"""Every loading path, on checkpoints built with the official key names and shapes."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import sam2unext.api as api
from sam2unext import CheckpointError, PresetError, build_model, load_model, save_checkpoint
from sam2unext.checkpoints import (
    check_state_dict,
    ours_to_upstream,
    sam2_to_timm_hiera,
    torch_load_safe,
    upstream_to_ours,
)
from sam2unext.encoders import build_dinov2, build_hiera_trunk
from sam2unext.presets import get_preset

from model_oracle import randomize_

# Official key layouts (copied from Meta's SAM2, timm and the public SAM2-UNeXT / SAM2-UNet
# state dicts); the tests read only this copy inside the repository.
REFERENCE = Path(__file__).resolve().parent / "reference"


def _meta_tensors(shapes: dict) -> dict:
    return {k: torch.empty(v, device="meta") for k, v in shapes.items()}


def _reference(name: str) -> dict:
    return json.loads((REFERENCE / name).read_text())


# ---------------------------------------------------------------- official layouts (meta device)


@pytest.mark.parametrize("size", ["tiny", "small", "base_plus", "large"])
def test_meta_sam2_trunk_keys_map_exactly_onto_timm_hiera(size):
    shapes = _reference("sam2_checkpoint_trunk_keys.json")[size]
    checkpoint = {
        "model": {
            **_meta_tensors(shapes),
            "sam_mask_decoder.iou_token.weight": torch.empty(1, 256, device="meta"),
            "image_encoder.neck.convs.0.conv.weight": torch.empty(256, 8, 1, 1, device="meta"),
        }
    }
    with torch.device("meta"):
        trunk = build_hiera_trunk(get_preset(f"sam2unext-{size}"))
    mapped = sam2_to_timm_hiera(checkpoint)
    check_state_dict(
        trunk.state_dict(), mapped, preset=f"sam2unext-{size}", source="sam2_hiera.pt", what="SAM2 Hiera checkpoint"
    )
    assert "blocks.0.mlp.fc1.weight" in mapped and not any("layers" in k for k in mapped)


@pytest.mark.parametrize("name", ["vit_small_patch14_dinov2", "vit_base_patch14_dinov2", "vit_large_patch14_dinov2"])
def test_timm_dinov2_keys_fit_after_timm_filter_with_pos_embed_resized_to_448(name):
    from timm.models.vision_transformer import checkpoint_filter_fn

    shapes = _reference("timm_dinov2_keys.json")[name]
    preset = {
        "vit_small_patch14_dinov2": "sam2unext-small",
        "vit_base_patch14_dinov2": "sam2unext-base_plus",
        "vit_large_patch14_dinov2": "sam2unext-large",
    }[name]
    with torch.device("meta"):
        dino = build_dinov2(get_preset(preset))
        state = checkpoint_filter_fn(_meta_tensors(shapes), dino.model)
    assert state["pos_embed"].shape[1] == 1 + 32 * 32  # 448 / 14 = 32
    state = {k: v for k, v in state.items() if not k.startswith("norm.")}
    check_state_dict(dino.model.state_dict(), state, preset=preset, source=name, what="DINOv2")


@pytest.mark.parametrize("family", ["sam2unext", "sam2unet"])
def test_public_whole_model_state_dict_maps_onto_large_preset(family):
    shapes = _reference(f"{family}_upstream_state_dict.json")
    with torch.device("meta"):
        model = build_model(f"{family}-large")
    check_state_dict(
        model.state_dict(),
        upstream_to_ours(_meta_tensors(shapes)),
        preset=f"{family}-large",
        source="upstream.pth",
        what="public checkpoint",
    )
    assert set(ours_to_upstream(model.state_dict())) == set(shapes)


def test_public_state_dict_with_wrong_preset_names_key_preset_and_file():
    shapes = _reference("sam2unext_upstream_state_dict.json")
    with torch.device("meta"):
        model = build_model("sam2unext-base_plus")
    with pytest.raises(CheckpointError) as err:
        check_state_dict(
            model.state_dict(),
            upstream_to_ours(_meta_tensors(shapes)),
            preset="sam2unext-base_plus",
            source="SAM2-UNeXT-20.pth",
            what="public checkpoint",
        )
    message = str(err.value)
    assert "\n" not in message
    assert "sam2unext-base_plus" in message and "SAM2-UNeXT-20.pth" in message and "'sam." in message


# ---------------------------------------------------------------- real files, tiny configs


def _meta_style_sam2_file(tmp_path: Path, trunk) -> Path:
    """A Meta-layout ``sam2_hiera_*.pt``: ``{"model": {image_encoder.trunk.* ...}}``."""
    state = {}
    for key, value in trunk.state_dict().items():
        key = key.replace("mlp.fc1.", "mlp.layers.0.").replace("mlp.fc2.", "mlp.layers.1.")
        state["image_encoder.trunk." + key] = value.clone()
    state["sam_mask_decoder.iou_token.weight"] = torch.zeros(1, 8)
    state["memory_encoder.out_proj.weight"] = torch.zeros(4, 4)
    path = tmp_path / "sam2_hiera_test.pt"
    torch.save({"model": state}, path)
    return path


def test_build_model_loads_meta_sam2_checkpoint_into_trunk(tmp_path):
    config = get_preset("sam2unext-test")
    source = randomize_(build_hiera_trunk(config), seed=4)
    path = _meta_style_sam2_file(tmp_path, source)
    model = build_model("sam2unext-test", hiera=path)
    for key, value in source.state_dict().items():
        block_key = key
        if key.startswith("blocks."):
            index, rest = key[len("blocks.") :].split(".", 1)
            block_key = f"blocks.{index}.block.{rest}"
        torch.testing.assert_close(model.sam.state_dict()[block_key], value, rtol=0, atol=0)


def test_build_model_rejects_sam2_checkpoint_of_another_size(tmp_path):
    other = build_hiera_trunk(
        get_preset("sam2unext-test").with_overrides(
            hiera_embed_dim=24, hiera_kwargs={**get_preset("sam2unext-test").hiera_kwargs, "embed_dim": 24}
        )
    )
    path = _meta_style_sam2_file(tmp_path, other)
    with pytest.raises(CheckpointError) as err:
        build_model("sam2unext-test", hiera=path)
    assert "shape" in str(err.value) and "sam2unext-test" in str(err.value) and str(path) in str(err.value)


def test_build_model_rejects_a_file_without_trunk_keys(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"model": {"foo.weight": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="image_encoder.trunk"):
        build_model("sam2unext-test", hiera=path)


def _dino_source(grid: int):
    """A tiny DINOv2-style ViT at another resolution, whole (with final norm), random."""
    import timm

    vit = timm.create_model(
        "vit_small_patch14_dinov2",
        pretrained=False,
        num_classes=0,
        img_size=14 * grid,
        **get_preset("sam2unext-test").dinov2_kwargs,
    )
    return randomize_(vit, seed=6)


@pytest.mark.parametrize("layout", ["timm_safetensors", "meta_pth"])
def test_build_model_loads_dinov2_with_pos_embed_resized(tmp_path, layout):
    from timm.layers import resample_abs_pos_embed

    source = _dino_source(grid=10)  # 140 px: the 8x8 grid at 112 px needs resampling
    state = {k: v.clone().contiguous() for k, v in source.state_dict().items()}
    if layout == "timm_safetensors":
        path = tmp_path / "model.safetensors"
        save_file(state, str(path))
    else:
        state["mask_token"] = torch.zeros(1, state["cls_token"].shape[-1])
        path = tmp_path / "dinov2_vits14_pretrain.pth"
        torch.save(state, path)
    model = build_model("sam2unext-test", dinov2=path)
    loaded = model.dino.model.state_dict()
    torch.testing.assert_close(loaded["blocks.1.mlp.fc2.weight"], state["blocks.1.mlp.fc2.weight"])
    expected_pos = resample_abs_pos_embed(
        state["pos_embed"],
        new_size=(8, 8),
        old_size=(10, 10),
        num_prefix_tokens=1,
        interpolation="bicubic",
        antialias=True,
    )
    torch.testing.assert_close(loaded["pos_embed"], expected_pos)


def test_public_pth_whole_model_loads_strictly_and_predicts(tmp_path):
    source = randomize_(build_model("sam2unext-test"), seed=8)
    path = tmp_path / "SAM2-UNeXT-20.pth"
    torch.save(ours_to_upstream(source.state_dict()), path)
    model = load_model(path, "sam2unext-test", device="cpu")
    assert not model.training
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source.eval()(x), rtol=0, atol=0)


def test_public_pth_needs_a_preset_and_the_right_family(tmp_path):
    path = tmp_path / "SAM2-UNet-20.pth"
    torch.save(ours_to_upstream(build_model("sam2unet-test").state_dict()), path)
    with pytest.raises(PresetError, match="preset"):
        load_model(path)
    with pytest.raises(PresetError, match="sam2unet"):
        load_model(path, "sam2unext-test")
    assert load_model(path, "sam2unet-test", device="cpu").low_res_size is None


def test_public_pth_missing_and_unexpected_keys_are_one_line_errors(tmp_path):
    state = ours_to_upstream(build_model("sam2unext-test").state_dict())
    missing = dict(state)
    del missing["reduce3.weight"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "missing.pth", "sam2unext-test")
    assert "'reduce3.weight'" in str(err.value) and "missing" in str(err.value)
    assert "sam2unext-test" in str(err.value) and "missing.pth" in str(err.value)
    assert "\n" not in str(err.value)
    torch.save({**state, "extra_head.weight": torch.zeros(1)}, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match="unexpected key 'extra_head.weight'"):
        load_model(tmp_path / "extra.pth", "sam2unext-test")


class _RunsCode:
    """Unpickling this would run ``os.system`` - a weights_only load must refuse it."""

    def __reduce__(self):
        return (os.system, ("touch /tmp/sam2unext_pwned_marker",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_checkpoint_with_code_executing_pickle_is_refused(tmp_path):
    marker = Path("/tmp/sam2unext_pwned_marker")
    marker.unlink(missing_ok=True)
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"head.weight": _RunsCode()}, handle)
    with pytest.raises(CheckpointError, match="refusing"):
        load_model(path, "sam2unext-test")
    zipped = tmp_path / "evil_zip.pth"
    torch.save({"head.weight": _RunsCode()}, zipped)
    with pytest.raises(CheckpointError, match="refusing"):
        torch_load_safe(zipped)
    with pytest.raises(CheckpointError, match="refusing"):
        build_model("sam2unext-test", hiera=zipped)
    assert not marker.exists()


def test_own_safetensors_round_trip_with_metadata(tmp_path):
    model = randomize_(build_model("sam2unext-test", decoder_channels=40), seed=9).eval()
    path = save_checkpoint(model, tmp_path / "model.safetensors", task="buildings", extra={"epochs": 3})
    loaded = load_model(path, device="cpu")
    assert loaded.preset == "sam2unext-test" and loaded.config.decoder_channels == 40
    assert loaded.task == "buildings" and loaded.extra == {"epochs": 3}
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    with pytest.raises(PresetError, match="saved for preset 'sam2unext-test'"):
        load_model(path, "sam2unet-test")


def test_missing_files_and_demo_weights_give_checkpoint_errors(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        build_model("sam2unext-test", hiera=tmp_path / "nope.pt")
    monkeypatch.setattr(api, "DEMO_WEIGHTS", tmp_path / "weights" / "demo.safetensors")
    with pytest.raises(CheckpointError, match="demo weights not found"):
        load_model("demo")


def test_demo_loads_bundled_file(tmp_path, monkeypatch):
    path = save_checkpoint(build_model("sam2unext-test"), tmp_path / "demo.safetensors", task="demo")
    monkeypatch.setattr(api, "DEMO_WEIGHTS", path)
    model = load_model("demo", device="cpu")
    assert model.preset == "sam2unext-test" and model.task == "demo"


def test_unknown_preset_is_a_preset_error():
    with pytest.raises(PresetError, match="sam2unext-large"):
        build_model("sam3-huge")


def test_interrupted_save_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    save_checkpoint(build_model("sam2unext-test"), path, task="old")

    def fail(state, target, metadata):
        Path(target).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "save_state_with_metadata", fail)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(build_model("sam2unext-test"), path, task="new")
    assert api.read_checkpoint_metadata(path)["task"] == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
