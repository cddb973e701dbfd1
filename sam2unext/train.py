"""The training loop: the paper's recipe, snapshots, resuming, AMP and a loss curve.

Recipe (public SAM2-UNeXT / SAM2-UNet ``train.py``): AdamW over the trainable parameters
(adapters, glue, decoder; the model core freezes the encoders), cosine annealing of the
learning rate to 1e-7 stepped once per epoch, structure loss (summed over the three deep
supervision outputs when the model returns a tuple, as SAM2-UNet does). SAM2-UNeXT: lr 2e-4,
batch 1; SAM2-UNet: lr 1e-3, batch 12; weight decay 5e-4, 20 epochs, snapshot every 5.

Run folder: ``epoch_005.safetensors`` … snapshots in our checkpoint format, ``resume.pt``
(optimizer, scheduler, scaler and history at the last snapshot; tensors and plain values
only, so it loads with ``weights_only=True``), ``history.json`` and ``loss_curve.png``.
Randomness (shuffle order, flips, dropout) is reseeded from ``(seed, epoch)`` at each epoch,
so a resumed run reproduces an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.optim import AdamW
from torch.optim.lr_scheduler import CosineAnnealingLR
from torch.utils.data import DataLoader, Dataset, RandomSampler

from sam2unext.errors import CheckpointError, DatasetError, OutputError, option
from sam2unext.files import write_atomically

SNAPSHOT_PATTERN = "epoch_{epoch:03d}.safetensors"
RESUME_FILE = "resume.pt"
HISTORY_FILE = "history.json"
CURVE_FILE = "loss_curve.png"


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


def family_of(preset: str) -> str:
    """Model family of a preset name: "sam2unet" or "sam2unext"."""
    return "sam2unet" if preset.startswith("sam2unet") and not preset.startswith("sam2unext") else "sam2unext"


def resolve_config(config: TrainConfig, preset: str) -> TrainConfig:
    """Fill ``lr`` and ``batch_size`` from the family's recipe where they are None."""
    recipe = RECIPES[family_of(preset)]
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
    """AdamW over the trainable parameters with the configured lr and weight decay."""
    return AdamW(trainable_parameters(model), lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> CosineAnnealingLR:
    """Cosine annealing to ``eta_min`` over ``epochs`` (stepped once per epoch)."""
    return CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=config.eta_min)


def deep_supervision_loss(outputs: torch.Tensor | Sequence[torch.Tensor], mask: torch.Tensor, bce: str = "upstream") -> torch.Tensor:
    """Structure loss of one output, or the sum over a tuple of outputs (deep supervision)."""
    from sam2unext.loss import structure_loss

    if isinstance(outputs, torch.Tensor):
        return structure_loss(outputs.float(), mask, bce=bce)
    return sum(structure_loss(o.float(), mask, bce=bce) for o in outputs)


def enable_grad_checkpointing(model: nn.Module) -> int:
    """Switch on gradient checkpointing where the model or its encoders offer it.

    Calls ``set_grad_checkpointing(True)`` on the model if it has that method, else on every
    submodule that has it (timm encoders do).

    Returns:
        How many modules were switched.
    """
    if hasattr(model, "set_grad_checkpointing"):
        model.set_grad_checkpointing(True)
        return 1
    count = 0
    for module in model.modules():
        if module is not model and hasattr(module, "set_grad_checkpointing"):
            module.set_grad_checkpointing(True)
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


def _atomic_torch_save(obj: Any, path: Path) -> None:
    write_atomically(path, lambda tmp: torch.save(obj, tmp))


def save_snapshot(model: nn.Module, path: Path, *, task: str | None, extra: dict) -> None:
    """Write the model to ``path`` in our checkpoint format (via a temporary name)."""
    from sam2unext import save_checkpoint

    save_checkpoint(model, path, task=task, extra=extra)


