"""``--precision``: which precision runs and why, in the summary, the JSON ``start`` event and ``info``."""

from __future__ import annotations

import json

import torch

from sam2unext import precision as models
from sam2unext.precision import choose_precision

from cli_helpers import json_events, run_cli


def test_predict_says_which_precision_ran_and_why(scene, monkeypatch):
    monkeypatch.setattr(models, "cpu_native_bf16", lambda: "amx_bf16")
    reason = choose_precision("auto", torch.device("cpu")).reason
    assert "amx_bf16" in reason
    res = run_cli("predict", scene, "--checkpoint", "demo", "--device", "cpu", "--progress", "json", "--no-vector")
    assert res.returncode == 0, res.stderr
    start = next(e for e in json_events(res.stdout) if e["event"] == "start")
    assert (start["precision"], start["precision_reason"]) == ("float32", reason)

    res = run_cli("predict", scene, "--checkpoint", "demo", "--device", "cpu", "--no-vector", "--overwrite")
    assert res.returncode == 0, res.stderr
    assert f"precision: float32 ({reason})" in res.stdout.splitlines()
    res = run_cli(
        "predict",
        scene,
        "--checkpoint",
        "demo",
        "--device",
        "cpu",
        "--no-vector",
        "--overwrite",
        "--precision",
        "float32",
    )
    assert "precision: float32 (asked for)" in res.stdout.splitlines()


def test_info_measures_the_precision_that_will_run(scene, monkeypatch):
    monkeypatch.setattr(models, "cpu_native_bf16", lambda: None)
    res = run_cli("info", scene, "--checkpoint", "demo", "--device", "cpu", "--json")
    assert res.returncode == 0, res.stderr
    facts = json.loads(res.stdout)
    auto = choose_precision("auto", torch.device("cpu"))
    assert (facts["precision"], facts["precision_reason"]) == (auto.name, auto.reason)
    assert facts["seconds_per_tile"] > 0
    text = run_cli("info", scene, "--checkpoint", "demo", "--device", "cpu", "--precision", "float32")
    assert text.returncode == 0, text.stderr
    assert "  precision:   float32 (asked for)" in text.stdout.splitlines()


def test_unknown_precision_is_refused_naming_the_option(scene):
    res = run_cli("predict", scene, "--checkpoint", "demo", "--precision", "half")
    assert res.returncode == 2 and "--precision" in res.stderr
