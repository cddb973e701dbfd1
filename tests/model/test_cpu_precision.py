"""``--precision auto`` on CPUs: float32, with the reason saying whether the CPU has native bfloat16.

The CPU probe (``cpu_native_bf16``) and the switch ``CPU_AUTO_BFLOAT16`` are monkeypatched both
ways, so these tests pass on CPUs with and without AVX512-BF16/AMX.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sam2unext import load_model
from sam2unext import precision as models
from sam2unext.precision import Precision, choose_precision, precision_facts, resolve_dtype

CPU = torch.device("cpu")


def test_native_bfloat16_is_read_from_the_cpu_features(monkeypatch):
    monkeypatch.setattr(models, "_cpu_flags", lambda: {"avx2", "avx512_f", "avx512_bf16"})
    assert models.cpu_native_bf16() == "avx512_bf16"
    monkeypatch.setattr(models, "_cpu_flags", lambda: {"avx512_bf16", "amx_bf16", "amx_tile"})
    assert models.cpu_native_bf16() == "amx_bf16"
    monkeypatch.setattr(models, "_cpu_flags", lambda: {"avx2", "avx512_f", "avx512_vnni"})
    assert models.cpu_native_bf16() is None  # AVX-512 alone: oneDNN emulates bfloat16
    monkeypatch.setattr(models, "_cpu_flags", lambda: {"avx512_bf16"})
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert models.cpu_native_bf16() is None  # no oneDNN, no fast bfloat16 kernels


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="reads Linux's /proc/cpuinfo")
def test_cpu_flags_agree_with_proc_cpuinfo(monkeypatch):
    line = next(s for s in Path("/proc/cpuinfo").read_text().splitlines() if s.startswith("flags"))
    kernel = set(line.partition(":")[2].split())
    flags = models._cpu_flags()
    for name in ("avx2", "avx512_bf16", "amx_bf16"):
        assert (name in flags) == (name in kernel), name
    monkeypatch.delattr(torch.cpu, "get_capabilities")  # an older torch: /proc/cpuinfo is read instead
    assert models._cpu_flags() == kernel


def test_auto_is_float32_on_every_cpu_and_says_whether_bfloat16_would_be_faster(monkeypatch):
    monkeypatch.setattr(models, "cpu_native_bf16", lambda: None)
    choice = choose_precision("auto", CPU)
    assert choice.dtype == torch.float32 and "neither AVX512-BF16 nor AMX" in choice.reason
    assert choice.describe() == f"float32 ({choice.reason})"
    monkeypatch.setattr(models, "cpu_native_bf16", lambda: "amx_bf16")
    choice = choose_precision("auto", CPU)
    assert choice == Precision(
        torch.float32, "auto: this CPU has native bfloat16, amx_bf16, where bfloat16 runs faster but changes the masks"
    )
    assert choose_precision("float32", CPU) == Precision(torch.float32, "asked for")  # bit-exact on request
    assert choose_precision("bfloat16", CPU) == Precision(torch.bfloat16, "asked for")
    assert choose_precision("auto", torch.device("cuda")).dtype == torch.bfloat16
    assert resolve_dtype(torch.float32, CPU) == torch.float32


def test_auto_takes_bfloat16_on_a_native_cpu_once_enabled(monkeypatch):
    """``CPU_AUTO_BFLOAT16`` (off: the masks change, see its comment) makes ``auto`` take bfloat16
    where the CPU has it, and only there."""
    monkeypatch.setattr(models, "CPU_AUTO_BFLOAT16", True)
    monkeypatch.setattr(models, "cpu_native_bf16", lambda: "avx512_bf16")
    choice = choose_precision("auto", CPU)
    assert choice == Precision(torch.bfloat16, "auto: this CPU has native bfloat16, avx512_bf16")
    assert choice.describe() == "bfloat16 autocast (auto: this CPU has native bfloat16, avx512_bf16)"
    assert choose_precision("float32", CPU).dtype == torch.float32
    monkeypatch.setattr(models, "cpu_native_bf16", lambda: None)
    assert choose_precision("auto", CPU).dtype == torch.float32


@pytest.mark.parametrize("enabled", [True, False])
def test_load_model_and_predict_resolve_auto_the_same_way(monkeypatch, enabled):
    monkeypatch.setattr(models, "CPU_AUTO_BFLOAT16", enabled)
    image = torch.rand(1, 3, 256, 256)
    for feature in ("amx_bf16", None):
        monkeypatch.setattr(models, "cpu_native_bf16", lambda feature=feature: feature)
        expected = choose_precision("auto", CPU)
        assert expected.dtype == (torch.bfloat16 if enabled and feature else torch.float32)
        model = load_model("demo", device="cpu")
        assert model.inference_dtype == expected.dtype
        assert precision_facts(model) == {"precision": expected.name, "precision_reason": expected.reason}
        assert load_model("demo", device="cpu", dtype="float32").inference_dtype == torch.float32
        torch.testing.assert_close(
            model.predict(image, dtype="auto"), model.predict(image, dtype=expected.dtype), rtol=0, atol=0
        )
    assert precision_facts(object()) == {}  # a stand-in model says nothing
