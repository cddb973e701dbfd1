"""SAM2-UNeXT and SAM2-UNet, with a shared inference API (:meth:`SegmentationModel.predict`).

Module names mirror the public code (``sam``/``dino``/``align1..4``/``reduce1..4``/``up1..4``/
``head`` and ``encoder``/``rfb1..4``/``up1..4``/``side1..2``/``head``), so a public state dict
maps onto ours by renaming only the Hiera MLP (``mlp.layers.0/1`` -> ``mlp.fc1/fc2``).
"""

from __future__ import annotations

import contextlib
from typing import Any, overload

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from sam2unext.bands import BandConfig, unfreeze_input_layers
from sam2unext.encoders import add_adapters, build_dinov2, build_hiera_trunk, hiera_stage_features
from sam2unext.errors import InputError, PresetError
from sam2unext.layers import RFBModified, UpConcatFirst, UpSampleFirst
from sam2unext.precision import (  # noqa: F401  (re-exported: the model module was their first home)
    CPU_AUTO_BFLOAT16,
    DTYPES,
    NATIVE_BF16_FEATURES,
    Precision,
    choose_precision,
    cpu_native_bf16,
    precision_facts,
    resolve_dtype,
)
from sam2unext.presets import Preset
from sam2unext.transforms import as_float_batch, low_res_view, normalize, resize_image

# CUDA kernels such as channels-last bilinear upsampling refuse tensors of 2**31 elements or more.
CUDA_TENSOR_ELEMENTS = 2**31 - 1


