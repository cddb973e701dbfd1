"""bfloat16 against float32 masks of the demo weights on a demo scene, end to end (``predict_raster``).

bfloat16 is asked for explicitly: on a CPU without native bfloat16 torch emulates it (slower,
the same rounding), so the numerics are checked on any CPU. ``bench/cpu_precision.py --demo``
runs the same on the whole 3072 px demo scene.
"""

from __future__ import annotations

import numpy as np
import rasterio

import sam2unext
from sam2unext.geo import predict_raster
from sam2unext.geo.demo.demo_run import mask_iou
from sam2unext.geo.demo.demo_scene import write_demo_scene


def test_bfloat16_keeps_the_demo_masks(tmp_path):
    """512 px demo scene (9 tiles): IoU against float32 >= 0.999, IoU against the truth equal to 3 digits."""
    scene, truth_path = write_demo_scene(tmp_path, size=512)
    with rasterio.open(truth_path) as src:
        truth = src.read(1) > 0
    masks = {}
    for dtype in ("float32", "bfloat16"):
        model = sam2unext.load_model("demo", device="cpu", dtype=dtype)
        res = predict_raster(scene, tmp_path / f"{dtype}.tif", model=model, vector=False, progress="none")
        with rasterio.open(res.probability) as src:
            masks[dtype] = src.read(1).astype(np.float32) / np.float32(255) > 0.5  # as run_demo scores it
    assert mask_iou(masks["bfloat16"], masks["float32"]) >= 0.999
    assert round(mask_iou(masks["bfloat16"], truth), 3) == round(mask_iou(masks["float32"], truth), 3)
