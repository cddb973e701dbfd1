"""Folder prediction behind the ``test`` command: an image folder to 8-bit PNG maps, as the
public ``test.py`` does.

Each image is resized to the model's input size (bilinear) and ImageNet-normalized; the
logits are resized bilinearly to the image's original size, passed through a sigmoid,
min-max normalized per image (``(p - min) / (max - min + 1e-8)``), scaled by 255 and
truncated to uint8, and written as ``<stem>.png``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sam2unext.data import IMAGE_SUFFIXES, image_to_tensor, list_files, load_rgb
from sam2unext.errors import OutputError, option

if TYPE_CHECKING:
    from sam2unext.models import SegmentationModel


@dataclass
class FolderPredictionResult:
    """Files written by :func:`predict_folder`."""

    outputs: list[Path]
    seconds: float


def minmax_to_uint8(prob: np.ndarray) -> np.ndarray:
    """Min-max normalize a probability map and scale it to uint8 (truncating), as upstream."""
    prob = prob.astype(np.float32)
    prob = (prob - prob.min()) / (prob.max() - prob.min() + 1e-8)
    return (prob * 255).astype(np.uint8)


def _first_output(outputs: torch.Tensor | tuple) -> torch.Tensor:
    return outputs if isinstance(outputs, torch.Tensor) else outputs[0]


@torch.inference_mode()
def predict_image(model: SegmentationModel, image: Image.Image, device: torch.device) -> np.ndarray:
    """Predict one RGB image; returns the uint8 map ``[H, W]`` at the image's size."""
    x = image_to_tensor(image, model.input_size).unsqueeze(0).to(device)
    logits = _first_output(model(x)).float()
    logits = F.interpolate(logits, size=(image.height, image.width), mode="bilinear", align_corners=False)
    prob = torch.sigmoid(logits)[0, 0].cpu().numpy()
    return minmax_to_uint8(prob)


def predict_folder(
    model: SegmentationModel,
    images: str | Path,
    output: str | Path,
    *,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> FolderPredictionResult:
    """Write ``<stem>.png`` predictions for every image in a folder.

    Args:
        model: segmentation model (put in eval mode here).
        images: folder of jpg/png/tif/bmp images.
        output: folder for the PNGs (created).
        device: "auto", "cpu" or "cuda[:N]".
        overwrite: replace existing PNGs; otherwise an existing one is an error.
        progress: show a progress bar.
        log: message sink.

    Returns:
        The written files.

    Raises:
        DatasetError: if the image folder is missing or empty.
        OutputError: if a PNG exists and ``overwrite`` is False.
    """
    import time

    from tqdm.auto import tqdm

    from sam2unext.api import resolve_device
    from sam2unext.files import write_atomically

    files = list_files(images, IMAGE_SUFFIXES, what="image")
    out_dir = Path(output)
    targets = [out_dir / f"{p.stem}.png" for p in files]
    if not overwrite:
        existing = [t for t in targets if t.exists()]
        if existing:
            raise OutputError(
                f"{existing[0]} exists ({len(existing)} in all); pass {option('overwrite')} or another folder"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    model.eval().to(dev)
    t0 = time.perf_counter()
    for src, dst in tqdm(list(zip(files, targets)), desc="test", disable=not progress):
        picture = Image.fromarray(predict_image(model, load_rgb(src), dev))
        write_atomically(dst, partial(picture.save, format="PNG"))
        if log:
            log(f"saved {dst}")
    return FolderPredictionResult(outputs=targets, seconds=time.perf_counter() - t0)
