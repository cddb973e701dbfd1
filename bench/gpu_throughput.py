"""The whole device check in one run (< 8 min on an H100/H200), printed as one table (not a test).

1. bf16 matmul TFLOP/s of the device (``--matmul`` square, best of a few);
2. model only, for each preset at bfloat16 and float32: tiles/s of forward passes on uploaded,
   normalized batches, achieved TFLOP/s (FLOPs of one tile counted by
   ``torch.utils.flop_counter``) and % of the measured matmul peak;
3. end to end: ``predict_raster`` (read, feed, model, blend, Zarr store, COG) on a generated
   ``--scene``² RGB GeoTIFF with the first preset at the default precision, tiles/s and the ratio
   to the model-only tiles/s of the same preset and precision (goal >= 0.9), peak GPU memory;
4. IoU of bfloat16 against float32 masks on the demo scene with the demo weights (goal >= 0.99);
5. largest logit difference bfloat16 vs float32 on the first preset with random weights.

``--device cpu`` is a smoke mode: the tiny test preset, small sizes, the same code paths, in
seconds (``tests/geo/test_gpu_throughput_smoke.py`` runs it).

Usage:
    python bench/gpu_throughput.py                      # on the GPU: the full check
    python bench/gpu_throughput.py --device cpu         # smoke mode
    python bench/gpu_throughput.py --json out.json      # also write the figures
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

SMOKE = dict(presets=["sam2unext-test"], matmul=256, scene=512, batch=2, iters=2, demo_size=512)
FULL = dict(
    presets=["sam2unext-large", "sam2unext-tiny"], matmul=8192, scene=16384, batch=None, iters=10, demo_size=None
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device: torch.device, n: int, dtype=torch.bfloat16, repeat: int = 5) -> float:
    """Best TFLOP/s of an ``n x n`` matmul (2 n³ FLOPs) in ``dtype``."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - t0) / 4)
    return 2 * n**3 / best / 1e12


