"""Blending weights for overlapping tiles: pure functions over arrays.

Each tile's prediction is multiplied by a separable raised-cosine window that is 1 in the
middle and falls towards the tile edge over the overlap, but never reaches 0: sample ``i`` of a
ramp of ``n`` samples has weight ``0.5 - 0.5*cos(pi*(i+0.5)/n)`` > 0. Because the tile grid is
a product of row and column offsets, the total weight at a pixel is the product of the 1-D
sums, so the normalizer needs no accumulator of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ramp_window(tile_size: int, overlap_px: int) -> np.ndarray:
    """1-D float64 weights of a tile: raised-cosine ramps of ``overlap_px`` samples at both ends.

    All weights are strictly positive; with no overlap the window is all ones.
    """
    w = np.ones(tile_size, dtype=np.float64)
    n = min(overlap_px, tile_size // 2)
    if n > 0:
        i = np.arange(n, dtype=np.float64)
        ramp = 0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / n)
        w[:n] = ramp
        w[tile_size - n :] = ramp[::-1]
    return w


def tile_weights(tile_size: int, overlap_px: int) -> np.ndarray:
    """2-D separable weights ``[tile_size, tile_size]`` (outer product of :func:`ramp_window`)."""
    w = ramp_window(tile_size, overlap_px)
    return np.outer(w, w)


def axis_weight_sum(length: int, offsets: Sequence[int], window_1d: np.ndarray) -> np.ndarray:
    """Sum of the 1-D windows of all tiles along one axis, for each of ``length`` pixels.

    Pixels of a tile beyond ``length`` (padding) are dropped.
    """
    total = np.zeros(length, dtype=np.float64)
    size = len(window_1d)
    for off in offsets:
        end = min(off + size, length)
        total[off:end] += window_1d[: end - off]
    return total


def weighted_mean(
    weighted_sum: np.ndarray,
    inv_row_weights: np.ndarray,
    inv_col_weights: np.ndarray,
    *,
    out: np.ndarray | None = None,
    scratch: np.ndarray | None = None,
) -> np.ndarray:
    """Weighted mean from an accumulated ``sum(w*p)`` and the separable weight totals.

    Args:
        weighted_sum: ``[rows, cols]`` float64 accumulated ``w*p``.
        inv_row_weights: ``[rows]`` reciprocals of the :func:`axis_weight_sum` totals of those rows.
        inv_col_weights: ``[cols]`` reciprocals of the column totals.
        out: optional float32 ``[rows, cols]`` result buffer.
        scratch: optional float64 ``[rows, cols]`` buffer for the intermediate product.

    Returns:
        float32 probabilities. When every tile agrees on a float32 ``p``, the float64 result is
        within a few float64 ulps of ``p``, so the cast to float32 gives exactly ``p``.
    """
    tmp = np.multiply(weighted_sum, inv_col_weights, out=scratch)
    if out is None:
        out = np.empty(tmp.shape, np.float32)
    # float64 product cast once to float32 on output (the same values as ``.astype``)
    return np.multiply(tmp, inv_row_weights[:, None], out=out, casting="same_kind")
