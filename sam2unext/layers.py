"""Building blocks of SAM2-UNeXT and SAM2-UNet.

Attribute names follow the public SAM2-UNeXT / SAM2-UNet code so that state-dict keys line
up one-to-one (``prompt_learn.0``, ``double_conv.3``, ``branch1.2.bn`` ...).
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn as nn
import torch.nn.functional as F


class Adapter(nn.Module):
    """A frozen transformer block with a trainable bottleneck prompt added to its input.

    ``block(x + GELU(Linear(32->dim)(GELU(Linear(dim->32)(x)))))``.

    Args:
        block: The block to wrap (a timm Hiera ``MultiScaleBlock``).
        bottleneck: Adapter width (32 upstream).
    """

    def __init__(self, block: nn.Module, bottleneck: int = 32) -> None:
        super().__init__()
        self.block = block
        dim = int(cast(Any, block).attn.qkv.in_features)
        self.prompt_learn = nn.Sequential(nn.Linear(dim, bottleneck), nn.GELU(), nn.Linear(bottleneck, dim), nn.GELU())
        for layer in self.prompt_learn:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x + self.prompt_learn(x))


class DoubleConv(nn.Module):
    """(3x3 conv, BN, ReLU) twice; the first conv goes to ``mid_channels``."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None):
        super().__init__()
        mid_channels = mid_channels or out_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


def _pad_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Zero-pad ``x`` (centred) to the spatial size of ``ref`` (a no-op for equal sizes)."""
    dy = ref.shape[2] - x.shape[2]
    dx = ref.shape[3] - x.shape[3]
    if dy == 0 and dx == 0:
        return x
    return F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])


class UpConcatFirst(nn.Module):
    """SAM2-UNeXT up-block: concat(x, skip) -> x2 bilinear (align_corners=True) -> DoubleConv.

    Args:
        in_channels: Channels after the concatenation.
        out_channels: Output channels; the first conv goes to ``in_channels // 2``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = torch.cat([x, _pad_to(skip, x)], dim=1)
        return self.conv(self.up(x))


class UpSampleFirst(nn.Module):
    """SAM2-UNet up-block: x2 bilinear (align_corners=True) -> concat(skip, x) -> DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = _pad_to(self.up(x), skip)
        return self.conv(torch.cat([skip, x], dim=1))


class BasicConv2d(nn.Module):
    """Conv (no bias) + BN. The public code defines a ReLU here but never applies it."""

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_planes,
            out_planes,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=True)  # kept for key/structure parity; unused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def _rfb_branch(in_ch: int, out_ch: int, k: int) -> nn.Sequential:
    """1x1, 1xk, kx1, then a 3x3 conv dilated by k."""
    p = k // 2
    return nn.Sequential(
        BasicConv2d(in_ch, out_ch, 1),
        BasicConv2d(out_ch, out_ch, kernel_size=(1, k), padding=(0, p)),
        BasicConv2d(out_ch, out_ch, kernel_size=(k, 1), padding=(p, 0)),
        BasicConv2d(out_ch, out_ch, 3, padding=k, dilation=k),
    )


class RFBModified(nn.Module):
    """Receptive-field block of SAM2-UNet (four dilated branches + residual, then ReLU)."""

    def __init__(self, in_channel: int, out_channel: int) -> None:
        super().__init__()
        self.relu = nn.ReLU(True)
        self.branch0 = nn.Sequential(BasicConv2d(in_channel, out_channel, 1))
        self.branch1 = _rfb_branch(in_channel, out_channel, 3)
        self.branch2 = _rfb_branch(in_channel, out_channel, 5)
        self.branch3 = _rfb_branch(in_channel, out_channel, 7)
        self.conv_cat = BasicConv2d(4 * out_channel, out_channel, 3, padding=1)
        self.conv_res = BasicConv2d(in_channel, out_channel, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)]
        x_cat = self.conv_cat(torch.cat(branches, dim=1))
        return self.relu(x_cat + self.conv_res(x))
