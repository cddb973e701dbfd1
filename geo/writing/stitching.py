"""Blend the tiles a chunk owns into exact fixed-point sums, and hand on each row band once final.

Each tile of the scene belongs to one output chunk (:func:`~sam2unext.geo.running.chunks.owns_tile`);
a chunk's stitcher adds only its own tiles, over the window they cover (the chunk and a halo
around it, see :class:`~sam2unext.geo.running.chunks.OverlapLayout`). A tile adds, at each
pixel, its share of the blended mean as a fixed-point integer::

    rint(p * share)      share = row_share ⊗ col_share,  row_share = w_row / W_row * 2**52,  col_share = w_col / W_col

``w`` the raised-cosine weights and ``W`` the scene-wide per-axis weight totals (the blend is
separable), so a pixel's sum over every tile covering it is ``p_mean * 2**52`` to about
``2**-52``. The terms are integers held in float64 and the sums stay below ``2**53``, so
every addition is exact: the sum of a pixel does not depend on the order of its terms, nor
on which chunk added which of them. That is what lets the halos of neighbouring chunks be
added later (overlap-add) with a result independent of the chunking, the workers and
resumes. :mod:`~sam2unext.geo.writing.quantize` turns sums into output values.

Tiles are added in row-major order (skipped tiles as ``None``). The accumulator holds
``min(tile_size, window height)`` rows across the window's width; when the last tile of a
tile row arrives, the rows above the next tile row are final and handed on, and the band
slides down.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from sam2unext.geo.running.chunks import Chunk
from sam2unext.geo.running.tiling import TileGrid
from sam2unext.geo.writing.blending import axis_weight_sum, normalized_axis_weights, ramp_window
from sam2unext.geo.writing.quantize import FIXED_BITS, finish_sums

#: Rows of a finished band handed on at a time by the host stitcher (temporaries stay small).
FLUSH_ROWS = 64
#: Tile rows weighted and accumulated at a time (the temporary stays in cache).
ADD_ROWS = 32
#: Distinct 2-D tile shares kept per grid (a regular grid has about 3 x 3 kinds of tile).
SHARES_KEPT = 9
#: ``emit(row0, sums, stitcher)``: ``sums`` the finished rows ``[n, window width]`` from scene
#: row ``row0`` (a view of the accumulator, valid only during the call; numpy here, a tensor
#: on a device); ``stitcher.to_host`` and ``stitcher.finish`` turn parts of it into host arrays.
SumSink = Callable[[int, Any, "ChunkStitcher"], None]


def _kinds(vectors: list[np.ndarray]) -> list[int]:
    """For each vector, the index of the first equal one (equal vectors share one 2-D share)."""
    first: dict[bytes, int] = {}
    return [first.setdefault(v.tobytes(), i) for i, v in enumerate(vectors)]


class SceneWeights:
    """Each tile row's and tile column's share of the blended mean (pure data, per grid).

    ``rows[r]`` is ``w1d / W_row * 2**52`` over the in-scene part of tile row ``r``,
    ``cols[c]`` is ``w1d / W_col`` over tile column ``c`` (float64). :meth:`share` is their
    outer product, the 2-D weight of a tile; most tiles of a regular grid have the same one,
    so the few distinct ones are kept (each ``tile²`` float64).
    """

    def __init__(self, grid: TileGrid):
        self.w1d = ramp_window(grid.tile_size, grid.overlap_px)
        inv_row = 1.0 / axis_weight_sum(grid.height, grid.row_offsets, self.w1d)
        inv_col = 1.0 / axis_weight_sum(grid.width, grid.col_offsets, self.w1d)
        scale = 2.0**FIXED_BITS  # exact: a power of two
        self.rows = [normalized_axis_weights(self.w1d, inv_row, off) * scale for off in grid.row_offsets]
        self.cols = [normalized_axis_weights(self.w1d, inv_col, off) for off in grid.col_offsets]
        self._row_kind = _kinds(self.rows)
        self._col_kind = _kinds(self.cols)
        self._shares: dict[tuple[int, int], np.ndarray] = {}
        self._lock = threading.Lock()

    def share(self, r: int, c: int) -> np.ndarray:
        """The 2-D share of the tile at tile row ``r``, tile column ``c``: ``outer(rows[r], cols[c])``."""
        key = (self._row_kind[r], self._col_kind[c])
        with self._lock:
            found = self._shares.get(key)
        if found is None:
            found = np.outer(self.rows[r], self.cols[c])
            with self._lock:
                if len(self._shares) >= SHARES_KEPT:
                    self._shares.pop(next(iter(self._shares)))
                self._shares[key] = found
        return found

    @staticmethod
    @functools.lru_cache(maxsize=4)
    def cached(grid: TileGrid) -> SceneWeights:
        """The weights of ``grid``, computed once per process."""
        return SceneWeights(grid)


class ChunkStitcher:
    """Accumulate a chunk's own tiles as exact fixed-point sums and emit finished row bands.

    Args:
        grid: the scene's tile grid.
        window: the pixels the tiles cover (the chunk's extended window, scene coordinates).
        tile_rows, tile_cols: the tile rows/columns the chunk owns (ascending, contiguous).
        emit: receives finished rows of the window, top to bottom (:data:`SumSink`).
        weights: the scene's :class:`SceneWeights` (shared between chunks).
        out_dtype: ``uint8`` or ``float32``: what :meth:`finish` gives.
    """

    #: Rows handed on per call of ``emit`` (at most).
    piece_rows = FLUSH_ROWS

    def __init__(
        self,
        grid: TileGrid,
        window: Chunk,
        tile_rows: list[int],
        tile_cols: list[int],
        emit: SumSink,
        weights: SceneWeights,
        out_dtype: str = "uint8",
    ):
        self.grid, self.window, self.out_dtype = grid, window, out_dtype
        self._rows, self._cols = tile_rows, tile_cols
        self._emit, self._w = emit, weights
        self._base = window.row_off  # scene row of the accumulator's first row
        self._order = [(r, c) for r in tile_rows for c in tile_cols]
        self._next = 0
        self.rows_emitted = 0
        self._allocate()

    def _allocate(self) -> None:
        """The accumulator and the reused scratch buffer (numpy, on the host)."""
        t, win = self.grid.tile_size, self.window
        self._tmp = np.empty((min(ADD_ROWS, t), t), dtype=np.float64)
        self._acc = np.zeros((min(t, win.height), win.width), dtype=np.float64)

    @property
    def tiles(self) -> list[tuple[int, int]]:
        """(tile row, tile column) of every tile to add, in the order they must come."""
        return self._order

    def add(self, prob: np.ndarray | None) -> None:
        """Add the next tile's ``[T, T]`` probabilities (None for a skipped tile)."""
        self._accumulate(prob)

    def _accumulate(self, prob: Any) -> None:
        """Add the next tile: ``prob`` is an array of this stitcher's kind (numpy here) or None."""
        r, c = self._order[self._next]
        g, win = self.grid, self.window
        t = g.tile_size
        r0, c0 = g.row_offsets[r], g.col_offsets[c]
        # the part of the tile inside both the scene and the window, in scene coordinates
        a0, a1 = max(r0, win.row_off), min(r0 + t, g.height, win.row_off + win.height)
        b0, b1 = max(c0, win.col_off), min(c0 + t, g.width, win.col_off + win.width)
        if prob is not None and a1 > a0 and b1 > b0:
            self._add_shares(prob, r, c, a0, a1, b0, b1)
        self._next += 1
        if c == self._cols[-1]:
            self._finish_tile_row(r)

    def _add_shares(self, prob: Any, r: int, c: int, a0: int, a1: int, b0: int, b1: int) -> None:
        """``acc += rint(p * share)`` over scene rows ``[a0, a1)`` and columns ``[b0, b1)``.

        In bands of :data:`ADD_ROWS` rows, so the float64 temporary stays in cache.
        """
        r0, c0 = self.grid.row_offsets[r], self.grid.col_offsets[c]
        base, col = self._base, self.window.col_off
        share = self._w.share(r, c)
        for s0 in range(a0, a1, ADD_ROWS):
            s1 = min(s0 + ADD_ROWS, a1)
            part = (slice(s0 - r0, s1 - r0), slice(b0 - c0, b1 - c0))
            term = self._tmp[: s1 - s0, : b1 - b0]
            term[...] = prob[part]  # float32 -> float64 first: exact, and cheaper than a mixed-type multiply
            np.multiply(term, share[part], out=term)
            np.rint(term, out=term)
            self._acc[s0 - base : s1 - base, b0 - col : b1 - col] += term

    def _finish_tile_row(self, r: int) -> None:
        g, win = self.grid, self.window
        k = self._rows.index(r)
        end = win.row_off + win.height
        if k + 1 < len(self._rows):
            end = min(end, max(win.row_off, g.row_offsets[self._rows[k + 1]]))
        n = end - self._base
        if n <= 0:
            return
        for p0 in range(0, n, self.piece_rows):
            p1 = min(p0 + self.piece_rows, n)
            self._emit(self._base + p0, self._band(p0, p1), self)
        self.rows_emitted += n
        self._shift(n)
        self._base = end

    def _band(self, start: int, stop: int) -> Any:
        """Rows ``[start, stop)`` of the accumulator (a view)."""
        return self._acc[start:stop]

    def _shift(self, n: int) -> None:
        """Move the accumulator up by ``n`` emitted rows and clear the rows freed at the bottom."""
        keep = self._acc.shape[0] - n
        self._acc[:keep] = self._acc[n:]
        self._acc[keep:] = 0.0

    def to_host(self, sums: Any) -> np.ndarray:
        """Part of an emitted band as a host float64 array (a view here: copy what must be kept)."""
        return sums

    def finish(self, sums: Any) -> np.ndarray:
        """Part of an emitted band as output values on the host (uint8 or float32), in a new array.

        May overwrite ``sums`` (the emitted rows leave the accumulator after the call).
        """
        return finish_sums(sums, self.out_dtype, in_place=True)

    @property
    def complete(self) -> bool:
        """True once every row of the window has been emitted."""
        return self.rows_emitted == self.window.height
