"""The files of a training run folder: snapshots, ``resume.pt`` and ``history.json``.

A run folder holds ``epoch_005.safetensors`` … (snapshots in our checkpoint format),
``resume.pt`` (optimizer, scheduler, scaler and history at the last snapshot; tensors and
plain values only, so it loads with ``weights_only=True``), ``history.json`` and
``loss_curve.png`` (drawn by :mod:`sam2unext.loss_curve`). Every file is written through a
temporary name, so a killed run never leaves a half-written one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sam2unext.errors import CheckpointError, OutputError, option
from sam2unext.files import write_atomically

if TYPE_CHECKING:
    from sam2unext.models import SegmentationModel

SNAPSHOT_PATTERN = "epoch_{epoch:03d}.safetensors"
RESUME_FILE = "resume.pt"
HISTORY_FILE = "history.json"
CURVE_FILE = "loss_curve.png"


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse to start over an existing run, or to resume where there is nothing to resume.

    Raises:
        OutputError: ``run_dir`` holds a run and ``resume`` is False, or holds no
            ``resume.pt`` and ``resume`` is True.
    """
    if resume:
        if not (run_dir / RESUME_FILE).is_file():
            raise OutputError(f"{run_dir} holds no {RESUME_FILE}; nothing to resume, drop {option('resume')}")
        return
    if (run_dir / RESUME_FILE).exists() or (run_dir.is_dir() and any(run_dir.glob("epoch_*.safetensors"))):
        raise OutputError(
            f"{run_dir} already holds a training run; pass {option('resume')} to continue it or choose another folder"
        )


def read_resume_state(run_dir: Path) -> dict[str, Any]:
    """The content of ``run_dir/resume.pt`` (loaded with ``weights_only=True``).

    Raises:
        OutputError: the folder holds no ``resume.pt``.
    """
    path = Path(run_dir) / RESUME_FILE
    if not path.is_file():
        raise OutputError(f"{run_dir} holds no {RESUME_FILE}; nothing to resume, drop {option('resume')}")
    return torch.load(path, map_location="cpu", weights_only=True)


def write_resume_state(run_dir: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors and plain values only) as ``run_dir/resume.pt``, atomically."""
    write_atomically(run_dir / RESUME_FILE, lambda tmp: torch.save(state, tmp))


def write_history(run_dir: Path, epoch_losses: list[float], step_losses: list[float], config: dict[str, Any]) -> None:
    """Write the loss history and the run's settings as ``run_dir/history.json``, atomically."""
    text = json.dumps({"epoch_losses": epoch_losses, "step_losses": step_losses, "config": config}, indent=1)
    write_atomically(run_dir / HISTORY_FILE, lambda tmp: tmp.write_text(text))


def save_snapshot(model: SegmentationModel, path: Path, *, task: str | None, extra: dict[str, Any]) -> None:
    """Write the model to ``path`` in our checkpoint format (via a temporary name)."""
    from sam2unext.api import save_checkpoint

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


def resume_preset(run_dir: str | Path) -> str:
    """Preset of the run in ``run_dir``, read from its last snapshot's metadata.

    Raises:
        OutputError: if the folder holds no resumable run.
        CheckpointError: if the snapshot is unreadable.
    """
    from sam2unext.api import read_checkpoint_metadata

    state = read_resume_state(Path(run_dir))
    return read_checkpoint_metadata(Path(run_dir) / state["snapshot"])["preset"]
