"""The training loop: the paper's recipe, snapshots, resuming and AMP.

Recipe (public SAM2-UNeXT / SAM2-UNet ``train.py``): AdamW over the trainable parameters
(adapters, glue, decoder; the model core freezes the encoders), cosine annealing of the
learning rate to 1e-7 stepped once per epoch, structure loss (summed over the three deep
supervision outputs when the model returns a tuple, as SAM2-UNet does). SAM2-UNeXT: lr 2e-4,
batch 1; SAM2-UNet: lr 1e-3, batch 12; weight decay 5e-4, 20 epochs, snapshot every 5.

:func:`train_model` runs three steps: :func:`restore_run` (a fresh run, or the state of
``resume.pt``), :func:`train_epoch` (one pass over the data) and :func:`save_run_snapshot`
(snapshot + ``resume.pt``). The run folder's files are written by :mod:`sam2unext.run_folder`
and the loss curve by :mod:`sam2unext.loss_curve`. Randomness (shuffle order, flips, dropout)
is reseeded from ``(seed, epoch)`` at each epoch, so a resumed run reproduces an
uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sized
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn
from torch.optim import AdamW
from torch.optim.lr_scheduler import CosineAnnealingLR
from torch.utils.data import DataLoader, Dataset, RandomSampler

from sam2unext.errors import CheckpointError, DatasetError, PresetError, option
from sam2unext.loss import deep_supervision_loss
from sam2unext.loss_curve import write_loss_curve
from sam2unext.presets import Preset, get_preset
from sam2unext.run_folder import (
    CURVE_FILE,
    SNAPSHOT_PATTERN,
    check_run_dir,
    load_snapshot_weights,
    read_resume_state,
    resume_preset,
    save_snapshot,
    write_history,
    write_resume_state,
)

if TYPE_CHECKING:
    from sam2unext.models import SegmentationModel


@dataclass(frozen=True)
class Recipe:
    """Per-family defaults of the public training scripts."""

    lr: float
    batch_size: int


RECIPES: dict[str, Recipe] = {
    "sam2unext": Recipe(lr=2e-4, batch_size=1),
    "sam2unet": Recipe(lr=1e-3, batch_size=12),
}


@dataclass
class TrainConfig:
    """Training settings; ``lr``/``batch_size`` of None take the model family's recipe.

    Attributes:
        epochs: number of epochs (the cosine schedule spans them).
        lr: AdamW learning rate.
        batch_size: images per step.
        weight_decay: AdamW weight decay.
        eta_min: final learning rate of the cosine schedule.
        snapshot_every: save a snapshot every this many epochs (and at the end).
        seed: seed of initialization-independent randomness (order, flips, dropout).
        num_workers: data loader worker processes.
        device: "auto", "cpu", "cuda" or "cuda:N".
        amp: mixed precision; None means on for CUDA, off on CPU.
        grad_checkpointing: recompute encoder activations in the backward pass.
        bce: structure-loss BCE form, "upstream" or "weighted".
    """

    epochs: int = 20
    lr: float | None = None
    batch_size: int | None = None
    weight_decay: float = 5e-4
    eta_min: float = 1e-7
    snapshot_every: int = 5
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"
    amp: bool | None = None
    grad_checkpointing: bool = False
    bce: str = "upstream"

    # settings that define the run; a resumed run takes them from resume.pt
    SCHEDULE_FIELDS = ("epochs", "lr", "batch_size", "weight_decay", "eta_min", "snapshot_every", "seed", "bce")


@dataclass
class TrainResult:
    """What a training run produced."""

    run_dir: Path
    snapshots: list[Path]
    epoch_losses: list[float]
    step_losses: list[float]
    epochs_done: int
    seconds: float
    config: TrainConfig = field(repr=False)

    @property
    def last_snapshot(self) -> Path | None:
        return self.snapshots[-1] if self.snapshots else None


def resolve_config(config: TrainConfig, preset: str | Preset) -> TrainConfig:
    """Fill ``lr`` and ``batch_size`` from the preset family's recipe where they are None.

    Raises:
        PresetError: unknown preset name.
    """
    recipe = RECIPES[get_preset(preset).family]
    return replace(
        config,
        lr=recipe.lr if config.lr is None else config.lr,
        batch_size=recipe.batch_size if config.batch_size is None else config.batch_size,
    )


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters with ``requires_grad`` (the model core freezes the encoders).

    Raises:
        CheckpointError: if the model has nothing to train.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise CheckpointError("the model has no trainable parameters; nothing to train")
    return params


def make_optimizer(model: nn.Module, config: TrainConfig) -> AdamW:
    """AdamW over the trainable parameters with the configured lr and weight decay.

    Raises:
        ValueError: ``config.lr`` is None (pass the config through :func:`resolve_config`).
    """
    if config.lr is None:
        raise ValueError("config.lr is None; fill it with resolve_config(config, preset) first")
    return AdamW(trainable_parameters(model), lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> CosineAnnealingLR:
    """Cosine annealing to ``eta_min`` over ``epochs`` (stepped once per epoch)."""
    return CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=config.eta_min)


def enable_grad_checkpointing(model: nn.Module) -> int:
    """Switch on gradient checkpointing where the model or its encoders offer it.

    Calls ``set_grad_checkpointing(True)`` on the model if it has that method, else on every
    submodule that has it (timm encoders do).

    Returns:
        How many modules were switched.
    """
    if hasattr(model, "set_grad_checkpointing"):
        cast(Any, model).set_grad_checkpointing(True)
        return 1
    count = 0
    for module in model.modules():
        if module is not model and hasattr(module, "set_grad_checkpointing"):
            cast(Any, module).set_grad_checkpointing(True)
            count += 1
    return count


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) generators."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 10_007 + epoch


def _config_from_dict(saved: dict, base: TrainConfig) -> TrainConfig:
    known = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in saved.items() if k in known and k in TrainConfig.SCHEDULE_FIELDS}
    return replace(base, **values)


@dataclass
class RunState:
    """Everything a run carries from one epoch to the next (what ``resume.pt`` restores)."""

    config: TrainConfig
    device: torch.device
    use_amp: bool
    amp_dtype: torch.dtype
    optimizer: AdamW
    scheduler: CosineAnnealingLR
    scaler: torch.amp.GradScaler
    start_epoch: int = 0
    snapshots: list[Path] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)


def restore_run(
    model: SegmentationModel, run_dir: Path, config: TrainConfig, *, resume: bool, say: Callable[[str], None]
) -> RunState:
    """Set up the optimizer, schedule and AMP for ``model``; on ``resume`` restore them,
    the weights and the history from ``run_dir/resume.pt`` (whose schedule settings win).

    Args:
        model: the model to train; its preset (``model.config``) selects the family recipe.
        run_dir: the run folder (checked by the caller).
        config: settings as given (``lr``/``batch_size`` may be None).
        resume: continue the run in ``run_dir``.
        say: message sink.

    Raises:
        CheckpointError: the model has nothing to train, or the snapshot does not fit.
        UserError: ``config.device`` is unknown or unavailable.
    """
    from sam2unext.api import resolve_device

    preset = model.config
    config = resolve_config(config, preset)
    saved: dict[str, Any] | None = None
    if resume:
        saved = read_resume_state(run_dir)
        config = resolve_config(_config_from_dict(saved["config"], config), preset)
    device = resolve_device(config.device)
    use_amp = device.type == "cuda" if config.amp is None else bool(config.amp and device.type == "cuda")
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16

    if config.grad_checkpointing and enable_grad_checkpointing(model) == 0:
        say("note: the model offers no gradient checkpointing; training without it")
    model.to(device)
    optimizer = make_optimizer(model, config)
    run = RunState(
        config=config,
        device=device,
        use_amp=use_amp,
        amp_dtype=amp_dtype,
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, config),
        scaler=torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16),
    )
    if saved is not None:
        snapshot = run_dir / saved["snapshot"]
        load_snapshot_weights(model, snapshot)
        model.to(device)
        run.optimizer.load_state_dict(saved["optimizer"])
        run.scheduler.load_state_dict(saved["scheduler"])
        if saved.get("scaler"):
            run.scaler.load_state_dict(saved["scaler"])
        run.start_epoch = int(saved["epoch"])
        run.step_losses = list(saved["step_losses"])
        run.epoch_losses = list(saved["epoch_losses"])
        run.snapshots = [run_dir / s for s in saved["snapshots"]]
        say(f"resuming {run_dir} from {snapshot.name} (epoch {run.start_epoch}/{config.epochs})")
    return run


def train_epoch(
    model: SegmentationModel, dataset: Dataset, run: RunState, epoch: int, *, progress: bool
) -> list[float]:
    """One pass over ``dataset`` (reseeded from ``(seed, epoch)``), then one scheduler step.

    Returns:
        The loss of every optimizer step.

    Raises:
        FloatingPointError: the loss became NaN or infinite.
    """
    from tqdm.auto import tqdm

    config, device = run.config, run.device
    seed = _epoch_seed(config.seed, epoch)
    seed_everything(seed)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=RandomSampler(cast(Sized, dataset), generator=torch.Generator().manual_seed(seed)),
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        drop_last=False,
    )
    model.train()
    losses: list[float] = []
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False)
    for batch in bar:
        image = batch["image"].to(device, non_blocking=True)
        mask = batch["mask"].to(device, non_blocking=True)
        run.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=run.amp_dtype, enabled=run.use_amp):
            outputs = model(image)
        loss = deep_supervision_loss(outputs, mask.float(), bce=config.bce)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"training loss became {value} at epoch {epoch + 1}; lower the learning rate")
        losses.append(value)
        bar.set_postfix(loss=f"{value:.4f}", lr=f"{run.optimizer.param_groups[0]['lr']:.2e}")
    bar.close()
    run.scheduler.step()
    return losses


def save_run_snapshot(
    model: SegmentationModel, run_dir: Path, run: RunState, done: int, *, task: str | None, meta: dict[str, Any]
) -> Path:
    """Write the snapshot of epoch ``done`` and the ``resume.pt`` that points at it.

    Returns:
        The snapshot's path.
    """
    path = run_dir / SNAPSHOT_PATTERN.format(epoch=done)
    save_snapshot(model, path, task=task, extra={**meta, "epoch": done, "loss": run.epoch_losses[-1]})
    if path not in run.snapshots:
        run.snapshots.append(path)
    write_resume_state(
        run_dir,
        {
            "epoch": done,
            "snapshot": path.name,
            "snapshots": [p.name for p in run.snapshots],
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict() if run.scaler.is_enabled() else {},
            "step_losses": run.step_losses,
            "epoch_losses": run.epoch_losses,
            "config": asdict(run.config),
        },
    )
    return path


def train_model(
    model: SegmentationModel,
    dataset: Dataset,
    run_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    task: str | None = None,
    resume: bool = False,
    stop_after_epoch: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    extra: dict | None = None,
) -> TrainResult:
    """Train ``model`` on ``dataset`` with the paper's recipe and write a run folder.

    Args:
        model: a segmentation model with frozen encoders; its preset (``model.config``) selects the
            recipe.
        dataset: items ``{"image": [3,S,S], "mask": [1,S,S]}``; if it has ``set_epoch`` it is
            called at each epoch (reproducible augmentation).
        run_dir: output folder (created).
        config: settings; None takes the defaults. On resume, the saved schedule wins.
        task: task name stored in the snapshots' metadata.
        resume: continue from ``resume.pt`` (the last snapshot) in ``run_dir``.
        stop_after_epoch: stop after this epoch (as a kill would; for tests and time limits).
        progress: show a tqdm bar with the running loss.
        log: where one-line messages go (None: nowhere).
        extra: more metadata stored in the snapshots.

    Returns:
        The run's snapshots, loss history and timing.

    Raises:
        DatasetError: if the dataset is empty.
        OutputError: if ``run_dir`` holds a run and ``resume`` is False, or nothing to resume.
        CheckpointError: if the model has nothing to train or a snapshot does not fit.
        UserError: if ``config.device`` is unknown or unavailable.
    """
    say = log or (lambda _msg: None)
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume)
    size = len(cast(Sized, dataset))
    if size == 0:
        raise DatasetError("the training dataset is empty; pass folders with matching images and masks")
    run = restore_run(model, run_dir, config or TrainConfig(), resume=resume, say=say)
    config = run.config
    if hasattr(dataset, "seed"):  # the run's seed (the saved one on resume) drives augmentation
        dataset.seed = config.seed
    run_dir.mkdir(parents=True, exist_ok=True)

    assert config.batch_size is not None  # resolve_config filled it
    steps_per_epoch = math.ceil(size / config.batch_size)
    t0 = time.perf_counter()
    meta = {"preset": model.config.name, **(extra or {})}
    for epoch in range(run.start_epoch, config.epochs):
        losses = train_epoch(model, dataset, run, epoch, progress=progress)
        run.step_losses.extend(losses)
        run.epoch_losses.append(sum(losses) / len(losses))
        done = epoch + 1
        say(f"epoch {done}/{config.epochs}: mean loss {run.epoch_losses[-1]:.4f}")
        if done % config.snapshot_every == 0 or done == config.epochs:
            path = save_run_snapshot(model, run_dir, run, done, task=task, meta=meta)
            say(f"saved snapshot {path}")
        write_history(run_dir, run.epoch_losses, run.step_losses, asdict(config))
        write_loss_curve(run_dir / CURVE_FILE, run.step_losses, run.epoch_losses, steps_per_epoch)
        if stop_after_epoch is not None and done >= stop_after_epoch:
            break

    return TrainResult(
        run_dir=run_dir,
        snapshots=run.snapshots,
        epoch_losses=run.epoch_losses,
        step_losses=run.step_losses,
        epochs_done=len(run.epoch_losses),
        seconds=time.perf_counter() - t0,
        config=config,
    )


def make_training_model(
    preset: str | None,
    *,
    hiera: str | Path | None = None,
    dinov2: str | Path | None = None,
    checkpoint: str | Path | None = None,
    seed: int = 0,
) -> SegmentationModel:
    """The model to train: a fresh preset (seeded), or one loaded from ``checkpoint``.

    Args:
        preset: preset name (needed unless ``checkpoint`` is our file carrying one).
        hiera: SAM2 weights for the Hiera encoder of a fresh model (None: random init).
        dinov2: DINOv2 weights for a fresh SAM2-UNeXT (None: random init).
        checkpoint: start from these weights (fine-tuning) instead of a fresh model.
        seed: seed for random initialization.

    Raises:
        PresetError, CheckpointError: from the model core.
    """
    seed_everything(seed)
    if checkpoint is not None:
        from sam2unext import load_model

        return load_model(checkpoint, preset, device="cpu")
    if preset is None:
        raise PresetError(
            f"no preset given; pass {option('preset', 'NAME')} (one of list_presets()) "
            f"or {option('checkpoint', 'FILE')}"
        )
    from sam2unext import build_model

    return build_model(preset, hiera=hiera, dinov2=dinov2)


def train_on_folders(
    images: str | Path,
    masks: str | Path,
    run_dir: str | Path,
    *,
    preset: str | None = None,
    hiera: str | Path | None = None,
    dinov2: str | Path | None = None,
    checkpoint: str | Path | None = None,
    task: str | None = None,
    config: TrainConfig | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> TrainResult:
    """Train a preset on an image folder and a mask folder (matched by file stem).

    The folders' convenience entry: it pairs the files, makes the model
    (:func:`make_training_model`) and runs :func:`train_model`, which takes the rest
    (``stop_after_epoch``, a dataset of your own).

    Args:
        images: folder of training images.
        masks: folder of png masks.
        run_dir: output run folder.
        preset: model preset name (needed unless ``checkpoint`` carries one).
        hiera: SAM2 checkpoint for the Hiera encoder (None: random init).
        dinov2: DINOv2 weights for the auxiliary encoder (SAM2-UNeXT only).
        checkpoint: start from these weights instead of a fresh model (fine-tuning).
        task: task name stored in the snapshots ("dis", "cod", "mas", "rssd").
        config: training settings.
        resume: continue the run in ``run_dir`` from its last snapshot (which holds all the
            weights, so ``preset`` may be omitted and encoder weights need not be given).
        progress: show a progress bar.
        log: message sink.

    Returns:
        The training result.
    """
    from sam2unext.data import ImageMaskDataset, pair_files

    config = config or TrainConfig()
    pairs = pair_files(images, masks)
    if resume and preset is None:
        preset, checkpoint = resume_preset(run_dir), None  # weights come from the snapshot
    model = make_training_model(preset, hiera=hiera, dinov2=dinov2, checkpoint=checkpoint, seed=config.seed)
    dataset = ImageMaskDataset(pairs, model.input_size, train=True, seed=config.seed)
    return train_model(
        model,
        dataset,
        run_dir,
        config,
        task=task,
        resume=resume,
        progress=progress,
        log=log,
        extra={"images": str(images), "masks": str(masks)},
    )
