"""`test`: PNG predictions at each image's original size, min-max normalized as upstream."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from sam2unext import load_model
from sam2unext.data import image_to_tensor, load_rgb
from sam2unext.errors import OutputError
from sam2unext.folder_prediction import minmax_to_uint8, predict_folder


@pytest.fixture(scope="module")
def predictions(short_run, folder_data, tmp_path_factory):
    images, _ = folder_data
    model = load_model(short_run.last_snapshot, device="cpu")
    out = tmp_path_factory.mktemp("pred")
    return model, images, out, predict_folder(model, images, out, device="cpu", progress=False)


def test_pngs_have_original_sizes(predictions):
    _, images, out, result = predictions
    assert len(result.outputs) == 3
    for src in sorted(images.iterdir()):
        png = out / f"{src.stem}.png"
        with Image.open(src) as a, Image.open(png) as b:
            assert b.size == a.size and b.mode == "L"


def test_maps_are_minmax_normalized_upstream_style(predictions):
    model, images, out, _ = predictions
    src = sorted(images.iterdir())[1]
    image = load_rgb(src)
    with torch.no_grad():
        logits = model(image_to_tensor(image, model.input_size)[None])
    prob = torch.sigmoid(F.interpolate(logits, size=(image.height, image.width), mode="bilinear", align_corners=False))[
        0, 0
    ].numpy()
    want = ((prob - prob.min()) / (prob.max() - prob.min() + 1e-8) * 255).astype(np.uint8)
    got = np.asarray(Image.open(out / f"{src.stem}.png"))
    assert np.array_equal(got, want)
    assert got.min() == 0 and got.max() >= 254


def test_minmax_of_constant_map_is_zero():
    assert minmax_to_uint8(np.full((3, 4), 0.7, np.float32)).max() == 0


def test_existing_outputs_need_overwrite(predictions):
    model, images, out, _ = predictions
    with pytest.raises(OutputError, match="overwrite=True"):
        predict_folder(model, images, out, device="cpu", progress=False)