def tile_flops(model, device: torch.device) -> float:
    """FLOPs of one tile's forward pass (matmuls, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, model.input_size, model.input_size, device=device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return float(counter.get_total_flops())


def model_only(model, device: torch.device, dtype: torch.dtype, batch: int, iters: int) -> float:
    """Tiles/s of forward passes (``predict`` kept on the device) on an uploaded batch."""
    x = torch.rand(batch, 3, model.input_size, model.input_size, device=device)
    model.predict(x, dtype=dtype, to_cpu=False)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        model.predict(x, dtype=dtype, to_cpu=False)
    sync(device)
    return iters * batch / (time.perf_counter() - t0)


def end_to_end(model, scene: Path, out: Path, batch: int | None) -> tuple[float, int]:
    """(tiles/s, tiles computed) of ``predict_raster`` on ``scene``."""
    from sam2unext.geo import predict_raster

    t0 = time.perf_counter()
    res = predict_raster(scene, out, model=model, batch_size=batch, vector=False, progress="none", overwrite=True)
    seconds = time.perf_counter() - t0
    return res.tiles_computed / seconds, res.tiles_computed


def demo_iou(device: torch.device, folder: Path, size: int | None) -> float:
    """IoU of bfloat16 against float32 masks (p > 0.5) of the demo weights on the demo scene."""
    import rasterio

    import sam2unext
    from sam2unext.geo import predict_raster
    from sam2unext.geo.demo.demo_run import mask_iou
    from sam2unext.geo.demo.demo_scene import write_demo_scene

    kwargs = {} if size is None else {"size": size}
    scene, _ = write_demo_scene(folder / "demo", overwrite=True, **kwargs)
    masks = []
    for dtype in ("float32", "bfloat16"):
        model = sam2unext.load_model("demo", device=device, dtype=dtype)
        out = folder / f"demo_{dtype}.tif"
        predict_raster(scene, out, model=model, vector=False, progress="none", overwrite=True)
        with rasterio.open(out) as src:
            masks.append(src.read(1) > 127)
    return mask_iou(masks[1], masks[0])


def blend_paths_equal(device: torch.device, folder: Path, size: int | None) -> bool:
    """True when the blend on the model's device gives the host blend's output bit for bit.

    The demo weights in float32 on the demo scene, once through each blend path (on a CPU
    "device" the device path runs on CPU tensors).
    """
    import rasterio

    import sam2unext
    from sam2unext.geo import predict_raster
    from sam2unext.geo.demo.demo_scene import write_demo_scene
    from sam2unext.geo.running import chunk_task

    kwargs = {} if size is None else {"size": size}
    scene, _ = write_demo_scene(folder / "blend", overwrite=True, **kwargs)
    model = sam2unext.load_model("demo", device=device, dtype="float32")
    real = chunk_task.blend_on_device
    outputs = []
    try:
        for on_device in (True, False):
            chunk_task.blend_on_device = lambda m, on=on_device: on
            out = folder / f"blend_{on_device}.tif"
            predict_raster(scene, out, model=model, vector=False, progress="none", overwrite=True, out_dtype="float32")
            with rasterio.open(out) as src:
                outputs.append(src.read(1))
    finally:
        chunk_task.blend_on_device = real
    return bool(np.array_equal(outputs[0].view(np.uint32), outputs[1].view(np.uint32)))


def logit_difference(model, device: torch.device) -> tuple[float, float]:
    """(max |bf16 - fp32| logit, max |fp32 logit|) on one random tile."""
    torch.manual_seed(1)
    x = torch.randn(1, 3, model.input_size, model.input_size, device=device)
    with torch.inference_mode():
        ref = model(x).float()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            low = model(x).float()
    return (low - ref).abs().max().item(), ref.abs().max().item()


def note(text: str) -> None:
    """One progress line on stderr, so a run cut short still shows the figures it reached."""
    print(f"[gpu_throughput] {text}", file=sys.stderr, flush=True)


def run(args) -> dict:
    from geo_pipeline import make_scene

    import sam2unext
    from sam2unext.geo.running.device import auto_batch_size

    device = torch.device(args.device)
    cfg = SMOKE if device.type == "cpu" else FULL
    presets = args.presets or cfg["presets"]
    scene_size = args.scene or cfg["scene"]
    iters = args.iters or cfg["iters"]
    figures: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "load": os.getloadavg()[0],
    }
    t_start = time.perf_counter()
    figures["matmul_tflops_bf16"] = matmul_tflops(device, args.matmul or cfg["matmul"])
    peak = figures["matmul_tflops_bf16"]
    note(f"bf16 matmul {peak:.1f} TFLOP/s")
    rows = []
    for name in presets:
        torch.manual_seed(0)
        model = sam2unext.load_model(preset=name, device=device)
        flops = tile_flops(model, device)
        for dtype in (torch.bfloat16, torch.float32):
            model.inference_dtype = dtype  # the automatic batch is probed at this precision
            model._auto_batch_sizes = {}
            batch = args.batch or cfg["batch"] or auto_batch_size(model, model.input_size)
            tps = model_only(model, device, dtype, batch, iters)
            rows.append(
                dict(
                    preset=name,
                    dtype=str(dtype).removeprefix("torch."),
                    batch=batch,
                    tiles_s=tps,
                    tflop_tile=flops / 1e12,
                    tflops=tps * flops / 1e12,
                    pct_peak=100 * tps * flops / 1e12 / peak,
                )
            )
            note(f"model only {rows[-1]}")
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    figures["model_only"] = rows
    torch.manual_seed(0)
    model = sam2unext.load_model(preset=presets[0], device=device)
    default_dtype = str(model.inference_dtype).removeprefix("torch.")
    with tempfile.TemporaryDirectory(prefix="gpu-throughput-", dir=args.tmp) as tmp:
        scene = make_scene(Path(tmp) / "scene.tif", scene_size)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        tps, tiles = end_to_end(model, scene, Path(tmp) / "out.tif", args.batch or cfg["batch"])
        ref = next(r["tiles_s"] for r in rows if r["preset"] == presets[0] and r["dtype"] == default_dtype)
        figures["end_to_end"] = dict(
            preset=presets[0],
            dtype=default_dtype,
            scene=scene_size,
            tiles=tiles,
            tiles_s=tps,
            ratio=tps / ref,
            peak_gpu_gib=torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        )
        note(f"end to end {figures['end_to_end']}")
        figures["logit_diff"] = dict(
            zip(("max_abs", "max_abs_fp32_logit"), logit_difference(model, device)), preset=presets[0]
        )
        del model
        figures["demo_iou_bf16_fp32"] = demo_iou(device, Path(tmp), args.demo_size or cfg["demo_size"])
        figures["blend_on_device_equal"] = blend_paths_equal(device, Path(tmp), args.demo_size or cfg["demo_size"])
    figures["seconds"] = time.perf_counter() - t_start
    return figures


def table(f: dict) -> str:
    """The figures as a Markdown table."""
    lines = [
        f"device: {f['device']}, torch {f['torch']}, load average {f['load']:.1f}, check took {f['seconds']:.0f} s",
        "",
        "| figure | value |",
        "|---|---|",
        f"| bf16 matmul, measured peak | {f['matmul_tflops_bf16']:.1f} TFLOP/s |",
    ]
    for r in f["model_only"]:
        lines.append(
            f"| model only, {r['preset']} {r['dtype']} (batch {r['batch']}, {1000 * r['tflop_tile']:.4g} "
            f"GFLOP/tile) | {r['tiles_s']:.2f} tiles/s, {r['tflops']:.3g} TFLOP/s, "
            f"{r['pct_peak']:.3g} % of peak |"
        )
    e = f["end_to_end"]
    lines.append(
        f"| end to end, {e['preset']} {e['dtype']}, {e['scene']}² scene ({e['tiles']} tiles) | "
        f"{e['tiles_s']:.2f} tiles/s |"
    )
    lines.append(f"| end to end / model only (goal >= 0.9) | {e['ratio']:.2f} |")
    peak = "n/a (cpu)" if e["peak_gpu_gib"] is None else f"{e['peak_gpu_gib']:.1f} GiB"
    lines.append(f"| peak GPU memory (end to end) | {peak} |")
    lines.append(f"| IoU bf16 vs fp32, demo scene, demo weights (goal >= 0.99) | {f['demo_iou_bf16_fp32']:.4f} |")
    lines.append(
        f"| blend on the device equals the host blend, bit for bit (demo, fp32) | {f['blend_on_device_equal']} |"
    )
    d = f["logit_diff"]
    lines.append(
        f"| max logit diff bf16 vs fp32, {d['preset']} random weights | {d['max_abs']:.3g} "
        f"(max logit {d['max_abs_fp32_logit']:.3g}) |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--presets", nargs="+", help="default: large and tiny (cpu: sam2unext-test)")
    parser.add_argument("--scene", type=int, help="end-to-end scene side, a multiple of 512 (default 16384; cpu 512)")
    parser.add_argument("--matmul", type=int, help="matmul side (default 8192; cpu 256)")
    parser.add_argument("--batch", type=int, help="tiles per forward pass (default: automatic; cpu 2)")
    parser.add_argument("--iters", type=int, help="timed batches per model-only figure (default 10; cpu 2)")
    parser.add_argument("--demo-size", type=int, help="demo scene side (default: the demo's; cpu 512)")
    parser.add_argument("--tmp", default=None, help="folder for the generated scenes")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    figures = run(args)
    print(table(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
