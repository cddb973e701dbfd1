"""Image/mask folder pairing, dataset errors and the paper's transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sam2unext.data import ImageMaskDataset, mask_to_tensor, pair_files, random_flips, sample_generator
from sam2unext.errors import DatasetError


def test_pairs_match_by_stem(folder_data):
    images, masks = folder_data
    pairs = pair_files(images, masks)
    assert [p.name for p in pairs] == [f"sample_{i:02d}" for i in range(3)]
    assert all(p.image.stem == p.mask.stem == p.name for p in pairs)


def test_unmatched_names_are_listed_in_one_line(folder_data, tmp_path):
    images, masks = folder_data
    extra = tmp_path / "masks"
    extra.mkdir()
    for p in masks.iterdir():
        (extra / p.name).write_bytes(p.read_bytes())
    (extra / "sample_00.png").unlink()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(extra / "orphan.png")
    with pytest.raises(DatasetError) as info:
        pair_files(images, extra)
    message = str(info.value)
    assert "\n" not in message
    assert "sample_00" in message and "orphan" in message


def test_empty_and_missing_folders(tmp_path, folder_data):
    images, _ = folder_data
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no mask files"):
        pair_files(images, empty)
    with pytest.raises(DatasetError, match="not found"):
        pair_files(tmp_path / "nope", empty)


def test_training_items_resized_normalized_soft_masks(folder_data):
    images, masks = folder_data
    ds = ImageMaskDataset.from_folders(images, masks, 64, seed=1)
    item = ds[1]
    assert item["image"].shape == (3, 64, 64) and item["mask"].shape == (1, 64, 64)
    assert item["image"].min() < -1.0  # ImageNet-normalized, not [0, 1]
    m = item["mask"]
    assert 0.0 <= float(m.min()) and float(m.max()) <= 1.0
    soft = ((m > 0.02) & (m < 0.98)).sum()
    assert soft > 0  # bicubic resizing leaves soft edges


def test_bicubic_mask_stays_in_unit_range():
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 255  # bicubic overshoots near hard edges; values must be clipped
    out = mask_to_tensor(Image.fromarray(mask), 97)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_flips_apply_to_image_and_mask_alike_and_are_reproducible():
    image = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 1, 1, 4, 6)[0, 0].expand(3, 4, 6).clone()
    mask = image[:1].clone()
    seen = set()
    for index in range(16):
        a = random_flips(image, mask, sample_generator(0, 2, index))
        b = random_flips(image, mask, sample_generator(0, 2, index))
        assert torch.equal(a[0], b[0])
        assert torch.equal(a[0][:1], a[1])
        seen.add((bool(a[0][0, 0, 0] != image[0, 0, 0]), bool(a[0][0, 0, -1] == image[0, -1, -1])))
    assert len(seen) > 1  # both flipped and unflipped samples occur
