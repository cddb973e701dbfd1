"""Image/mask folder datasets and the paper's training transforms.

A training sample is an image resized to the model's input size (bilinear), randomly flipped
horizontally and vertically, ImageNet-normalized, and its mask resized bicubic and kept in
[0, 1] (soft labels), as in the public SAM2-UNet / SAM2-UNeXT ``dataset.py``. The low-res
view for the auxiliary encoder is made by the model itself, so it is not produced here.

Random flips are drawn from a generator seeded by ``(seed, epoch, index)``, so a run is
reproducible whatever the number of loader workers and a resumed run sees the same samples
as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode

from sam2unext.errors import DatasetError
from sam2unext.transforms import IMAGENET_MEAN, IMAGENET_STD

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
MASK_SUFFIXES = (".png",)
_MAX_NAMES_SHOWN = 5


@dataclass(frozen=True)
class SamplePair:
    """One image file and its mask file, matched by file stem."""

    name: str
    image: Path
    mask: Path


def list_files(folder: str | Path, suffixes: Sequence[str], *, what: str) -> list[Path]:
    """List the files of ``folder`` whose suffix is in ``suffixes``, sorted by name.

    Args:
        folder: folder to list (not recursive).
        suffixes: accepted lower-case suffixes, with the dot.
        what: what the files are ("image", "mask"), used in error messages.

    Returns:
        The matching files, sorted by file name.

    Raises:
        DatasetError: if the folder does not exist or holds no matching file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{what} folder not found: {folder}; pass an existing folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise DatasetError(f"no {what} files ({'/'.join(s.lstrip('.') for s in suffixes)}) in {folder}")
    return files


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(sorted(names)[:_MAX_NAMES_SHOWN])
    more = len(names) - _MAX_NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def pair_files(images: str | Path, masks: str | Path) -> list[SamplePair]:
    """Match image files with mask files by file stem.

    Args:
        images: folder of jpg/png/tif/bmp images.
        masks: folder of png masks with the same stems.

    Returns:
        The pairs, sorted by name.

    Raises:
        DatasetError: if a folder is missing or empty, a stem appears twice, or some names
            have no partner (the message lists them).
    """
    image_files = list_files(images, IMAGE_SUFFIXES, what="image")
    mask_files = list_files(masks, MASK_SUFFIXES, what="mask")
    by_stem: dict[str, Path] = {}
    for path in image_files:
        if path.stem in by_stem:
            raise DatasetError(
                f"two images share the name {path.stem!r} in {images} "
                f"({by_stem[path.stem].name}, {path.name}); keep one"
            )
        by_stem[path.stem] = path
    mask_by_stem = {p.stem: p for p in mask_files}
    no_mask = sorted(set(by_stem) - set(mask_by_stem))
    no_image = sorted(set(mask_by_stem) - set(by_stem))
    if no_mask or no_image:
        parts = []
        if no_mask:
            parts.append(f"{len(no_mask)} image(s) without a mask in {masks}: {_names(no_mask)}")
        if no_image:
            parts.append(f"{len(no_image)} mask(s) without an image in {images}: {_names(no_image)}")
        raise DatasetError("; ".join(parts) + "; names must match by file stem")
    return [SamplePair(s, by_stem[s], mask_by_stem[s]) for s in sorted(by_stem)]


def _open_converted(path: str | Path, mode: str, kind: str) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert(mode)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {kind} {path}: {exc}; check the file") from exc


def load_rgb(path: str | Path) -> Image.Image:
    """Open an image file as an RGB PIL image.

    Raises:
        DatasetError: if the file cannot be read as an image.
    """
    return _open_converted(path, "RGB", "image")


def load_gray(path: str | Path) -> Image.Image:
    """Open a mask file as an 8-bit grayscale PIL image.

    Raises:
        DatasetError: if the file cannot be read as an image.
    """
    return _open_converted(path, "L", "mask")


def image_to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """Resize an RGB image to ``size``² (bilinear) and ImageNet-normalize it.

    Bit-identical to the public SAM2-UNet/SAM2-UNeXT loaders (``transforms.Resize((size,
    size))``, ``ToTensor``, ``Normalize`` on the PIL image): the resize is PIL's, on uint8.

    Returns:
        Float tensor ``[3, size, size]``.
    """
    image = TF.resize(image, [size, size], interpolation=InterpolationMode.BILINEAR)
    return TF.normalize(TF.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)


def mask_to_tensor(mask: Image.Image, size: int) -> torch.Tensor:
    """Resize a grayscale mask to ``size``² (bicubic) and scale it to [0, 1].

    Returns:
        Float tensor ``[1, size, size]`` of soft labels in [0, 1].
    """
    mask = TF.resize(mask, [size, size], interpolation=InterpolationMode.BICUBIC)
    return TF.to_tensor(mask).clamp_(0.0, 1.0)


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A generator seeded by ``(seed, epoch, index)`` for one sample's augmentation."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_003 + index)


def random_flips(
    image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator, p: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip image and mask together: horizontally, then vertically, each with probability p.

    Args:
        image: tensor ``[C, H, W]``.
        mask: tensor ``[1, H, W]``.
        generator: source of randomness (two draws).
        p: probability of each flip.

    Returns:
        The (possibly) flipped image and mask.
    """
    draws = torch.rand(2, generator=generator)
    if draws[0] < p:
        image, mask = image.flip(-1), mask.flip(-1)
    if draws[1] < p:
        image, mask = image.flip(-2), mask.flip(-2)
    return image, mask


class EpochDataset(Dataset):
    """A dataset whose random augmentation depends on ``(seed, epoch, index)``."""

    seed: int = 0
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations the next iteration produces."""
        self.epoch = epoch


class ImageMaskDataset(EpochDataset):
    """Image/mask pairs from two folders, transformed as in the paper.

    Each item is ``{"image": [3,S,S] normalized, "mask": [1,S,S] in [0,1], "name": str}``.

    Args:
        pairs: matched files (see :func:`pair_files`).
        size: side of the square model input (the model's ``input_size``).
        train: apply the random flips.
        seed: seed of the flips (combined with epoch and index).
    """

    def __init__(self, pairs: Sequence[SamplePair], size: int, *, train: bool = True, seed: int = 0):
        if not pairs:
            raise DatasetError("the dataset is empty; pass folders with matching images and masks")
        self.pairs = list(pairs)
        self.size = size
        self.train = train
        self.seed = seed
        self.epoch = 0

    @classmethod
    def from_folders(
        cls, images: str | Path, masks: str | Path, size: int, *, train: bool = True, seed: int = 0
    ) -> ImageMaskDataset:
        """Build the dataset from an image folder and a mask folder (matched by stem)."""
        return cls(pair_files(images, masks), size, train=train, seed=seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[index]
        image = image_to_tensor(load_rgb(pair.image), self.size)
        mask = mask_to_tensor(load_gray(pair.mask), self.size)
        if self.train:
            image, mask = random_flips(image, mask, sample_generator(self.seed, self.epoch, index))
        return {"image": image, "mask": mask, "name": pair.name}


def mask_array(path: str | Path) -> np.ndarray:
    """Read a mask as a uint8 array ``[H, W]``."""
    return np.asarray(load_gray(path))
