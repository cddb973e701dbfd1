"""Input bands of a model: how many, which carry the pretrained R, G, B kernels, normalization.

A model built for ``in_chans = N`` starts from the RGB weights of its encoders: the first
convolution of the Hiera patch embedding and of the DINOv2 patch embedding is widened to N
input channels with timm's own :func:`timm.models.adapt_input_conv` (:func:`adapt_input_weight`).
Those two layers then become trainable, with the adapters, glue and decoder.

:class:`BandConfig` is plain data stored in our checkpoints' metadata (key ``bands``) so that
``load_model``/``predict`` rebuild the same input and normalize it as in training.
Normalization of a float tile in [0, 1]: ``(x - mean[c]) / std[c]`` per channel, with the
ImageNet statistics on the three channels mapped to R, G, B and, on the other channels,
per-band statistics measured on the training data (or :data:`EXTRA_MEAN`/:data:`EXTRA_STD`
before any training).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn as nn

from sam2unext.errors import CheckpointError, InputError
from sam2unext.transforms import IMAGENET_MEAN, IMAGENET_STD

#: Normalization of a non-RGB channel before training statistics exist: the mean of the
#: ImageNet statistics (what timm's data config uses for a channel count other than 3).
EXTRA_MEAN = round(sum(IMAGENET_MEAN) / 3, 4)
EXTRA_STD = round(sum(IMAGENET_STD) / 3, 4)
#: How the channels not mapped to R, G, B are initialised: ``"repeat"`` (timm: the RGB
#: kernels repeated and every channel scaled by 3/N) or ``"zero"`` (RGB kernels unchanged,
#: the others zero: the N-band model computes the RGB model, up to float32 summation order, until it is trained).
FILL_MODES = ("repeat", "zero")


@dataclass(frozen=True)
class BandConfig:
    """The input a model takes (stored in checkpoint metadata under ``bands``).

    Attributes:
        in_chans: Number of input channels N.
        rgb_channels: 0-based channel indexes carrying the pretrained R, G and B kernels.
        mean, std: Per-channel normalization of a [0, 1] tile (length N).
        source_bands: 1-based raster bands read into the channels, in channel order, as used
            in training (None: not from a raster).
        stretch: Per-band ``(min, max)`` raster values mapped to 0..255, as in training; None
            means the scene-wide per-band 2-98 % percentile stretch of each scene (uint8
            data used as is).
        stats: Where ``mean``/``std`` of the non-RGB channels come from (``"default"`` or
            ``"training"``).
    """

    in_chans: int = 3
    rgb_channels: tuple[int, int, int] = (0, 1, 2)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    source_bands: tuple[int, ...] | None = None
    stretch: tuple[tuple[float, float], ...] | None = None
    stats: str = "default"

    def __post_init__(self) -> None:
        rgb = tuple(int(c) for c in self.rgb_channels)
        if len(rgb) != 3 or len(set(rgb)) != 3 or not all(0 <= c < self.in_chans for c in rgb):
            raise InputError(f"rgb channels {rgb} must be three different channels among 0..{self.in_chans - 1}")
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise InputError(
                f"band normalization needs {self.in_chans} means and stds, got {len(self.mean)} and {len(self.std)}"
            )
        if self.source_bands is not None and len(self.source_bands) != self.in_chans:
            raise InputError(f"{len(self.source_bands)} source bands for {self.in_chans} channels")

    @classmethod
    def for_channels(cls, in_chans: int, rgb_channels: Sequence[int] = (0, 1, 2), **fields: Any) -> BandConfig:
        """Default normalization for ``in_chans`` channels: ImageNet on ``rgb_channels``,
        :data:`EXTRA_MEAN`/:data:`EXTRA_STD` elsewhere."""
        rgb = tuple(int(c) for c in rgb_channels)
        mean = [EXTRA_MEAN] * in_chans
        std = [EXTRA_STD] * in_chans
        for colour, channel in enumerate(rgb):
            if 0 <= channel < in_chans:
                mean[channel], std[channel] = IMAGENET_MEAN[colour], IMAGENET_STD[colour]
        return cls(in_chans, rgb, tuple(mean), tuple(std), **fields)  # type: ignore[arg-type]

    def with_extra_stats(self, mean: Sequence[float], std: Sequence[float]) -> BandConfig:
        """A copy whose non-RGB channels use the measured ``mean``/``std`` (length N; the
        RGB channels keep the ImageNet statistics)."""
        new_mean, new_std = list(self.mean), list(self.std)
        for c in range(self.in_chans):
            if c not in self.rgb_channels:
                new_mean[c], new_std[c] = float(mean[c]), max(float(std[c]), 1e-3)
        return replace(self, mean=tuple(new_mean), std=tuple(new_std), stats="training")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None, in_chans: int = 3) -> BandConfig:
        """Inverse of :meth:`to_json`; empty text gives the RGB default (older checkpoints).

        Raises:
            CheckpointError: malformed band metadata.
        """
        if not text:
            return cls.for_channels(in_chans)
        try:
            data = json.loads(text)
            stretch = data.get("stretch")
            return cls(
                in_chans=int(data["in_chans"]),
                rgb_channels=tuple(int(c) for c in data["rgb_channels"]),  # type: ignore[arg-type]
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
                source_bands=None if data.get("source_bands") is None else tuple(int(b) for b in data["source_bands"]),
                stretch=None if stretch is None else tuple((float(a), float(b)) for a, b in stretch),
                stats=str(data.get("stats", "default")),
            )
        except (ValueError, KeyError, TypeError, InputError) as exc:
            raise CheckpointError(f"malformed band metadata {text[:120]!r}: {exc}") from None


def adapt_input_weight(
    weight: torch.Tensor, in_chans: int, rgb_channels: Sequence[int] = (0, 1, 2), fill: str = "repeat"
) -> torch.Tensor:
    """An RGB first-conv weight ``[O, 3, k, k]`` widened to ``[O, in_chans, k, k]``.

    ``"repeat"``: timm's :func:`~timm.models.adapt_input_conv` (kernels repeated R, G, B, R, …
    and all scaled by ``3 / in_chans``), its first three channels placed on ``rgb_channels``
    in R, G, B order and its others on the remaining channels in order. ``"zero"``: the RGB
    kernels unchanged on ``rgb_channels``, zeros elsewhere.

    Raises:
        ValueError: not a 3-channel weight, bad mapping or unknown fill.
    """
    from timm.models import adapt_input_conv

    if weight.ndim != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected an RGB conv weight [O, 3, k, k], got {tuple(weight.shape)}")
    rgb = [int(c) for c in rgb_channels]
    if len(rgb) != 3 or len(set(rgb)) != 3 or not all(0 <= c < in_chans for c in rgb):
        raise ValueError(f"rgb channels {tuple(rgb)} must be three different channels among 0..{in_chans - 1}")
    if fill not in FILL_MODES:
        raise ValueError(f"fill {fill!r} must be one of {FILL_MODES}")
    others = [c for c in range(in_chans) if c not in rgb]
    out = torch.zeros(weight.shape[0], in_chans, *weight.shape[2:], dtype=weight.dtype)
    if fill == "zero":
        out[:, rgb] = weight
        return out
    adapted = adapt_input_conv(in_chans, weight.detach().clone())
    out[:, rgb] = adapted[:, :3]
    out[:, others] = adapted[:, 3:]
    return out


def input_convs(model: nn.Module) -> dict[str, nn.Conv2d]:
    """The first convolutions of the model's encoders, by attribute path (Hiera, DINOv2)."""
    convs: dict[str, nn.Conv2d] = {}
    for name in ("sam.patch_embed.proj", "encoder.patch_embed.proj", "dino.model.patch_embed.proj"):
        try:
            module = model.get_submodule(name)
        except AttributeError:
            continue
        if isinstance(module, nn.Conv2d):
            convs[name] = module
    return convs


