"""CPU inference options for one forward pass: float32 vs bfloat16 autocast vs ``torch.compile`` (not a test).

For a preset with random weights (seeded), one thread, a batch of random-looking tiles made from
the demo scene pattern: seconds per forward (best of ``--repeat`` after a warm-up; the compile
time is shown apart), the largest absolute logit difference against float32 and the IoU of the
masks (probability > 0.5) against float32. Prints the load average, since the machine is shared.

Usage:
    python bench/cpu_precision.py [--preset sam2unext-tiny] [--batch 1] [--repeat 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch


def tiles_for(size: int, batch: int) -> torch.Tensor:
    """Smooth structured uint8 tiles (not noise), so masks have real shapes."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = []
    for k in range(batch):
        base = 127 + 100 * np.sin((yy + 37 * k) / 41.0) * np.cos(xx / 53.0)
        out.append(np.stack([base, 255 - base, (base + 60) % 256]).clip(0, 255).astype(np.uint8))
    return torch.from_numpy(np.stack(out))


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """IoU of two boolean masks (1.0 when both are empty)."""
    union = (a | b).sum().item()
    return 1.0 if union == 0 else (a & b).sum().item() / union


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sam2unext-tiny")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-compile", action="store_true")
    args = parser.parse_args(argv)
    from sam2unext import build_model

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = build_model(args.preset).eval()
    x = tiles_for(model.input_size, args.batch)
    print(
        f"preset {args.preset} batch {args.batch} threads {args.threads} torch {torch.__version__} "
        f"load {os.getloadavg()}"
    )

    def timed(fn) -> tuple[float, torch.Tensor]:
        out = fn()
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t0)
        return best, out

    def logits(dtype):
        from sam2unext.transforms import normalize

        xs = normalize(x.float() / 255)
        with torch.inference_mode(), model._autocast(dtype, torch.device("cpu")):
            return model(xs).float()

    rows = []
    sec32, ref = timed(lambda: logits(torch.float32))
    rows.append(("float32", sec32, 0.0, ref))
    sec16, out16 = timed(lambda: logits(torch.bfloat16))
    rows.append(("bfloat16 autocast", sec16, 0.0, out16))
    if not args.skip_compile:
        eager = model.forward
        model.forward = torch.compile(eager, dynamic=False)
        t0 = time.perf_counter()
        logits(torch.float32)
        compile_s = time.perf_counter() - t0
        secc, outc = timed(lambda: logits(torch.float32))
        rows.append(("float32 + compile", secc, compile_s, outc))
        model.forward = eager
    mask = ref > 0
    print(f"{'variant':20s} {'s/forward':>10s} {'x fp32':>7s} {'compile s':>9s} {'max |dlogit|':>12s} {'IoU':>8s}")
    for name, sec, comp, out in rows:
        print(
            f"{name:20s} {sec:10.3f} {sec32 / sec:7.2f} {comp:9.1f} {(out - ref).abs().max().item():12.4g} "
            f"{iou(out > 0, mask):8.5f}"
        )
    print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
