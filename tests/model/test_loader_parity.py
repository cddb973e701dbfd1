"""Issue 10: the test/evaluate path feeds the model exactly what the public loaders do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from sam2unext import build_model
from sam2unext.data import image_to_tensor
from sam2unext.folder_prediction import predict_image
from sam2unext.transforms import as_float_batch, normalize, resize_image


def _public_test_transform(size: int):
    """The image transform of the public SAM2-UNet / SAM2-UNeXT ``TestDataset``."""
    return transforms.Compose(
        [
            transforms.Resize((size, size)),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )


def _photo(height: int, width: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 127 + 90 * np.sin(yy / 9.0) * np.cos(xx / 13.0)
    rgb = np.stack([base, 255 - base, (base * 1.7) % 256], axis=-1) + rng.normal(0, 20, (height, width, 3))
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("shape", [(300, 411), (256, 256), (120, 97)])
def test_test_loader_input_is_bit_identical_to_the_public_loader(shape):
    image = _photo(*shape)
    ours = image_to_tensor(image, 256)
    public = _public_test_transform(256)(image)
    assert torch.equal(ours, public)


def test_predict_image_runs_the_model_on_the_public_loaders_input(monkeypatch):
    model = build_model("sam2unext-test").eval()
    image = _photo(300, 411)
    seen = []
    original = model.forward

    def spy(x, low_res=None):
        seen.append(x.clone())
        return original(x, low_res)

    monkeypatch.setattr(model, "forward", spy)
    out = predict_image(model, image, torch.device("cpu"))
    assert out.shape == (300, 411) and out.dtype == np.uint8
    assert torch.equal(seen[0][0], _public_test_transform(256)(image))


def test_predict_resize_differs_from_the_public_loader_by_at_most_one_level():
    """The documented difference of ``predict()`` (float32 antialiased resize) from PIL's."""
    image = _photo(300, 411)
    batch, _ = as_float_batch(np.asarray(image))
    ours = normalize(resize_image(batch, 256))[0]
    public = _public_test_transform(256)(image)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    levels = ((ours - public) * std * 255).abs()
    assert levels.max() <= 1.0 + 1e-3
