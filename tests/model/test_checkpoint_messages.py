"""Issue 10: checkpoint refusals name the problem as the user's file has it (exit 2, one line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sam2unext import build_model, load_model, save_checkpoint
from sam2unext.checkpoints import ours_to_upstream, read_safetensors, read_state_dict
from sam2unext.encoders import build_hiera_trunk
from sam2unext.errors import CheckpointError, PresetError
from sam2unext.presets import get_preset


@pytest.fixture(scope="module")
def ours(tmp_path_factory) -> Path:
    """One of our checkpoints for sam2unext-test."""
    return save_checkpoint(build_model("sam2unext-test"), tmp_path_factory.mktemp("c") / "ours.safetensors")


def _with_metadata(source: Path, target: Path, **changes) -> Path:
    state, metadata = read_safetensors(source)
    for key, value in changes.items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    save_file({k: v.contiguous() for k, v in state.items()}, str(target), metadata=metadata)
    return target


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"preset_config": None}, "no preset_config"),
        ({"preset_config": "{not json"}, "preset_config metadata is broken"),
        ({"preset": "sam2unet-test"}, "names preset 'sam2unet-test' but its preset_config is for 'sam2unext-test'"),
    ],
)
def test_broken_or_contradicting_preset_metadata_is_refused(ours, tmp_path, changes, message):
    path = _with_metadata(ours, tmp_path / "broken.safetensors", **changes)
    with pytest.raises(CheckpointError, match=message) as err:
        load_model(path, device="cpu")
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_unknown_preset_in_metadata_is_refused_not_ignored(ours, tmp_path):
    state, metadata = read_safetensors(ours)
    config = json.loads(metadata["preset_config"])
    config["name"] = "sam2unext-xxl"
    path = _with_metadata(
        ours, tmp_path / "unknown.safetensors", preset="sam2unext-xxl", preset_config=json.dumps(config)
    )
    with pytest.raises(CheckpointError, match="preset 'sam2unext-xxl', which this version does not know"):
        load_model(path, device="cpu")


class _Pickled:
    """A plain Python object: pickled, not a tensor."""


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_pth_without_preset_says_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "model.pth"
    torch.save({"head.weight": _Pickled()}, path)
    with pytest.raises(CheckpointError, match="pickled objects are refused") as err:
        load_model(path, device="cpu")
    assert "plain state_dict of tensors; pass the preset" not in str(err.value)


def test_plain_pth_without_preset_names_the_preset_its_shapes_fit(tmp_path):
    path = tmp_path / "SAM2-UNet-20.pth"
    torch.save(ours_to_upstream(build_model("sam2unet-test").state_dict()), path)
    with pytest.raises(PresetError, match="fit preset sam2unet-test"):
        load_model(path, device="cpu")


def test_missing_hiera_key_is_named_as_in_the_sam2_file(tmp_path):
    trunk = build_hiera_trunk(get_preset("sam2unext-test"))
    state = {
        "image_encoder.trunk." + k.replace("mlp.fc1.", "mlp.layers.0.").replace("mlp.fc2.", "mlp.layers.1."): v
        for k, v in trunk.state_dict().items()
    }
    del state["image_encoder.trunk.blocks.0.mlp.layers.0.weight"]
    path = tmp_path / "sam2_hiera_t.pt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError) as err:
        build_model("sam2unext-test", hiera=path)
    assert "'image_encoder.trunk.blocks.0.mlp.layers.0.weight'" in str(err.value)
    assert "mlp.fc1" not in str(err.value)


def test_public_file_with_a_wrong_size_preset_says_which_preset_it_fits(tmp_path):
    path = tmp_path / "SAM2-UNeXT-test.pth"
    torch.save(ours_to_upstream(build_model("sam2unext-test").state_dict()), path)
    # A real-size preset: the test file's keys differ (fewer Hiera blocks) and its shapes fit the test preset.
    with pytest.raises(CheckpointError) as err:
        load_model(path, "sam2unext-tiny", device="cpu")
    message = str(err.value)
    assert "fit preset 'sam2unext-test'" in message and "\n" not in message
    assert "mlp.fc" not in message  # keys named as the public file has them


def test_cli_maps_a_broken_checkpoint_to_exit_2(ours, tmp_path, capsys):
    import numpy as np
    import rasterio

    from sam2unext.cli.main import main

    path = _with_metadata(ours, tmp_path / "broken.safetensors", preset_config="{")
    scene = tmp_path / "s.tif"
    with rasterio.open(
        scene,
        "w",
        driver="GTiff",
        width=64,
        height=64,
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=rasterio.Affine(1, 0, 0, 0, -1, 0),
    ) as dst:
        dst.write(np.full((3, 64, 64), 100, np.uint8))
    assert main(["predict", str(scene), "--checkpoint", str(path), "--progress", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "preset_config metadata is broken" in err[-1]


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes_pth_is_not_a_checkpoint_torch_can_read(tmp_path, seed):
    """Issue 23 (8): random bytes are not "pickled Python objects", and torch's words are not cut mid-word."""
    import random

    path = tmp_path / "random.pth"
    path.write_bytes(random.Random(seed).randbytes(4096))
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)  # what load_model reads a .pth with
    message = str(err.value)
    assert "it is not a checkpoint torch can read" in message, message
    assert "pickled" not in message and "\n" not in message and str(path) in message
    quoted = message.split("torch.load says: ")[1].split("); give")[0]
    assert "weights_only" not in quoted and len(quoted) <= 160
    assert quoted.endswith(("...", ".")) or quoted == quoted.strip(), quoted
