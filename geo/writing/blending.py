"""Blending weights for overlapping tiles: pure functions over arrays.

Each tile's prediction is multiplied by a separable raised-cosine window that is 1 in the
middle and falls towards the tile edge over the overlap, but never reaches 0: sample ``i`` of a
ramp of ``n`` samples has weight ``0.5 - 0.5*cos(pi*(i+0.5)/n)`` > 0. Because the tile grid is
a product of row and column offsets, the total weight at a pixel is the product of the 1-D
sums: a tile's share of a pixel is its weight times the reciprocals of the two 1-D totals.
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


def normalized_axis_weights(window_1d: np.ndarray, inv_total: np.ndarray, offset: int) -> np.ndarray:
    """The 1-D weights of a tile at ``offset`` divided by the axis totals of the pixels it covers.

    ``window_1d`` of :func:`ramp_window`, ``inv_total`` the reciprocals of the
    :func:`axis_weight_sum` totals of the whole axis; the tile's part beyond the axis end is
    dropped. Along an axis these add up to 1 at every pixel (to float64 rounding), so their
    outer product, times a probability, is a pixel's share of the blended mean.
    """
    end = min(offset + len(window_1d), len(inv_total))
    return window_1d[: end - offset] * inv_total[offset:end]
