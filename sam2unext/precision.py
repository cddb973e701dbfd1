"""Compute precision: which dtype a model runs in on a device, and why (torch only, no backbones)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from sam2unext.errors import UserError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

#: CPU features with bfloat16 matrix instructions. With them bfloat16 autocast is faster than
#: float32 (2 threads, Intel Xeon with AMX: sam2unext-large 5.6-7.8 s vs 13.8-18.6 s per tile,
#: sam2unext-tiny 1.4-1.5 s vs 3.8-4.0 s); without them oneDNN emulates it and it is slower
#: (AMD EPYC, AVX2: sam2unext-tiny 140 s vs 18 s). bench/cpu_precision.py.
NATIVE_BF16_FEATURES = ("amx_bf16", "avx512_bf16")

#: Whether ``auto`` takes bfloat16 autocast on a CPU with native bfloat16. Off: the masks change
#: there more than a default may change them (IoU >= 0.999 against float32): per tile 0.957-0.974
#: for sam2unext-large with variance-preserving random weights (Xeon, AMX), down to 0.975 for the
#: demo weights on a demo tile with few objects (0.9996 over the whole demo scene). Keeping the
#: glue and decoder in float32 under autocast recovered only part of it (large, 256 px tiles:
#: 0.981 -> 0.993); the rest comes from the encoders, the bulk of the work. bench/cpu_precision.py.
CPU_AUTO_BFLOAT16 = False


def _cpu_flags() -> set[str]:
    """Instruction-set features of this CPU: torch's cpuinfo when it has it, else /proc/cpuinfo (Linux)."""
    get = getattr(torch.cpu, "get_capabilities", None)
    if get is not None:
        return {name for name, value in get().items() if value is True}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_native_bf16() -> str | None:
    """The CPU feature that gives torch native bfloat16 arithmetic (``amx_bf16``, ``avx512_bf16``), or None.

    None also when torch was built without oneDNN (its bfloat16 CPU kernels).
    """
    if not torch.backends.mkldnn.is_available():
        return None
    flags = _cpu_flags()
    return next((name for name in NATIVE_BF16_FEATURES if name in flags), None)


@dataclass(frozen=True)
class Precision:
    """A resolved compute precision and why it was chosen (shown by the command, ``info`` and the start event)."""

    dtype: torch.dtype
    reason: str

    @property
    def name(self) -> str:
        """``float32``, ``bfloat16`` or ``float16``."""
        return str(self.dtype).removeprefix("torch.")

    def describe(self) -> str:
        """One line: ``bfloat16 autocast (auto: ...)``."""
        kind = "" if self.dtype == torch.float32 else " autocast"
        return f"{self.name}{kind} ({self.reason})"


def choose_precision(dtype: str | torch.dtype, device: torch.device) -> Precision:
    """The compute precision used on ``device`` for ``dtype``, with the reason.

    ``auto`` is ``bfloat16`` on CUDA and ``float32`` on a CPU; the reason says whether the CPU
    has native bfloat16 (AVX512-BF16 or AMX, :func:`cpu_native_bf16`), where ``bfloat16`` is
    faster but changes the masks (:data:`CPU_AUTO_BFLOAT16` makes ``auto`` take it there).
    ``float16`` is only used on CUDA; on CPU it falls back to ``float32`` with a warning (CPU
    half-precision kernels are slow and lossy; use ``bfloat16`` there). ``float32`` is always
    available, for bit-exact results.

    Raises:
        UserError: unknown dtype name.
    """
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise UserError(f"unsupported dtype {dtype}; use float32, bfloat16 or float16")
        resolved = dtype
    elif dtype == "auto":
        if device.type == "cuda":
            return Precision(torch.bfloat16, "auto: bfloat16 on CUDA")
        if device.type != "cpu":
            return Precision(torch.float32, f"auto: float32 on {device.type}")
        feature = cpu_native_bf16()
        if feature is None:
            return Precision(
                torch.float32, "auto: this CPU has neither AVX512-BF16 nor AMX, so bfloat16 would be slower"
            )
        if CPU_AUTO_BFLOAT16:
            return Precision(torch.bfloat16, f"auto: this CPU has native bfloat16, {feature}")
        return Precision(
            torch.float32,
            f"auto: this CPU has native bfloat16, {feature}, where bfloat16 runs faster but changes the masks",
        )
    else:
        if dtype not in DTYPES:
            raise UserError(f"unknown dtype {dtype!r}; use auto or one of: {', '.join(DTYPES)}")
        resolved = DTYPES[dtype]
    if resolved == torch.float16 and device.type != "cuda":
        warnings.warn("float16 needs a CUDA device; running in float32 on " + device.type, stacklevel=3)
        return Precision(torch.float32, "float16 asked for, but it needs a CUDA device")
    return Precision(resolved, "asked for")


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """The compute dtype used on ``device`` for ``dtype`` (see :func:`choose_precision`).

    Raises:
        UserError: unknown dtype name.
    """
    return choose_precision(dtype, device).dtype


def precision_facts(model: object) -> dict[str, str]:
    """``precision`` and ``precision_reason`` of a loaded model (empty for a stand-in without them)."""
    dtype = getattr(model, "inference_dtype", None)
    if not isinstance(dtype, torch.dtype):
        return {}
    reason = getattr(model, "precision_reason", None) or "set on the model"
    return {"precision": str(dtype).removeprefix("torch."), "precision_reason": reason}
