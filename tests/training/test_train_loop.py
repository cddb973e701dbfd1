"""Short training runs of the tiny preset: loss, snapshots, resume, run-folder rules."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from sam2unext import load_model, read_checkpoint_metadata
from sam2unext.data import ImageMaskDataset, pair_files
from sam2unext.errors import OutputError, PresetError, UserError
from sam2unext.loss import deep_supervision_loss
from sam2unext.presets import get_preset
from sam2unext.run_folder import RESUME_FILE
from sam2unext.train import (
    RECIPES,
    TrainConfig,
    make_training_model,
    resolve_config,
    train_model,
    train_on_folders,
)

from training_synth import PRESET, SHORT


def test_short_run_lowers_loss_and_writes_run_folder(short_run):
    assert short_run.epochs_done == 3
    assert short_run.epoch_losses[-1] < short_run.epoch_losses[0] * 0.95
    names = sorted(p.name for p in short_run.run_dir.iterdir())
    assert names == [
        "epoch_001.safetensors",
        "epoch_002.safetensors",
        "epoch_003.safetensors",
        "history.json",
        "loss_curve.png",
        RESUME_FILE,
    ]
    assert (short_run.run_dir / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    history = json.loads((short_run.run_dir / "history.json").read_text())
    assert history["epoch_losses"] == short_run.epoch_losses


def test_snapshots_load_as_models(short_run):
    last = short_run.last_snapshot
    meta = read_checkpoint_metadata(last)
    assert meta["preset"] == PRESET and meta["task"] == "cod"
    model = load_model(last, device="cpu")
    state = load_file(str(last))
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name
    first = load_file(str(short_run.snapshots[0]))
    assert any(not torch.equal(first[k], state[k]) for k in state)  # training changed weights


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(folder_data, short_run, tmp_path):
    images, masks = folder_data
    run_dir = tmp_path / "killed"
    # train_on_folders' first epoch, stopped as a kill would stop it (train_model's stop_after_epoch)
    config = TrainConfig(**SHORT)
    model = make_training_model(PRESET, seed=config.seed)
    dataset = ImageMaskDataset(pair_files(images, masks), model.input_size, train=True, seed=config.seed)
    extra = {"images": str(images), "masks": str(masks)}
    first = train_model(
        model, dataset, run_dir, config, task="cod", progress=False, log=None, stop_after_epoch=1, extra=extra
    )
    assert first.epochs_done == 1
    resumed = train_on_folders(
        images,
        masks,
        run_dir,
        task="cod",  # preset read from the snapshot
        config=TrainConfig(**SHORT),
        resume=True,
        progress=False,
        log=None,
    )
    assert resumed.epochs_done == 3
    assert resumed.epoch_losses == short_run.epoch_losses  # bit-identical on CPU
    got, want = load_file(str(resumed.last_snapshot)), load_file(str(short_run.last_snapshot))
    for name in want:
        assert torch.equal(got[name], want[name]), name
    s_got = torch.load(run_dir / RESUME_FILE, weights_only=True)
    s_want = torch.load(short_run.run_dir / RESUME_FILE, weights_only=True)
    assert s_got["epoch"] == s_want["epoch"] == 3
    assert s_got["scheduler"] == s_want["scheduler"]
    assert s_got["optimizer"]["param_groups"] == s_want["optimizer"]["param_groups"]
    for key, st in s_want["optimizer"]["state"].items():
        for field, value in st.items():
            assert torch.equal(s_got["optimizer"]["state"][key][field], value), (key, field)


def test_existing_run_needs_resume(folder_data, short_run):
    images, masks = folder_data
    with pytest.raises(OutputError, match="resume=True"):
        train_on_folders(
            images, masks, short_run.run_dir, preset=PRESET, config=TrainConfig(**SHORT), progress=False, log=None
        )


def test_resume_without_state_is_a_user_error(folder_data, tmp_path):
    images, masks = folder_data
    with pytest.raises(OutputError, match="nothing to resume"):
        train_on_folders(images, masks, tmp_path / "fresh", preset=PRESET, resume=True, progress=False, log=None)


def test_unknown_device_is_a_user_error(folder_data, tmp_path):
    images, masks = folder_data
    with pytest.raises(UserError, match="unknown device 'gpu0'"):
        train_on_folders(
            images,
            masks,
            tmp_path / "run",
            preset=PRESET,
            config=TrainConfig(**{**SHORT, "device": "gpu0"}),
            progress=False,
            log=None,
        )


def test_recipes_follow_the_public_scripts():
    unext = resolve_config(TrainConfig(), "sam2unext-large")
    unet = resolve_config(TrainConfig(), "sam2unet-large")
    assert (unext.lr, unext.batch_size, unext.weight_decay, unext.eta_min, unext.epochs) == (2e-4, 1, 5e-4, 1e-7, 20)
    assert (unet.lr, unet.batch_size) == (1e-3, 12) == (RECIPES["sam2unet"].lr, RECIPES["sam2unet"].batch_size)
    assert resolve_config(TrainConfig(lr=5e-5), "sam2unet-tiny").lr == 5e-5
    # the family comes from the preset itself (one lookup), also for a Preset object
    assert resolve_config(TrainConfig(), get_preset("sam2unet-test")).lr == RECIPES["sam2unet"].lr
    with pytest.raises(PresetError, match="unknown preset"):
        resolve_config(TrainConfig(), "sam2unet-huge")


def test_deep_supervision_sums_the_three_outputs():
    from sam2unext import structure_loss

    torch.manual_seed(0)
    mask = (torch.rand(1, 1, 40, 40) > 0.5).float()
    outs = tuple(torch.randn(1, 1, 40, 40) for _ in range(3))
    want = sum(structure_loss(o, mask) for o in outs)
    assert torch.equal(deep_supervision_loss(outs, mask), want)
    assert torch.equal(deep_supervision_loss(outs[0], mask), structure_loss(outs[0], mask))


def test_grad_checkpointing_keeps_adapter_gradients():
    from sam2unext.train import enable_grad_checkpointing, make_training_model

    torch.manual_seed(1)
    x = torch.randn(1, 3, 256, 256)
    mask = (torch.rand(1, 1, 256, 256) > 0.5).float()
    grads = []
    for checkpointing in (False, True):
        model = make_training_model(PRESET, seed=0).train()
        if checkpointing:
            assert enable_grad_checkpointing(model) >= 1
        deep_supervision_loss(model(x), mask).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    assert any(".blocks." in n for n in grads[0])  # adapters inside the checkpointed encoder blocks
    for name, value in grads[0].items():
        torch.testing.assert_close(grads[1][name], value, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow
def test_sam2unet_family_trains_with_deep_supervision(folder_data, tmp_path):
    """SAM2-UNet returns three outputs in training mode; the loop sums their losses."""
    images, masks = folder_data
    result = train_on_folders(
        images,
        masks,
        tmp_path / "unet",
        preset="sam2unet-test",
        config=TrainConfig(epochs=1, batch_size=2),
        progress=False,
        log=None,
    )
    assert result.config.lr == RECIPES["sam2unet"].lr  # family default kept when lr is not given
    assert len(result.step_losses) == 2  # 3 images in batches of 2
    assert result.step_losses[0] > 1.5  # a sum of three structure losses from random init
    assert load_model(result.last_snapshot, device="cpu").preset == "sam2unet-test"


def test_interrupted_write_leaves_no_temporary_file(tmp_path):
    from sam2unext.files import write_atomically

    target = tmp_path / "out.bin"

    def fail(tmp):
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, fail)
    assert list(tmp_path.iterdir()) == []
