"""The loss-curve picture of a training run (``loss_curve.png``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sam2unext.files import write_atomically


def write_loss_curve(
    path: Path, step_losses: Sequence[float], epoch_losses: Sequence[float], steps_per_epoch: int
) -> None:
    """Plot per-step losses and per-epoch means to a PNG (written atomically).

    Args:
        path: The PNG to write.
        step_losses: Loss of every optimizer step, in order.
        epoch_losses: Mean loss of every finished epoch.
        steps_per_epoch: Steps in one epoch (places the step losses on the epoch axis).
    """
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
