"""Fine-tuning on a 4-band scene: the NIR model finds roofs that colour cannot (small version
of ``bench/nir_bands.py``), and its checkpoint records bands, mapping and statistics."""

from __future__ import annotations

import pytest

from sam2unext import read_checkpoint_metadata
from sam2unext.geo.demo.nir_demo import compare_rgb_nir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # two short fine-tunings: minutes on a shared CPU


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    """RGB and RGB+NIR fine-tuned from the demo weights, 3 epochs x 16 tiles each, scored on
    a second generated scene."""
    return compare_rgb_nir(tmp_path_factory.mktemp("nir"), size=384, epochs=3, tiles=16)


def test_nir_model_is_clearly_better(comparison):
    iou = comparison["iou"]
    assert iou["rgbn"] > 0.45, iou
    assert iou["rgbn"] > iou["rgb"] + 0.15, iou


def test_nir_checkpoint_records_its_bands(comparison):
    meta = read_checkpoint_metadata(comparison["snapshots"]["rgbn"])
    bands = meta["bands"]
    assert meta["preset_config"]["in_chans"] == 4 and bands.in_chans == 4
    assert bands.source_bands == (1, 2, 3, 4) and bands.rgb_channels == (0, 1, 2)
    assert bands.stats == "training" and bands.stretch is None  # uint16: each scene's 2-98 % stretch
    assert 0.0 < bands.mean[3] < 1.0 and bands.std[3] > 0.05
    counts = meta["extra"]["trainable_parameters"]
    assert counts["input_layers"] > 0 and counts["trainable"] == comparison["trainable"]["rgbn"]
    # the two widened first layers (Hiera 16x4x7x7, DINOv2 32x4x14x14, with biases) are the difference
    assert counts["input_layers"] == 16 * 4 * 49 + 16 + 32 * 4 * 196 + 32
    assert comparison["trainable"]["rgbn"] - comparison["trainable"]["rgb"] == counts["input_layers"]
    rgb = read_checkpoint_metadata(comparison["snapshots"]["rgb"])
    assert rgb["bands"].in_chans == 3 and rgb["bands"].source_bands == (1, 2, 3)
