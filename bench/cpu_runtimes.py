"""CPU runtimes for one tile: torch eager float32 and bfloat16, ONNX Runtime, OpenVINO (not a test).

For one preset with random weights (``bench/model_speed.build_random``, seeded) and one
structured tile (a demo-scene crop: shapes and gradients), in one process at ``--threads``
threads:

* torch eager float32 and torch bfloat16 autocast (what ``--precision float32|bfloat16`` run);
* ONNX Runtime, CPU execution provider, all graph optimizations, on the model exported with
  ``torch.onnx.export`` (weights as external data: the large preset is over 2 GB);
* OpenVINO, CPU plugin, latency hint, the same ONNX file, at f32 and, on a CPU with native
  bfloat16, at bf16 (OpenVINO's own default there).

Every runtime is set up first, then timed in ``--repeat`` interleaved rounds after a warm-up
round (load drift on a shared machine hits all alike). For each: seconds per tile (best
round, and every round), the one-off export + session / compile seconds, the largest
|logit difference| against torch float32 and the mask IoU (logit > 0) against it. The load
average is printed with every figure (shared machine).
``--skip-bf16`` leaves out torch bfloat16 (on a CPU without native bfloat16 it is emulated and
several times slower than float32).

Usage:
    python bench/cpu_runtimes.py --preset sam2unext-large --threads 2 --repeat 2
    python bench/cpu_runtimes.py --preset sam2unext-tiny --threads 2 --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_speed import build_random  # noqa: E402

from sam2unext.models import cpu_native_bf16  # noqa: E402
from sam2unext.transforms import normalize  # noqa: E402


def load() -> str:
    """The 1/5/15-minute load average, as one string."""
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def structured_tile(size: int, seed: int = 100) -> torch.Tensor:
    """One normalized RGB tile ``[1,3,size,size]`` cut from a demo scene."""
    from sam2unext.geo.demo.demo_scene import generate_scene

    image = generate_scene(max(size, 256), seed=seed).image[:, :size, :size]
    return normalize(torch.from_numpy(np.ascontiguousarray(image))[None].float() / 255)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def export_onnx(model: torch.nn.Module, x: torch.Tensor, path: Path) -> str:
    """Export ``model`` to ONNX (weights as external data); returns the exporter that worked."""
    try:
        torch.onnx.export(
            model, (x,), str(path), input_names=["image"], output_names=["logits"], dynamo=True, external_data=True
        )
        return "dynamo"
    except Exception as exc:  # noqa: BLE001 (report and try the TorchScript exporter)
        print(f"  dynamo export failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); TorchScript exporter")
        torch.onnx.export(
            model, (x,), str(path), input_names=["image"], output_names=["logits"], opset_version=17, dynamo=False
        )
        return "torchscript"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sam2unext-large")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-bf16", action="store_true", help="leave out torch bfloat16 autocast")
    parser.add_argument("--workdir", type=Path, default=None, help="where the ONNX file goes (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    native = cpu_native_bf16()
    caps = getattr(torch.cpu, "get_capabilities", dict)()
    print(
        f"{args.preset}, {caps.get('cpu_name', '?')}, {args.threads} threads, native bfloat16: {native}, "
        f"torch {torch.__version__}; load {load()}",
        flush=True,
    )
    torch.manual_seed(0)
    model = build_random(args.preset, torch.device("cpu"))
    x = structured_tile(model.input_size)
    feed = x.numpy()
    runners: dict[str, tuple] = {}  # name -> (call, setup seconds)

    def torch_run(dtype: torch.dtype):
        def run() -> np.ndarray:
            with torch.inference_mode(), model._autocast(dtype, torch.device("cpu")):
                return model(x).float().numpy()

        return run

    runners["torch eager float32"] = (torch_run(torch.float32), 0.0)
    if not args.skip_bf16:
        runners["torch eager bfloat16 autocast"] = (torch_run(torch.bfloat16), 0.0)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        onnx_path = Path(tmp) / f"{args.preset}.onnx"
        start = time.perf_counter()
        with torch.inference_mode():
            exporter = export_onnx(model, x, onnx_path)
        export_s = time.perf_counter() - start
        gc.collect()  # the exporter's graphs: the large preset's are several GB
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())
        print(f"  ONNX export ({exporter}): {export_s:.1f} s, {size / 2**30:.2f} GiB; load {load()}", flush=True)

        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        start = time.perf_counter()
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        runners[f"onnxruntime {ort.__version__}"] = (
            lambda: session.run(None, {name: feed})[0],
            export_s + time.perf_counter() - start,
        )
        print(f"  onnxruntime session: {time.perf_counter() - start:.1f} s; load {load()}", flush=True)

        import openvino as ov

        core = ov.Core()
        for precision in ["f32"] + (["bf16"] if native else []):
            start = time.perf_counter()
            compiled = core.compile_model(
                core.read_model(str(onnx_path)),
                "CPU",
                {
                    "INFERENCE_NUM_THREADS": args.threads,
                    "PERFORMANCE_HINT": "LATENCY",
                    "INFERENCE_PRECISION_HINT": precision,
                },
            )
            request = compiled.create_infer_request()
            runners[f"openvino {ov.__version__.split('-')[0]} {precision}"] = (
                lambda r=request: r.infer({0: feed})[0].copy(),
                export_s + time.perf_counter() - start,
            )
            print(f"  openvino {precision} compile: {time.perf_counter() - start:.1f} s; load {load()}", flush=True)
        # interleaved rounds (the first is the warm-up), so that load drift hits every runtime alike
        times: dict[str, list[float]] = {k: [] for k in runners}
        outs: dict[str, np.ndarray] = {}
        for round_ in range(args.repeat + 1):
            for key, (call, _) in runners.items():
                begin = time.perf_counter()
                outs[key] = np.asarray(call(), dtype=np.float32)
                if round_:
                    times[key].append(time.perf_counter() - begin)
                print(f"  round {round_} {key}: {time.perf_counter() - begin:.2f} s; load {load()}", flush=True)
    ref = outs["torch eager float32"]
    rows = [
        {
            "runtime": key,
            "s_per_tile": min(times[key]),
            "runs": [round(t, 2) for t in times[key]],
            "setup_s": setup,
            "max_abs_logit_diff": float(np.abs(outs[key] - ref).max()),
            "iou_vs_float32": iou(outs[key] > 0, ref > 0),
            "load": load(),
        }
        for key, (_, setup) in runners.items()
    ]
    base = rows[0]["s_per_tile"]
    print(
        "\n| runtime | s/tile (best) | runs | x torch fp32 | setup s | max abs logit diff | mask IoU vs fp32 |\n"
        "|---|---|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['runtime']} | {r['s_per_tile']:.2f} | {r['runs']} | {base / r['s_per_tile']:.2f} | "
            f"{r['setup_s']:.0f} | {r['max_abs_logit_diff']:.3g} | {r['iou_vs_float32']:.5f} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "preset": args.preset,
                    "threads": args.threads,
                    "native_bf16": native,
                    "rows": rows,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
