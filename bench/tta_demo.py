"""IoU of the demo weights on the demo scene with and without test-time augmentation.

Draws the documented demo scene (3072², seed 2025, or ``--size``/``--seed``), runs
``predict_raster`` with the bundled demo weights once per TTA mode (``none``, ``flip``, ``d4``)
and prints the IoU of each probability map (threshold 0.5) against the scene's truth, the
forward passes and the time.

    python bench/tta_demo.py [--size 3072] [--seed 2025] [--modes none flip d4] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

from sam2unext import load_model
from sam2unext.geo import predict_raster
from sam2unext.geo.demo.demo_run import mask_iou
from sam2unext.geo.demo.demo_scene import DEMO_SEED, DEMO_SIZE, write_demo_scene
from sam2unext.geo.running.tta import forward_passes, with_tta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=DEMO_SIZE)
    ap.add_argument("--seed", type=int, default=DEMO_SEED)
    ap.add_argument("--modes", nargs="+", default=["none", "flip", "d4"])
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    model = load_model("demo", device=args.device)
    with tempfile.TemporaryDirectory() as tmp:
        scene, truth_path = write_demo_scene(Path(tmp), size=args.size, seed=args.seed)
        with rasterio.open(truth_path) as src:
            truth = src.read(1)
        print(f"demo scene {args.size}² seed {args.seed}, device {args.device}, load {os.getloadavg()[0]:.1f}")
        for mode in args.modes:
            t0 = time.perf_counter()
            res = predict_raster(
                scene, Path(tmp) / f"{mode}.tif", model=with_tta(model, mode), vector=False, progress="none"
            )
            secs = time.perf_counter() - t0
            with rasterio.open(res.probability) as src:
                prob = src.read(1).astype(np.float32) / 255
            iou = mask_iou(prob > 0.5, truth)
            passes = res.tiles_computed * forward_passes(mode)
            print(f"tta {mode:5s} IoU {iou:.4f}  {res.tiles_run} tiles, {passes} forward passes, {secs:.1f} s")


if __name__ == "__main__":
    main()
