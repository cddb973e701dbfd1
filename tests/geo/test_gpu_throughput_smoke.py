"""The device check script's ``--device cpu`` smoke mode: every section runs and the table is complete."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu_throughput.py"


@pytest.mark.slow
def test_gpu_throughput_smoke_on_cpu(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_throughput", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "figures.json"
    bench.main(
        [
            "--device",
            "cpu",
            "--scene",
            "512",
            "--matmul",
            "64",
            "--iters",
            "1",
            "--batch",
            "1",
            "--demo-size",
            "256",
            "--tmp",
            str(tmp_path),
            "--json",
            str(out),
        ]
    )
    table = capsys.readouterr().out
    for words in (
        "bf16 matmul",
        "model only, sam2unext-test bfloat16",
        "model only, sam2unext-test float32",
        "end to end",
        "end to end / model only",
        "peak GPU memory",
        "IoU bf16 vs fp32",
        "max logit diff",
        "blend on the device equals the host blend",
    ):
        assert words in table
    f = json.loads(out.read_text())
    assert f["matmul_tflops_bf16"] > 0
    assert all(r["tiles_s"] > 0 and r["tflop_tile"] > 0 for r in f["model_only"])
    assert f["end_to_end"]["tiles"] > 0 and f["end_to_end"]["ratio"] > 0
    assert 0.9 <= f["demo_iou_bf16_fp32"] <= 1.0
    assert 0 <= f["logit_diff"]["max_abs"] < 1
    assert f["blend_on_device_equal"] is True
