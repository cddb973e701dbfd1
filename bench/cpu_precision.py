"""CPU precision: float32 vs bfloat16 autocast, masks and seconds per tile (not a test).

1. For each preset (random weights, seeded): ``--tiles`` structured tiles cut from demo scenes
   (fields, roads, buildings, ships, water: shapes and gradients, not noise), each through
   float32 and through bfloat16 autocast, batch 1, interleaved so that load drift hits both:
   seconds per tile (median over the tiles, after a warm-up), largest |logit difference|,
   largest |logit|, and the lowest and mean per-tile IoU of the masks (logit > 0) against
   float32. ``--public N`` also times the public code's structure (head computed twice,
   contiguous decoder weights; ``bench/model_speed.py``) in float32 on the first N tiles and
   prints the ratio of bfloat16 to it.
2. ``--demo``: the demo weights on the demo scene, end to end (``predict_raster``) in float32
   and in bfloat16: the IoU of the two masks and each one's IoU against the scene's truth.

Prints the CPU feature ``--precision auto`` keys on (``cpu_native_bf16``) and the load average
with every figure, since the machine is shared. ``--json PATH`` also writes the figures.

Usage:
    python bench/cpu_precision.py --presets sam2unext-large sam2unext-tiny --tiles 8 --threads 2 --public 2 --demo
    python bench/cpu_precision.py --presets sam2unext-test --tiles 8 --demo --demo-size 512   # a quick look
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_speed import build_random, upstream_structure_forward  # noqa: E402

from sam2unext.models import SAM2UNeXT, choose_precision, cpu_native_bf16  # noqa: E402
from sam2unext.transforms import normalize  # noqa: E402

CPU = torch.device("cpu")


def load() -> str:
    """The 1/5/15-minute load average, as one string."""
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def structured_tiles(size: int, count: int, seed: int = 100) -> torch.Tensor:
    """``count`` uint8 RGB tiles ``[count,3,size,size]``: demo scenes of other seeds (shapes, not noise)."""
    from sam2unext.geo.demo.demo_scene import generate_scene

    return torch.from_numpy(
        np.stack([generate_scene(max(size, 256), seed=seed + k).image[:, :size, :size] for k in range(count)])
    )


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """IoU of two boolean masks (1.0 when both are empty)."""
    union = (a | b).sum().item()
    return 1.0 if union == 0 else (a & b).sum().item() / union


def compare_preset(preset: str, tiles: int, public: int) -> dict:
    """float32 vs bfloat16 autocast (and optionally the public structure) on ``tiles`` structured tiles."""
    torch.manual_seed(0)
    model = build_random(preset, CPU)
    images = structured_tiles(model.input_size, tiles)

    public_model = None
    if public and isinstance(model, SAM2UNeXT):  # same weights, contiguous decoder, as the public code
        public_model = copy.deepcopy(model).set_channels_last(False)

    def forward(k: int, dtype: torch.dtype, public: bool = False) -> tuple[float, torch.Tensor]:
        x = normalize(images[k : k + 1].float() / 255)
        with torch.inference_mode(), model._autocast(dtype, CPU):
            start = time.perf_counter()
            out = upstream_structure_forward(public_model, x) if public else model(x)
            return time.perf_counter() - start, out.float()

    forward(0, torch.float32)  # warm-up of both paths
    forward(0, torch.bfloat16)
    t32, t16, tpub, dmax, lmax, ious = [], [], [], 0.0, 0.0, []
    for k in range(tiles):
        s32, ref = forward(k, torch.float32)
        s16, out = forward(k, torch.bfloat16)
        t32.append(s32)
        t16.append(s16)
        if k < public and public_model is not None:
            tpub.append(forward(k, torch.float32, public=True)[0])
        dmax = max(dmax, (out - ref).abs().max().item())
        lmax = max(lmax, ref.abs().max().item())
        ious.append(iou(out > 0, ref > 0))
        print(
            f"  {preset} tile {k}: float32 {s32:.2f} s, bfloat16 {s16:.2f} s"
            f"{f', public {tpub[-1]:.2f} s' if k < len(tpub) else ''}, IoU {ious[-1]:.5f}, "
            f"foreground {float((ref > 0).float().mean()):.3f}  (load {load()})",
            flush=True,
        )
    row = {
        "preset": preset,
        "tiles": tiles,
        "float32_s": statistics.median(t32),
        "bfloat16_s": statistics.median(t16),
        "max_abs_logit_diff": dmax,
        "max_abs_logit": lmax,
        "min_iou": min(ious),
        "mean_iou": statistics.fmean(ious),
        "load": load(),
    }
    row["speedup"] = row["float32_s"] / row["bfloat16_s"]
    if tpub:
        row["public_float32_s"] = statistics.median(tpub)
        row["bfloat16_vs_public"] = row["bfloat16_s"] / row["public_float32_s"]
    return row


def demo_masks(folder: Path, size: int | None) -> dict:
    """The demo weights on the demo scene end to end in float32 and bfloat16: IoUs and seconds."""
    import rasterio

    import sam2unext
    from sam2unext.geo import predict_raster
    from sam2unext.geo.demo.demo_run import mask_iou
    from sam2unext.geo.demo.demo_scene import write_demo_scene

    scene, truth_path = write_demo_scene(folder, overwrite=True, **({} if size is None else {"size": size}))
    with rasterio.open(truth_path) as src:
        truth = src.read(1) > 0
    masks, out = {}, {"scene": str(scene)}
    for dtype in ("float32", "bfloat16"):
        model = sam2unext.load_model("demo", device="cpu", dtype=dtype)
        start = time.perf_counter()
        res = predict_raster(
            scene, folder / f"demo_{dtype}.tif", model=model, vector=False, progress="none", overwrite=True
        )
        out[f"{dtype}_s"] = time.perf_counter() - start
        with rasterio.open(res.probability) as src:
            masks[dtype] = src.read(1).astype(np.float32) / np.float32(255) > 0.5  # as run_demo scores it
        out[f"{dtype}_iou_truth"] = mask_iou(masks[dtype], truth)
        out["tiles"] = res.tiles_run
    out["iou_bf16_vs_fp32"] = mask_iou(masks["bfloat16"], masks["float32"])
    out["load"] = load()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="*", default=["sam2unext-large", "sam2unext-tiny"])
    parser.add_argument("--tiles", type=int, default=8, help="structured tiles per preset")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--public", type=int, default=0, help="tiles also run through the public structure")
    parser.add_argument("--demo", action="store_true", help="the demo weights on the demo scene, end to end")
    parser.add_argument("--demo-size", type=int, default=None, help="demo scene side (default: the demo's)")
    parser.add_argument("--folder", type=Path, default=Path("bench_out/cpu_precision"))
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    caps = getattr(torch.cpu, "get_capabilities", dict)()
    print(
        f"torch {torch.__version__}, {caps.get('cpu_name', '?')}, threads {args.threads}, native bfloat16: "
        f"{cpu_native_bf16()}, auto -> {choose_precision('auto', CPU).describe()}; load {load()}",
        flush=True,
    )
    report: dict = {"cpu": caps.get("cpu_name"), "native_bf16": cpu_native_bf16(), "threads": args.threads, "rows": []}
    for preset in args.presets:
        report["rows"].append(compare_preset(preset, args.tiles, args.public))
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))
    print(
        f"\n{'preset':16s} {'fp32 s':>7s} {'bf16 s':>7s} {'speed-up':>8s} {'public s':>8s} {'bf16/pub':>8s} "
        f"{'max|dlogit|':>11s} {'max|logit|':>10s} {'min IoU':>8s} {'mean IoU':>8s}  load"
    )
    for r in report["rows"]:
        pub = (
            f"{r['public_float32_s']:8.2f} {r['bfloat16_vs_public']:8.2f}"
            if "public_float32_s" in r
            else f"{'-':>8s} {'-':>8s}"
        )
        print(
            f"{r['preset']:16s} {r['float32_s']:7.2f} {r['bfloat16_s']:7.2f} {r['speedup']:8.2f} {pub} "
            f"{r['max_abs_logit_diff']:11.3g} {r['max_abs_logit']:10.3g} {r['min_iou']:8.5f} {r['mean_iou']:8.5f}  "
            f"{r['load']}"
        )
    if args.demo:
        demo = demo_masks(args.folder, args.demo_size)
        report["demo"] = demo
        print(
            f"\ndemo weights, demo scene ({demo['tiles']} tiles): IoU bfloat16 vs float32 "
            f"{demo['iou_bf16_vs_fp32']:.5f}; IoU against the truth: float32 {demo['float32_iou_truth']:.4f}, "
            f"bfloat16 {demo['bfloat16_iou_truth']:.4f}; "
            f"{demo['float32_s']:.1f} s vs {demo['bfloat16_s']:.1f} s (load {demo['load']})"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
