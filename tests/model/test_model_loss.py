"""Structure loss against hand-computed values and the public training code's formula."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam2unext import structure_loss
from sam2unext.loss import edge_weights


def test_all_background_mask_with_zero_logits():
    # weights are 1, BCE is ln 2, pred is 0.5 -> inter 0, union 0.5 * 64 = 32
    logits = torch.zeros(1, 1, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    expected = math.log(2) + (1 - 1 / 33)
    for mode in ("upstream", "weighted"):
        assert structure_loss(logits, mask, bce=mode).item() == pytest.approx(expected, rel=1e-6)


def test_all_foreground_4x4_mask_uses_zero_padded_31x31_average():
    # avg-pool counts the zero padding: every pixel sees 16 ones out of 961 -> uniform weight w
    mask = torch.ones(1, 1, 4, 4)
    w = 1 + 5 * (1 - 16 / 961)
    torch.testing.assert_close(edge_weights(mask), torch.full((1, 1, 4, 4), w))
    inter, union = 0.5 * 16 * w, 1.5 * 16 * w
    expected = math.log(2) + 1 - (inter + 1) / (union - inter + 1)
    loss = structure_loss(torch.zeros(1, 1, 4, 4), mask)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def _brute_force(logits: np.ndarray, mask: np.ndarray, weighted: bool) -> float:
    """Per-image loops: explicit 31x31 window sums with zero padding."""
    total = 0.0
    for b in range(mask.shape[0]):
        m, z = mask[b, 0], logits[b, 0]
        h, w = m.shape
        padded = np.pad(m, 15)
        weit = np.empty_like(m)
        for i in range(h):
            for j in range(w):
                weit[i, j] = 1 + 5 * abs(padded[i : i + 31, j : j + 31].sum() / 961 - m[i, j])
        p = 1 / (1 + np.exp(-z))
        bce = -(m * np.log(p) + (1 - m) * np.log(1 - p))
        if weighted:
            wbce = (weit * bce).sum() / weit.sum()
        else:
            all_bce = []
            for bb in range(mask.shape[0]):
                pp = 1 / (1 + np.exp(-logits[bb, 0]))
                mm = mask[bb, 0]
                all_bce.append(-(mm * np.log(pp) + (1 - mm) * np.log(1 - pp)))
            wbce = np.mean(all_bce)  # the batch-wide plain mean
        inter = (p * m * weit).sum()
        union = ((p + m) * weit).sum()
        total += wbce + 1 - (inter + 1) / (union - inter + 1)
    return total / mask.shape[0]


@pytest.mark.parametrize("mode", ["upstream", "weighted"])
def test_matches_brute_force_on_random_soft_masks(mode):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 20, 24, generator=gen, dtype=torch.float64) * 2
    mask = (torch.rand(2, 1, 20, 24, generator=gen, dtype=torch.float64) > 0.6).double()
    mask[1, 0, :, :5] = 0.3  # soft labels (bicubic-resized masks) are allowed
    got = structure_loss(logits, mask, bce=mode).item()
    assert got == pytest.approx(_brute_force(logits.numpy(), mask.numpy(), mode == "weighted"), rel=1e-9)


def _public_structure_loss(pred, mask):
    """The public training code's loss, with its legacy ``reduce='none'`` argument."""
    weit = 1 + 5 * torch.abs(F.avg_pool2d(mask, kernel_size=31, stride=1, padding=15) - mask)
    wbce = F.binary_cross_entropy_with_logits(pred, mask, reduce="none")
    wbce = (weit * wbce).sum(dim=(2, 3)) / weit.sum(dim=(2, 3))
    pred = torch.sigmoid(pred)
    inter = ((pred * mask) * weit).sum(dim=(2, 3))
    union = ((pred + mask) * weit).sum(dim=(2, 3))
    wiou = 1 - (inter + 1) / (union - inter + 1)
    return (wbce + wiou).mean()


def test_upstream_mode_equals_the_public_code_and_differs_from_weighted():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 1, 32, 32, generator=gen)
    mask = torch.zeros(3, 1, 32, 32)
    mask[:, :, 8:20, 10:26] = 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            public = _public_structure_loss(logits, mask)
    except TypeError:
        pytest.skip("this torch no longer accepts the legacy reduce= argument")
    ours = structure_loss(logits, mask)
    torch.testing.assert_close(ours, public, rtol=1e-6, atol=0)
    assert abs(structure_loss(logits, mask, bce="weighted").item() - ours.item()) > 1e-3


def test_loss_has_gradients_and_rejects_unknown_mode():
    logits = torch.zeros(1, 1, 8, 8, requires_grad=True)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    structure_loss(logits, mask).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="bce"):
        structure_loss(logits, mask, bce="focal")