def unfreeze_input_layers(model: nn.Module) -> int:
    """Make the encoders' first convolutions trainable; returns their parameter count."""
    count = 0
    for conv in input_convs(model).values():
        for param in conv.parameters():
            param.requires_grad = True
            count += param.numel()
    return count


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """``total``, ``trainable`` and ``input_layers`` (trainable first-conv) parameter counts."""
    inputs = {id(p) for conv in input_convs(model).values() for p in conv.parameters() if p.requires_grad}
    params = list(model.parameters())
    return {
        "total": sum(p.numel() for p in params),
        "trainable": sum(p.numel() for p in params if p.requires_grad),
        "input_layers": sum(p.numel() for p in params if id(p) in inputs),
    }


def adapt_model_bands(
    model: Any,
    in_chans: int,
    rgb_channels: Sequence[int] = (0, 1, 2),
    *,
    fill: str = "repeat",
    bands: BandConfig | None = None,
) -> Any:
    """Widen an RGB model (in place) to ``in_chans`` input channels from its RGB weights.

    Both encoders' first convolutions are replaced (:func:`adapt_input_weight`, biases kept)
    and made trainable; ``model.config.in_chans`` and ``model.bands`` are updated (``bands``
    when given, else the default normalization for the mapping).

    Raises:
        CheckpointError: the model does not take 3 channels.
        InputError: bad channel mapping or fill.
    """
    if model.config.in_chans != 3:
        raise CheckpointError(
            f"the model already takes {model.config.in_chans} bands; only an RGB (3-band) model is adapted"
        )
    if fill not in FILL_MODES:
        raise InputError(f"band fill {fill!r} must be one of {', '.join(FILL_MODES)}")
    config = bands or BandConfig.for_channels(in_chans, rgb_channels)
    if config.in_chans != in_chans:
        raise InputError(f"band config for {config.in_chans} channels given for {in_chans}")
    for name, conv in input_convs(model).items():
        new = nn.Conv2d(
            in_chans,
            conv.out_channels,
            conv.kernel_size,  # type: ignore[arg-type]  # torch keeps the 2-tuples it was given
            conv.stride,  # type: ignore[arg-type]
            conv.padding,  # type: ignore[arg-type]
            bias=conv.bias is not None,
        )
        with torch.no_grad():
            new.weight.copy_(adapt_input_weight(conv.weight, in_chans, config.rgb_channels, fill))
            if conv.bias is not None and new.bias is not None:
                new.bias.copy_(conv.bias)
        new.to(conv.weight.device)
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, attr, new)
    model.config = model.config.with_overrides(in_chans=in_chans)
    model.bands = config
    unfreeze_input_layers(model)
    return model