def load_snapshot_weights(model: nn.Module, path: Path) -> None:
    """Load a snapshot written by :func:`save_snapshot` into ``model`` (same preset).

    Raises:
        CheckpointError: if the file is missing or its tensors do not fit the model.
    """
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"snapshot {path} is missing; cannot resume, start a new run")
    state = load_file(str(path))
    result = model.load_state_dict(state, strict=False)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    missing = trainable & set(result.missing_keys)
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"snapshot {path} does not fit the model ({len(missing)} trainable tensors missing, "
            f"{len(result.unexpected_keys)} unexpected); resume with the same preset"
        )


def write_loss_curve(path: Path, step_losses: Sequence[float], epoch_losses: Sequence[float], steps_per_epoch: int) -> None:
    """Plot per-step losses and per-epoch means to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if step_losses:
        x = [(i + 1) / max(steps_per_epoch, 1) for i in range(len(step_losses))]
        ax.plot(x, step_losses, lw=0.8, alpha=0.5, label="step")
    if epoch_losses:
        ax.plot(range(1, len(epoch_losses) + 1), epoch_losses, "o-", label="epoch mean")
    ax.set_xlabel("epoch")
    ax.set_ylabel("structure loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        write_atomically(path, lambda tmp: fig.savefig(tmp, format="png"), tmp=path.with_name(path.stem + ".tmp.png"))
    finally:
        plt.close(fig)


def _config_from_dict(saved: dict, base: TrainConfig) -> TrainConfig:
    known = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in saved.items() if k in known and k in TrainConfig.SCHEDULE_FIELDS}
    return replace(base, **values)


def _check_run_dir(run_dir: Path, resume: bool) -> None:
    if resume:
        if not (run_dir / RESUME_FILE).is_file():
            raise OutputError(f"{run_dir} holds no {RESUME_FILE}; nothing to resume, drop {option('resume')}")
        return
    if (run_dir / RESUME_FILE).exists() or (run_dir.is_dir() and any(run_dir.glob("epoch_*.safetensors"))):
        raise OutputError(
            f"{run_dir} already holds a training run; pass {option('resume')} to continue it or choose another folder"
        )


def train_model(
    model: nn.Module,
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
        model: a segmentation model with frozen encoders; ``preset`` selects the recipe.
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
    from tqdm.auto import tqdm

    from sam2unext.api import resolve_device

    say = log or (lambda _msg: None)
    run_dir = Path(run_dir)
    _check_run_dir(run_dir, resume)
    if len(dataset) == 0:
        raise DatasetError("the training dataset is empty; pass folders with matching images and masks")
    preset = getattr(model, "preset", "sam2unext")
    config = resolve_config(config or TrainConfig(), preset)

    state: dict[str, Any] | None = None
    if resume:
        state = torch.load(run_dir / RESUME_FILE, map_location="cpu", weights_only=True)
        config = resolve_config(_config_from_dict(state["config"], config), preset)
    if hasattr(dataset, "seed"):
        dataset.seed = config.seed
    device = resolve_device(config.device)
    use_amp = device.type == "cuda" if config.amp is None else bool(config.amp and device.type == "cuda")
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16

    if config.grad_checkpointing and enable_grad_checkpointing(model) == 0:
        say("note: the model offers no gradient checkpointing; training without it")
    model.to(device)
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    start_epoch = 0
    snapshots: list[Path] = []
    step_losses: list[float] = []
    epoch_losses: list[float] = []
    if state is not None:
        snapshot = run_dir / state["snapshot"]
        load_snapshot_weights(model, snapshot)
        model.to(device)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch = int(state["epoch"])
        step_losses = list(state["step_losses"])
        epoch_losses = list(state["epoch_losses"])
        snapshots = [run_dir / s for s in state["snapshots"]]
        say(f"resuming {run_dir} from {snapshot.name} (epoch {start_epoch}/{config.epochs})")
    run_dir.mkdir(parents=True, exist_ok=True)

    steps_per_epoch = math.ceil(len(dataset) / config.batch_size)
    t0 = time.perf_counter()
    meta = {"preset": preset, **(extra or {})}
    for epoch in range(start_epoch, config.epochs):
        seed = _epoch_seed(config.seed, epoch)
        seed_everything(seed)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        loader = DataLoader(
            dataset,
            batch_size=config.batch_size,
            sampler=RandomSampler(dataset, generator=torch.Generator().manual_seed(seed)),
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
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                outputs = model(image)
            loss = deep_supervision_loss(outputs, mask.float(), bce=config.bce)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at epoch {epoch + 1}; lower --lr")
            losses.append(value)
            bar.set_postfix(loss=f"{value:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
        bar.close()
        scheduler.step()
        step_losses.extend(losses)
        epoch_losses.append(sum(losses) / len(losses))
        done = epoch + 1
        say(f"epoch {done}/{config.epochs}: mean loss {epoch_losses[-1]:.4f}")

        if done % config.snapshot_every == 0 or done == config.epochs:
            path = run_dir / SNAPSHOT_PATTERN.format(epoch=done)
            save_snapshot(model, path, task=task, extra={**meta, "epoch": done, "loss": epoch_losses[-1]})
            if path not in snapshots:
                snapshots.append(path)
            _atomic_torch_save(
                {
                    "epoch": done,
                    "snapshot": path.name,
                    "snapshots": [p.name for p in snapshots],
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                    "step_losses": step_losses,
                    "epoch_losses": epoch_losses,
                    "config": asdict(config),
                },
                run_dir / RESUME_FILE,
            )
            say(f"saved snapshot {path}")
        history = json.dumps({"epoch_losses": epoch_losses, "step_losses": step_losses, "config": asdict(config)}, indent=1)
        write_atomically(run_dir / HISTORY_FILE, lambda tmp: tmp.write_text(history))
        write_loss_curve(run_dir / CURVE_FILE, step_losses, epoch_losses, steps_per_epoch)
        if stop_after_epoch is not None and done >= stop_after_epoch:
            break

    return TrainResult(
        run_dir=run_dir,
        snapshots=snapshots,
        epoch_losses=epoch_losses,
        step_losses=step_losses,
        epochs_done=len(epoch_losses),
        seconds=time.perf_counter() - t0,
        config=config,
    )


def last_snapshot(run_dir: str | Path) -> Path | None:
    """The snapshot a resumed run restarts from, or None when there is no ``resume.pt``."""
    state_path = Path(run_dir) / RESUME_FILE
    if not state_path.is_file():
        return None
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    return Path(run_dir) / state["snapshot"]


def resume_preset(run_dir: str | Path) -> str:
    """Preset of the run in ``run_dir``, read from its last snapshot's metadata.

    Raises:
        OutputError: if the folder holds no resumable run.
        CheckpointError: if the snapshot is unreadable.
    """
    from sam2unext import read_checkpoint_metadata

    state_path = Path(run_dir) / RESUME_FILE
    if not state_path.is_file():
        raise OutputError(f"{run_dir} holds no {RESUME_FILE}; nothing to resume, drop {option('resume')}")
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    return read_checkpoint_metadata(Path(run_dir) / state["snapshot"])["preset"]


def make_training_model(
    preset: str | None,
    *,
    hiera: str | Path | None = None,
    dinov2: str | Path | None = None,
    checkpoint: str | Path | None = None,
    seed: int = 0,
) -> nn.Module:
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
        from sam2unext.errors import PresetError

        raise PresetError("no --preset given; name a preset (see 'sam2unext-geo models') or pass --checkpoint")
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
    stop_after_epoch: int | None = None,
) -> TrainResult:
    """Train a preset on an image folder and a mask folder (matched by file stem).

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
        stop_after_epoch: stop early after this epoch.

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
        model, dataset, run_dir, config, task=task, resume=resume, progress=progress, log=log,
        stop_after_epoch=stop_after_epoch, extra={"images": str(images), "masks": str(masks)},
    )
