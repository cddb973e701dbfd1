"""The two frozen encoders, built from timm with random weights (never downloaded).

* Hiera trunk: timm ``sam2_hiera_*`` (``timm.models.hieradet_sam2.HieraDet``) without its
  classifier head, with an :class:`~sam2unext.layers.Adapter` around every block.
* DINOv2: timm ``vit_*_patch14_dinov2`` at the low-res size, wrapped by timm's
  ``features_only`` getter exactly as the public SAM2-UNeXT code builds it, so its keys are
  ``model.*`` and its last output is the last block before the final norm, as NCHW.
"""

from __future__ import annotations

from typing import Any, cast

import timm
import torch
import torch.nn as nn

from sam2unext.layers import Adapter
from sam2unext.presets import ADAPTER_DIM, Preset


def build_hiera_trunk(preset: Preset) -> nn.Module:
    """A plain timm Hiera trunk (no head, no adapters) for ``preset``, random weights.

    Args:
        preset: The model preset.

    Returns:
        ``HieraDet`` whose ``forward_intermediates`` gives the four stage outputs.
    """
    trunk = timm.create_model(
        preset.hiera, pretrained=False, num_classes=0, in_chans=preset.in_chans, **preset.hiera_kwargs
    )
    cast(Any, trunk).reset_classifier(0, reset_other=True)  # Meta's trunk has no final norm either
    return trunk


def add_adapters(trunk: nn.Module, bottleneck: int = ADAPTER_DIM) -> nn.Module:
    """Freeze ``trunk`` and wrap each of its blocks in a trainable :class:`Adapter` (in place).

    Returns:
        The same trunk, for chaining.
    """
    for param in trunk.parameters():
        param.requires_grad = False
    blocks = cast(nn.Sequential, trunk.blocks)
    trunk.blocks = nn.Sequential(*[Adapter(block, bottleneck) for block in blocks])
    return trunk


def hiera_stage_features(trunk: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The four NCHW stage outputs of a Hiera trunk (what SAM2's ``Hiera.forward`` returns)."""
    return cast(Any, trunk).forward_intermediates(x, intermediates_only=True)


def build_dinov2(preset: Preset) -> nn.Module:
    """The frozen DINOv2 feature extractor for ``preset``, random weights.

    Returns:
        timm ``FeatureGetterNet``; ``module(x)[-1]`` is the last block's output as
        ``[B, width, low_res/14, low_res/14]``.
    """
    if preset.dinov2 is None:
        raise ValueError(f"preset {preset.name} has no DINOv2 branch")
    kwargs = dict(preset.dinov2_kwargs)
    depth = kwargs.get("depth")
    if depth is not None:
        kwargs.setdefault("out_indices", min(3, depth))
    dino = timm.create_model(
        preset.dinov2,
        pretrained=False,
        features_only=True,
        img_size=(preset.low_res_size, preset.low_res_size),
        in_chans=preset.in_chans,
        **kwargs,
    )
    for param in dino.parameters():
        param.requires_grad = False
    return dino
