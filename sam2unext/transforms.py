"""Tensor transforms shared by the model, its inference API and the geo tiler."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sam2unext.errors import InputError

#: ImageNet statistics used by both encoders (public code: torchvision ``Normalize``).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_unit_float(
    tiles: np.ndarray | torch.Tensor | Sequence[np.ndarray], out: np.ndarray | None = None
) -> torch.Tensor:
    """uint8 images ``[B, C, H, W]`` (an array, a CPU tensor or a sequence of ``[C, H, W]``) → float32 in [0, 1].

    The one uint8 → [0, 1] conversion of the project (the model's inference API, the geo tiler
    and geo fine-tuning). The values are exactly ``float32(x) / 255`` (correctly rounded), the
    same as ``torch.div(uint8_tensor, 255.0)``, written one image at a time straight into the
    batch (no stacked uint8 copy) at a fraction of torch's cost on CPU.

    Args:
        tiles: uint8 images.
        out: optional float32 ``[B, C, H, W]`` buffer to write into (reused between batches).

    Returns:
        A float32 tensor sharing memory with ``out`` when given.
    """
    if isinstance(tiles, torch.Tensor):
        tiles = tiles.numpy()
    images = list(tiles)
    if not images:
        raise ValueError("to_unit_float needs at least one image")
    if out is None:
        out = np.empty((len(images), *np.shape(images[0])), dtype=np.float32)
    for j, image in enumerate(images):
        np.divide(image, np.float32(255.0), out=out[j], dtype=np.float32)
    return torch.from_numpy(out)


def low_res_view(image: torch.Tensor, size: int) -> torch.Tensor:
    """The low-resolution copy of a tile that the DINOv2 branch sees.

    Bilinear, ``align_corners=False``, no antialias: exactly what the public SAM2-UNeXT code
    does with ``F.interpolate(x, size=(448, 448), mode='bilinear')``. Interpolation is linear,
    so it commutes with per-channel normalization: apply it before or after normalizing.

    Args:
        image: Float tensor ``[B, 3, H, W]``.
        size: Output side (448 for the real presets).

    Returns:
        Float tensor ``[B, 3, size, size]``.
    """
    return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)


def normalize(
    image: torch.Tensor, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
) -> torch.Tensor:
    """Normalize a float image in [0, 1], ``[..., C, H, W]`` (a batch or one image), per channel.

    The default is ImageNet's statistics for RGB; a multispectral model passes its own
    ``mean``/``std`` (one value per channel, see :class:`sam2unext.bands.BandConfig`).
    """
    channels = len(mean)
    mean_t = torch.tensor(mean, dtype=image.dtype, device=image.device).view(channels, 1, 1)
    std_t = torch.tensor(std, dtype=image.dtype, device=image.device).view(channels, 1, 1)
    return (image - mean_t) / std_t


def resize_image(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a float image batch to ``size x size`` (bilinear, antialiased when shrinking).

    Used by :meth:`SegmentationModel.predict` (and so by the geo path, on tiles that are not
    at the model's input size): fast, batched and on the device, but not bit-identical to the
    public test loaders, which resize the uint8 PIL image (``transforms.Resize``) before
    converting to float: the two differ by up to about 1/255 on a minority of pixels. The
    ``test``/``evaluate`` path (:mod:`sam2unext.folder_prediction`) uses the public loaders' PIL resize
    (:func:`sam2unext.data.image_to_tensor`) so that its scores are comparable with the
    paper's. A no-op when the image already has that size.
    """
    if image.shape[-2:] == (size, size):
        return image
    shrinking = image.shape[-2] > size or image.shape[-1] > size
    return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)


def as_float_batch(image: torch.Tensor | np.ndarray, channels: int = 3) -> tuple[torch.Tensor, bool]:
    """Bring an image to a float32 ``[B, C, H, W]`` tensor with values in [0, 1].

    Args:
        image: uint8 or float tensor ``[B, C, H, W]`` / ``[C, H, W]`` (float already in [0, 1]),
            or a numpy ``[H, W, C]`` array (uint8, or float in [0, 1]).
        channels: The channel count C the model takes (3 for RGB).

    Returns:
        ``(batch, was_numpy)``.

    Raises:
        InputError: wrong rank or channel count (the message names both counts).
    """
    was_numpy = isinstance(image, np.ndarray)
    if was_numpy:
        if image.ndim != 3 or image.shape[-1] != channels:
            raise InputError(
                f"numpy image must be HxWx{channels} for a model that takes {channels} bands, "
                f"got shape {tuple(image.shape)}"
            )
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    elif isinstance(image, torch.Tensor):
        tensor = image
    else:
        raise InputError(f"image must be a torch tensor or numpy array, got {type(image).__name__}")
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 4:
        raise InputError(f"image tensor must be [B,{channels},H,W] or [{channels},H,W], got {tuple(tensor.shape)}")
    if tensor.shape[1] != channels:
        raise InputError(
            f"image has {tensor.shape[1]} bands but the model takes {channels}; "
            f"give [B,{channels},H,W] (got {tuple(tensor.shape)})"
        )
    if tensor.dtype == torch.uint8:
        tensor = to_unit_float(tensor.cpu()).to(tensor.device)
    elif tensor.is_floating_point():
        tensor = tensor.float()
    else:
        raise InputError(f"image dtype must be uint8 or float, got {tensor.dtype}")
    return tensor, was_numpy
