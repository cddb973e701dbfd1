"""Time one training step (forward, structure loss, backward, AdamW step) per preset.

Random weights (no downloads), random batch at each preset's input size, the family's recipe
batch size unless --batch-size is given. Prints one line per preset and a JSON summary.

    python bench/train_step.py sam2unext-test sam2unext-tiny --steps 3
    python bench/train_step.py sam2unext-large --device cuda --amp --grad-checkpointing
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from sam2unext.loss import deep_supervision_loss
from sam2unext.train import (
    TrainConfig,
    enable_grad_checkpointing,
    make_optimizer,
    make_training_model,
    resolve_config,
)


def time_steps(preset: str, *, steps: int, batch_size: int | None, device: str, amp: bool, grad_ckpt: bool) -> dict:
    """Build ``preset`` and time ``steps`` training steps (the first one is reported apart)."""
    dev = torch.device(device)
    model = make_training_model(preset, seed=0).to(dev).train()
    if grad_ckpt:
        enable_grad_checkpointing(model)
    config = resolve_config(TrainConfig(batch_size=batch_size), preset)
    optimizer = make_optimizer(model, config)
    size = model.input_size
    x = torch.randn(config.batch_size, 3, size, size, device=dev)
    y = (torch.rand(config.batch_size, 1, size, size, device=dev) > 0.5).float()
    use_amp = amp and dev.type == "cuda"
    times = []
    for _ in range(steps):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
            out = model(x)
        deep_supervision_loss(out, y).backward()
        optimizer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "preset": preset,
        "input_size": size,
        "batch_size": config.batch_size,
        "device": str(dev),
        "amp": use_amp,
        "grad_checkpointing": grad_ckpt,
        "params_m": round(total / 1e6, 2),
        "trainable_m": round(trainable / 1e6, 2),
        "first_step_s": round(times[0], 3),
        "step_s": round(min(times[1:]) if len(times) > 1 else times[0], 3),
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if dev.type == "cuda" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--steps", type=int, default=3, help="steps per preset (best of steps 2..N reported)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--grad-checkpointing", action="store_true")
    args = parser.parse_args()
    machine = platform.processor() or platform.machine()
    print(f"# {machine}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    results = []
    for preset in args.presets:
        r = time_steps(
            preset,
            steps=args.steps,
            batch_size=args.batch_size,
            device=args.device,
            amp=args.amp,
            grad_ckpt=args.grad_checkpointing,
        )
        results.append(r)
        print(
            f"{preset:18s} {r['input_size']:5d}px batch {r['batch_size']:2d}  step {r['step_s']:8.3f} s "
            f"(first {r['first_step_s']:.3f} s)  {r['params_m']} M params, {r['trainable_m']} M trainable",
            flush=True,
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