class SegmentationModel(nn.Module):
    """Common base: preset metadata and image-level inference.

    Attributes:
        preset: Preset name.
        config: The full :class:`Preset`.
        input_size: Tile side the network sees.
        low_res_size: DINOv2 input side, or None (SAM2-UNet).
        inference_dtype: Compute dtype used by :meth:`predict` (set by ``load_model``).
        precision_reason: Why ``inference_dtype`` was chosen (set by ``load_model``).
    """

    def __init__(self, config: Preset) -> None:
        super().__init__()
        self.config = config
        self.preset = config.name
        self.input_size = config.input_size
        self.low_res_size = config.low_res_size
        self.inference_dtype = torch.float32
        self.precision_reason = "float32 by default (build_model)"
        self.task: str | None = None
        self.extra: dict = {}
        self.channels_last = False
        self.bands = BandConfig.for_channels(config.in_chans)

    @property
    def in_chans(self) -> int:
        """Input channels (bands) the model takes."""
        return self.config.in_chans

    def normalize_input(self, image: torch.Tensor) -> torch.Tensor:
        """Per-channel normalization of a [0, 1] batch with the model's band statistics."""
        return normalize(image, self.bands.mean, self.bands.std)

    def _unfreeze_input_layers_if_adapted(self) -> None:
        if self.config.in_chans != 3:
            unfreeze_input_layers(self)

    def decoder_modules(self) -> list[nn.Module]:
        """The convolutional part (glue/RFBs and decoder); overridden by each family."""
        return []

    def set_channels_last(self, enabled: bool = True) -> SegmentationModel:
        """Store the convolutional decoder's weights channels_last (or contiguous).

        The Hiera and ViT outputs are NHWC tensors viewed as NCHW, i.e. already channels_last
        in memory or converted once; channels_last weights make the CPU decoder faster (glue +
        decoder of ``sam2unext-large``: 3.7 s vs 5.6 s, one thread, ``bench/model_speed.py``).
        Values are unchanged up to float rounding.
        """
        fmt = torch.channels_last if enabled else torch.contiguous_format
        for module in self.decoder_modules():
            module.to(memory_format=fmt)
        self.channels_last = enabled
        return self

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _autocast(self, dtype: torch.dtype, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        if dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=dtype)

    def max_tiles_per_pass(self, device: torch.device | None = None) -> int:
        """Most tiles one forward pass may hold so that no activation reaches 2**31 elements.

        Measured once per device type with forward hooks on a one-tile pass (cached on the model):
        a 32-tile batch of ``sam2unext-large`` makes a 2**31-element upsampling output that CUDA refuses.
        """
        device = device or self._device()
        key = (self.input_size, device.type)
        cache = self.__dict__.setdefault("_pass_limits", {})
        if key not in cache:
            largest = 1

            def note(_module: nn.Module, _inputs: Any, output: Any) -> None:
                nonlocal largest
                for item in output if isinstance(output, (tuple, list)) else (output,):
                    if isinstance(item, torch.Tensor):
                        largest = max(largest, item.numel())

            x = torch.zeros(1, self.in_chans, self.input_size, self.input_size, device=device)
            handles = [m.register_forward_hook(note) for m in self.modules()]
            try:
                with torch.inference_mode():
                    self(x)
            finally:
                for handle in handles:
                    handle.remove()
            cache[key] = max(1, CUDA_TENSOR_ELEMENTS // largest)
        return cache[key]

    @overload
    def predict(
        self,
        image: np.ndarray,
        low_res: torch.Tensor | np.ndarray | None = None,
        *,
        batch_size: int | None = None,
        dtype: str | torch.dtype | None = None,
        to_cpu: bool = True,
    ) -> np.ndarray: ...

    @overload
    def predict(
        self,
        image: torch.Tensor,
        low_res: torch.Tensor | np.ndarray | None = None,
        *,
        batch_size: int | None = None,
        dtype: str | torch.dtype | None = None,
        to_cpu: bool = True,
    ) -> torch.Tensor: ...

    def predict(
        self,
        image: torch.Tensor | np.ndarray,
        low_res: torch.Tensor | np.ndarray | None = None,
        *,
        batch_size: int | None = None,
        dtype: str | torch.dtype | None = None,
        to_cpu: bool = True,
    ) -> torch.Tensor | np.ndarray:
        """Foreground probabilities for ordinary images.

        Resizes to ``input_size`` (bilinear, antialiased when shrinking), normalizes with the
        model's band statistics (ImageNet for RGB, see :class:`~sam2unext.bands.BandConfig`),
        runs under ``torch.inference_mode`` in eval mode, resizes the logits back (bilinear,
        ``align_corners=False``, as the public test code) and applies the sigmoid.

        Args:
            image: uint8 or [0, 1] float tensor ``[B,C,H,W]``/``[C,H,W]``, or numpy ``HxWxC``,
                with C the model's band count :attr:`in_chans` (3 for RGB).
            low_res: Optional low-res copy for the DINOv2 branch (same conventions); when None
                the model derives it with :func:`sam2unext.transforms.low_res_view`.
            batch_size: Images per forward pass (default: all at once).
            dtype: ``float32``/``bfloat16``/``float16`` (default: ``inference_dtype``).
            to_cpu: False keeps tensor output on the model's device (no wait for the GPU).

        Returns:
            float32 CPU tensor ``[B,1,H,W]`` for tensor input; numpy float32 ``[H,W]`` for
            numpy input.

        Raises:
            InputError: malformed image or low-res batch, or a band count other than
                :attr:`in_chans`.
        """
        batch, was_numpy = as_float_batch(image, self.in_chans)
        low = None
        low_size = self.low_res_size
        if low_res is not None and low_size is not None:
            low, _ = as_float_batch(low_res, self.in_chans)
            if low.shape[0] != batch.shape[0]:
                raise InputError(f"low_res batch has {low.shape[0]} images but image has {batch.shape[0]}")
        device = self._device()
        compute = resolve_dtype(dtype if dtype is not None else self.inference_dtype, device)
        height, width = batch.shape[-2:]
        step = batch_size or batch.shape[0]
        was_training = self.training
        self.eval()
        outputs = []
        try:
            with torch.inference_mode(), self._autocast(compute, device):
                if device.type == "cuda":
                    step = min(step, self.max_tiles_per_pass(device))
                for start in range(0, batch.shape[0], step):
                    x = self.normalize_input(resize_image(batch[start : start + step].to(device), self.input_size))
                    if device.type == "cuda" and self.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    lr = None
                    if low is not None and low_size is not None:
                        lr = self.normalize_input(resize_image(low[start : start + step].to(device), low_size))
                    logits = self(x, lr).float()
                    if logits.shape[-2:] != (height, width):
                        logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
                    probs = torch.sigmoid(logits)
                    outputs.append(probs.cpu() if to_cpu or was_numpy else probs)
        finally:
            self.train(was_training)
        probs = torch.cat(outputs)
        if was_numpy:
            return probs[0, 0].numpy()
        return probs


class SAM2UNeXT(SegmentationModel):
    """SAM2 Hiera (adapted, frozen) + DINOv2 (frozen) + dense glue + U-Net decoder."""

    def __init__(self, config: Preset, trunk: nn.Module | None = None, dino: nn.Module | None = None) -> None:
        """
        Args:
            config: A ``sam2unext`` preset.
            trunk: A plain Hiera trunk (already loaded); built with random weights if None.
            dino: A DINOv2 feature getter (already loaded); built randomly if None.
        """
        super().__init__(config)
        if config.low_res_size is None:
            raise PresetError(f"preset {config.name!r} has no low_res_size; a SAM2-UNeXT preset needs one")
        self.dino_size: int = config.low_res_size
        self.sam = add_adapters(trunk if trunk is not None else build_hiera_trunk(config))
        self.dino = dino if dino is not None else build_dinov2(config)
        c = config.decoder_channels
        width = config.dinov2_width
        s1, s2, s3, s4 = config.stage_channels
        self.align1 = nn.Conv2d(width, s1, 1)
        self.align2 = nn.Conv2d(width, s2, 1)
        self.align3 = nn.Conv2d(width, s3, 1)
        self.align4 = nn.Conv2d(width, s4, 1)
        self.reduce1 = nn.Conv2d(2 * s1, c, 1)
        self.reduce2 = nn.Conv2d(2 * s2, c, 1)
        self.reduce3 = nn.Conv2d(2 * s3, c, 1)
        self.reduce4 = nn.Conv2d(2 * s4, c, 1)
        self.up1 = UpConcatFirst(2 * c, c)
        self.up2 = UpConcatFirst(2 * c, c)
        self.up3 = UpConcatFirst(2 * c, c)
        self.up4 = UpConcatFirst(c, c)
        self.head = nn.Conv2d(c, 1, 1)
        self.set_channels_last(True)
        self._unfreeze_input_layers_if_adapted()

    def decoder_modules(self) -> list[nn.Module]:
        return [
            self.align1,
            self.align2,
            self.align3,
            self.align4,
            self.reduce1,
            self.reduce2,
            self.reduce3,
            self.reduce4,
            self.up1,
            self.up2,
            self.up3,
            self.up4,
            self.head,
        ]

    def glue(self, stages: list[torch.Tensor], dino_map: torch.Tensor) -> list[torch.Tensor]:
        """Dense glue: align DINOv2 to each stage's width and size, concat, reduce to ``c``."""
        aligns = (self.align1, self.align2, self.align3, self.align4)
        reduces = (self.reduce1, self.reduce2, self.reduce3, self.reduce4)
        fused = []
        for feat, align, reduce in zip(stages, aligns, reduces):
            d = F.interpolate(align(dino_map), size=feat.shape[-2:], mode="bilinear")
            fused.append(reduce(torch.cat([feat, d], dim=1)))
        return fused

    def decode(self, x1: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor, x4: torch.Tensor) -> torch.Tensor:
        """U-Net decoder to the stride-2 map, head once, x2 bilinear to input size."""
        x = self.up4(x4)
        x = self.up3(x, x3)
        x = self.up2(x, x2)
        x = self.up1(x, x1)
        return F.interpolate(self.head(x), scale_factor=2, mode="bilinear")

    def forward(self, image: torch.Tensor, low_res: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B,1,S,S]`` for a normalized batch ``[B,C,S,S]`` (``C = in_chans``).

        Args:
            image: Normalized tile batch.
            low_res: Normalized low-res batch ``[B,C,L,L]`` (all bands); default
                ``low_res_view(image, low_res_size)``.
        """
        if low_res is None:
            low_res = low_res_view(image, self.dino_size)
        stages = hiera_stage_features(self.sam, image)
        dino_map = self.dino(low_res)[-1]
        return self.decode(*self.glue(stages, dino_map))


class SAM2UNet(SegmentationModel):
    """SAM2 Hiera (adapted, frozen) + RFB blocks + U-Net decoder with deep supervision."""

    def __init__(self, config: Preset, trunk: nn.Module | None = None) -> None:
        super().__init__(config)
        self.encoder = add_adapters(trunk if trunk is not None else build_hiera_trunk(config))
        c = config.decoder_channels
        s1, s2, s3, s4 = config.stage_channels
        self.rfb1 = RFBModified(s1, c)
        self.rfb2 = RFBModified(s2, c)
        self.rfb3 = RFBModified(s3, c)
        self.rfb4 = RFBModified(s4, c)
        self.up1 = UpSampleFirst(2 * c, c)
        self.up2 = UpSampleFirst(2 * c, c)
        self.up3 = UpSampleFirst(2 * c, c)
        self.up4 = UpSampleFirst(2 * c, c)  # present (and unused) in the public model
        self.side1 = nn.Conv2d(c, 1, kernel_size=1)
        self.side2 = nn.Conv2d(c, 1, kernel_size=1)
        self.head = nn.Conv2d(c, 1, kernel_size=1)
        self.set_channels_last(True)
        self._unfreeze_input_layers_if_adapted()

    def decoder_modules(self) -> list[nn.Module]:
        return [
            self.rfb1,
            self.rfb2,
            self.rfb3,
            self.rfb4,
            self.up1,
            self.up2,
            self.up3,
            self.up4,
            self.side1,
            self.side2,
            self.head,
        ]

    def decode(
        self, x1: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor, x4: torch.Tensor, side_outputs: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """RFBs and decoder. Returns ``out`` (stride-4 head, x4 bilinear), or with
        ``side_outputs`` the tuple ``(out, out1, out2)`` of the deep-supervised heads."""
        x1, x2, x3, x4 = self.rfb1(x1), self.rfb2(x2), self.rfb3(x3), self.rfb4(x4)
        x = self.up1(x4, x3)
        out1 = F.interpolate(self.side1(x), scale_factor=16, mode="bilinear") if side_outputs else None
        x = self.up2(x, x2)
        out2 = F.interpolate(self.side2(x), scale_factor=8, mode="bilinear") if side_outputs else None
        x = self.up3(x, x1)
        out = F.interpolate(self.head(x), scale_factor=4, mode="bilinear")
        return (out, out1, out2) if out1 is not None and out2 is not None else out

    def forward(
        self, image: torch.Tensor, low_res: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits ``[B,1,S,S]``; in training mode ``(out, out1, out2)`` like the public code.

        ``low_res`` is accepted for interface symmetry and ignored.
        """
        x1, x2, x3, x4 = hiera_stage_features(self.encoder, image)
        return self.decode(x1, x2, x3, x4, side_outputs=self.training)


def model_class(config: Preset) -> type[SegmentationModel]:
    """The model class of a preset's family."""
    return SAM2UNeXT if config.family == "sam2unext" else SAM2UNet
