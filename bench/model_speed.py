"""Forward time, parameters and FLOPs per tile for each preset.

Times one tile (batch 1) at the preset's input size on the current device: median of
``--reps`` runs after ``--warmup`` runs, under ``torch.inference_mode``. FLOPs come from
``torch.utils.flop_counter.FlopCounterMode`` on the meta device (FLOPs = 2 x MAC), so they
cost nothing even for the large presets. ``--compare`` also times the public code's structure
(head computed twice, contiguous decoder weights) on the same weights and prints our ratio;
the two variants are interleaved so that machine-load drift hits both alike.

Examples::

    python bench/model_speed.py --presets sam2unext-test sam2unext-tiny sam2unext-large \
        --reps 3 --compare sam2unext-large
    python bench/model_speed.py --flops-only          # params/FLOPs of every preset
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from functools import partial

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from sam2unext.api import build_model, resolve_device
from sam2unext.encoders import hiera_stage_features
from sam2unext.models import SAM2UNeXT, SegmentationModel
from sam2unext.presets import PRESETS
from sam2unext.transforms import low_res_view


def build_random(name: str, device: torch.device) -> SegmentationModel:
    """Build on the meta device, then materialise with quick, well-scaled random values."""
    with torch.device("meta"):
        model = build_model(name)
    model = model.to_empty(device=device).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.ndim == 1 and pname.endswith("weight"):
                p.fill_(1.0)
            elif p.ndim >= 2 and "pos_embed" not in pname and "token" not in pname:
                # variance-preserving: activations keep their scale through the depth
                # (tiny fixed-std weights drive them into denormals, which are slow on CPU)
                p.normal_(0.0, p[0].numel() ** -0.5)
            else:
                p.normal_(0.0, 0.02)
        for bname, b in model.named_buffers():
            if bname.endswith("running_var"):
                b.fill_(1.0)
            elif b.is_floating_point():
                b.zero_()
    return model


def upstream_structure_forward(model: SAM2UNeXT, image: torch.Tensor) -> torch.Tensor:
    """The public SAM2-UNeXT forward on our modules: the head is evaluated twice."""
    stages = hiera_stage_features(model.sam, image)
    dino_map = model.dino(low_res_view(image, model.low_res_size))[-1]
    return upstream_structure_decode(model, model.glue(stages, dino_map))


def upstream_structure_decode(model: SAM2UNeXT, fused: list[torch.Tensor]) -> torch.Tensor:
    """The public decoder on glued features: head evaluated twice."""
    x1, x2, x3, x4 = fused
    x = model.up4(x4)
    x = model.up3(x, x3)
    x = model.up2(x, x2)
    x = model.up1(x, x1)
    out = model.head(x)  # noqa: F841 - discarded, as upstream does
    return F.interpolate(model.head(x), scale_factor=2, mode="bilinear")


def count_flops(name: str, upstream: bool = False) -> int:
    """FLOPs of one forward pass at the preset's sizes, counted on the meta device."""
    config = PRESETS[name]
    with torch.device("meta"):
        model = build_model(name).eval()
    image = torch.empty(1, 3, config.input_size, config.input_size, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        if upstream:
            upstream_structure_forward(model, image)
        else:
            model(image)
    return counter.get_total_flops()


def count_params(name: str) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    with torch.device("meta"):
        model = build_model(name)
    return (sum(p.numel() for p in model.parameters()), sum(p.numel() for p in model.parameters() if p.requires_grad))


def time_forward(fn, image: torch.Tensor, reps: int, warmup: int) -> float:
    """Median seconds of ``fn(image)`` after warm-up."""
    times = []
    with torch.inference_mode():
        for i in range(warmup + reps):
            if image.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn(image)
            if image.device.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--presets",
        nargs="+",
        default=["sam2unext-test", "sam2unext-tiny"],
        help="presets to time (use 'all' for every preset)",
    )
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per preset")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs")
    parser.add_argument(
        "--compare", nargs="*", default=[], help="SAM2-UNeXT presets also timed with the public structure"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument(
        "--contiguous",
        action="store_true",
        help="time our variant with contiguous decoder weights (default: channels_last, as the models are built)",
    )
    parser.add_argument("--flops-only", action="store_true", help="only parameters and FLOPs (all presets, no timing)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    names = list(PRESETS) if args.flops_only or args.presets == ["all"] else args.presets
    name_desc = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"# device: {device} ({name_desc}), threads {torch.get_num_threads()}, dtype {args.dtype}, "
        f"torch {torch.__version__}, reps {args.reps}, warm-up {args.warmup}"
    )
    print("| preset | input | low-res | params (M) | trainable (M) | GFLOP/tile | s/tile (median) |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        config = PRESETS[name]
        total, trainable = count_params(name)
        gflop = count_flops(name) / 1e9
        seconds = "-"
        if not args.flops_only:
            model = build_random(name, device)
            image = torch.randn(1, 3, config.input_size, config.input_size, device=device)
            model.set_channels_last(not args.contiguous)
            ctx = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
            with ctx:
                seconds = f"{time_forward(model, image, args.reps, args.warmup):.3f}"
            del model
        print(
            f"| {name} | {config.input_size} | {config.low_res_size or '-'} | {total / 1e6:.1f} | "
            f"{trainable / 1e6:.2f} | {gflop:.1f} | {seconds} |",
            flush=True,
        )
    for name in args.compare:
        config = PRESETS[name]
        model = build_random(name, device).set_channels_last(True)
        public_model = copy.deepcopy(model).set_channels_last(False)  # same weights, contiguous
        image = torch.randn(1, 3, config.input_size, config.input_size, device=device)
        ctx = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
        with ctx:
            # interleave the two variants so machine-load drift hits both alike
            public_fn = partial(upstream_structure_forward, public_model)
            for _ in range(args.warmup):
                time_forward(model, image, 1, 0)
                time_forward(public_fn, image, 1, 0)
            ours, public = [], []
            for _ in range(max(1, args.reps)):
                ours.append(time_forward(model, image, 1, 0))
                public.append(time_forward(public_fn, image, 1, 0))
            # the only code that differs: glue + decoder, on the same encoder features
            with torch.inference_mode():
                stages = hiera_stage_features(model.sam, image)
                dino_map = model.dino(low_res_view(image, model.low_res_size))[-1]
            glued = partial(model.glue, stages, dino_map)
            public_glued = partial(public_model.glue, stages, dino_map)
            ours_dec = time_forward(lambda _, m=model, g=glued: m.decode(*g()), image, max(3, args.reps), args.warmup)
            public_dec = time_forward(
                lambda _, m=public_model, g=public_glued: upstream_structure_decode(m, g()),
                image,
                max(3, args.reps),
                args.warmup,
            )
        o, p = statistics.median(ours), statistics.median(public)
        print(
            f"\n{name}: whole forward: ours {o:.3f} s/tile, public structure (head twice, "
            f"contiguous decoder) {p:.3f} s/tile, ratio ours/public {o / p:.3f} "
            f"(runs: ours {[round(t, 2) for t in ours]}, public {[round(t, 2) for t in public]})",
            flush=True,
        )
        print(
            f"{name}: glue+decoder only: ours {ours_dec:.3f} s, public {public_dec:.3f} s, "
            f"ratio {ours_dec / public_dec:.3f}; GFLOP ours {count_flops(name) / 1e9:.1f} vs "
            f"public {count_flops(name, upstream=True) / 1e9:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
