"""Structure loss of SAM2-UNet / SAM2-UNeXT: BCE + edge-weighted IoU, and its deep-supervision sum."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def edge_weights(mask: torch.Tensor) -> torch.Tensor:
    """``1 + 5 * |avgpool31(mask) - mask|``: weights that grow near mask boundaries.

    Args:
        mask: Target ``[B, 1, H, W]`` in [0, 1].
    """
    return 1 + 5 * torch.abs(F.avg_pool2d(mask, kernel_size=31, stride=1, padding=15) - mask)


def structure_loss(logits: torch.Tensor, mask: torch.Tensor, bce: str = "upstream") -> torch.Tensor:
    """BCE + weighted IoU, averaged over the batch.

    Args:
        logits: Raw predictions ``[B, 1, H, W]``.
        mask: Targets ``[B, 1, H, W]`` in [0, 1] (soft labels allowed).
        bce: ``"upstream"`` (default): the public training code's term. It passes the legacy
            ``reduce='none'`` to ``binary_cross_entropy_with_logits``, which torch reads as a
            plain mean, so its BCE is the *unweighted* mean over the batch; this produced the
            paper's numbers. ``"weighted"``: per-pixel BCE weighted by the edge weights, per
            image, as the papers' text describes.

    Returns:
        Scalar loss.

    Raises:
        ValueError: unknown ``bce`` mode.
    """
    weit = edge_weights(mask)
    if bce == "upstream":
        bce_map = F.binary_cross_entropy_with_logits(logits, mask)  # scalar mean, like upstream
    elif bce == "weighted":
        bce_map = F.binary_cross_entropy_with_logits(logits, mask, reduction="none")
    else:
        raise ValueError(f"bce must be 'upstream' or 'weighted', got {bce!r}")
    wbce = (weit * bce_map).sum(dim=(2, 3)) / weit.sum(dim=(2, 3))
    pred = torch.sigmoid(logits)
    inter = ((pred * mask) * weit).sum(dim=(2, 3))
    union = ((pred + mask) * weit).sum(dim=(2, 3))
    wiou = 1 - (inter + 1) / (union - inter + 1)
    return (wbce + wiou).mean()


def deep_supervision_loss(
    outputs: torch.Tensor | Sequence[torch.Tensor], mask: torch.Tensor, bce: str = "upstream"
) -> torch.Tensor:
    """Structure loss of one output, or the sum over a tuple of outputs (deep supervision).

    SAM2-UNet returns three side outputs in training and its public code sums their losses;
    SAM2-UNeXT returns one. Outputs are cast to float32 first (they may come out of autocast).

    Args:
        outputs: Logits ``[B, 1, H, W]`` or a sequence of them.
        mask: Targets ``[B, 1, H, W]`` in [0, 1].
        bce: BCE form, see :func:`structure_loss`.
    """
    if isinstance(outputs, torch.Tensor):
        return structure_loss(outputs.float(), mask, bce=bce)
    return sum((structure_loss(o.float(), mask, bce=bce) for o in outputs), torch.zeros((), device=mask.device))
