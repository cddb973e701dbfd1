"""The one quantizer: exact fixed-point blend sums → float32 probabilities → uint8 values.

Both blends (:mod:`~sam2unext.geo.writing.stitching` on the host, and
:mod:`~sam2unext.geo.writing.device_stitching` on the model's device) and the second step of
a chunk (:mod:`~sam2unext.geo.running.chunk_task`) call these functions on numpy arrays or on
torch tensors; every operation is one IEEE operation with the same rounding in both, so the
host and the device give the same bits.

The blend sums are fixed-point integers held in float64 (see
:class:`~sam2unext.geo.writing.stitching.SceneWeights`): a pixel's sum is
``sum(rint(p * w / W * 2**FIXED_BITS))`` over the tiles covering it, ``W`` the pixel's total
weight. Integers below ``2**53`` add exactly in float64, so the sum does not depend on the
order in which the terms, or partial sums of them, are added.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Fractional bits of the blend sums: a pixel's sum is at most ``2**FIXED_BITS`` plus one per
#: tile, below ``2**53`` where float64 holds every integer exactly.
FIXED_BITS = 52
#: ``2**-FIXED_BITS``: multiplying by it is exact (a power of two).
UNIT = 2.0**-FIXED_BITS


def probability_from_sums(sums: Any, *, in_place: bool = False) -> Any:
    """Fixed-point blend sums (float64 or int64; numpy or torch) → float32 probabilities.

    ``sums * 2**-52`` is exact; the cast to float32 rounds once (to nearest, ties to even).
    ``in_place``: a float64 numpy ``sums`` is scaled in place (no float64 temporary).
    """
    if isinstance(sums, np.ndarray):
        if in_place and sums.dtype == np.float64:
            return np.multiply(sums, UNIT, out=sums).astype(np.float32)
        return np.multiply(sums, UNIT, dtype=np.float64).astype(np.float32)
    import torch

    return torch.mul(sums.to(torch.float64), UNIT).to(torch.float32)


def quantize_probability(prob: Any, *, out: np.ndarray | None = None, scratch: np.ndarray | None = None) -> Any:
    """float32 probabilities in [0, 1] → uint8 0..255: ``rint(p * 255)`` in float32, clipped.

    Rounds half to even (``np.rint``, ``torch.round``). Accepts numpy arrays (optionally into
    ``out``, with a float32 ``scratch`` so that nothing is allocated) and torch tensors (on
    any device; the result stays there).
    """
    if isinstance(prob, np.ndarray) or not hasattr(prob, "to"):
        scaled = np.multiply(np.asarray(prob, dtype=np.float32), np.float32(255.0), out=scratch, dtype=np.float32)
        np.rint(scaled, out=scaled)
        np.clip(scaled, 0, 255, out=scaled)
        if out is None:
            return scaled.astype(np.uint8)
        np.copyto(out, scaled, casting="unsafe")
        return out
    import torch

    scaled = torch.mul(prob.to(torch.float32), torch.tensor(255.0, dtype=torch.float32, device=prob.device))
    return torch.round(scaled).clamp_(0, 255).to(torch.uint8)


def finish_sums(sums: Any, out_dtype: str, *, in_place: bool = False) -> Any:
    """Blend sums → the output's values, in a new array: uint8 (quantized) or float32 probabilities.

    ``in_place``: a float64 numpy ``sums`` may be overwritten (fewer temporaries).
    """
    prob = probability_from_sums(sums, in_place=in_place)
    if out_dtype != "uint8":
        return prob
    return quantize_probability(prob, scratch=prob) if isinstance(prob, np.ndarray) else quantize_probability(prob)
