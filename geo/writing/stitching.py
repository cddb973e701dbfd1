"""Blend the tiles that touch one output chunk and emit its rows once they are final.

Tiles are added in row-major order (skipped tiles as ``None``). The accumulator holds the
``min(tile_size, chunk height)`` rows of the current tile row across the chunk's width; when
the last tile of a tile row arrives, the rows above the next tile row are final: they are
normalized with the scene-wide separable weight totals and handed on, and the band slides
down. Every pixel receives the same ``w * p`` products, added in the same (row-major tile)
order, as in an unchunked run of the whole scene, so chunked output equals unchunked output
bit for bit whatever the chunking.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from sam2unext.geo.running.chunks import Chunk
from sam2unext.geo.running.tiling import TileGrid
from sam2unext.geo.writing.blending import axis_weight_sum, ramp_window, weighted_mean

#: Rows normalized and handed on at a time.
FLUSH_ROWS = 32
#: Tile rows weighted and accumulated at a time (the temporary stays in cache).
ADD_ROWS = 32
#: ``emit(row0, prob[rows, chunk width] float32)`` with ``row0`` a scene row; ``prob`` is a reused
#: buffer, valid only during the call (copy what must be kept).
RowSink = Callable[[int, np.ndarray], None]


class SceneWeights:
    """The blending weights of a tile grid: 1-D window and reciprocal per-axis totals (pure data)."""

    def __init__(self, grid: TileGrid):
        self.w1d = ramp_window(grid.tile_size, grid.overlap_px)
        self.w2d = np.outer(self.w1d, self.w1d)
        self.inv_row = 1.0 / axis_weight_sum(grid.height, grid.row_offsets, self.w1d)
        self.inv_col = 1.0 / axis_weight_sum(grid.width, grid.col_offsets, self.w1d)

    @staticmethod
    @functools.lru_cache(maxsize=4)
    def cached(grid: TileGrid) -> SceneWeights:
        """The weights of ``grid``, computed once per process."""
        return SceneWeights(grid)


class ChunkStitcher:
    """Accumulate weighted tile predictions over one chunk and emit its finished rows.

    Args:
        grid: the scene's tile grid.
        chunk: the output chunk.
        tile_rows, tile_cols: the tile rows/columns that touch the chunk (ascending).
        emit: receives finished rows of the chunk, top to bottom.
        weights: the scene's :class:`SceneWeights` (shared between chunks).
    """

    def __init__(
        self,
        grid: TileGrid,
        chunk: Chunk,
        tile_rows: list[int],
        tile_cols: list[int],
        emit: RowSink,
        weights: SceneWeights,
    ):
        self.grid = grid
        self.chunk = chunk
        self._rows = tile_rows
        self._cols = tile_cols
        self._emit = emit
        self._w = weights
        self._base = chunk.row_off  # scene row of the accumulator's first row
        self._order = [(r, c) for r in tile_rows for c in tile_cols]
        self._next = 0
        self.rows_emitted = 0
        self._allocate()

    def _allocate(self) -> None:
        """The accumulator and the reused scratch buffers (numpy, on the host)."""
        t, chunk = self.grid.tile_size, self.chunk
        self._tmp = np.empty((min(ADD_ROWS, t), t), dtype=np.float64)
        self._acc = np.zeros((min(t, chunk.height), chunk.width), dtype=np.float64)
        self._mean = np.empty((FLUSH_ROWS, chunk.width), dtype=np.float64)  # weighted_mean scratch
        self._rows_out = np.empty((FLUSH_ROWS, chunk.width), dtype=np.float32)  # what emit receives

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
        g, ch = self.grid, self.chunk
        t = g.tile_size
        r0, c0 = g.row_offsets[r], g.col_offsets[c]
        # the part of the tile inside both the scene and the chunk, in scene coordinates
        a0, a1 = max(r0, ch.row_off), min(r0 + t, g.height, ch.row_off + ch.height)
        b0, b1 = max(c0, ch.col_off), min(c0 + t, g.width, ch.col_off + ch.width)
        if prob is not None:
            self._add_weighted(prob, r0, c0, a0, a1, b0, b1)
        self._next += 1
        if c == self._cols[-1]:
            self._finish_tile_row(r)

    def _add_weighted(self, prob: Any, r0: int, c0: int, a0: int, a1: int, b0: int, b1: int) -> None:
        """``acc += w * prob`` over scene rows ``[a0, a1)`` and columns ``[b0, b1)`` of the tile at ``(r0, c0)``.

        In bands of :data:`ADD_ROWS` rows, so the float64 temporary stays in cache. (Skipping the
        multiply where the weight is 1 and other splits were measured: narrower calls cost more
        than the multiply they save.)
        """
        base, col = self._base, self.chunk.col_off
        for s0 in range(a0, a1, ADD_ROWS):
            s1 = min(s0 + ADD_ROWS, a1)
            weighted = np.multiply(
                self._w.w2d[s0 - r0 : s1 - r0, b0 - c0 : b1 - c0],
                prob[s0 - r0 : s1 - r0, b0 - c0 : b1 - c0],
                out=self._tmp[: s1 - s0, : b1 - b0],
            )
            self._acc[s0 - base : s1 - base, b0 - col : b1 - col] += weighted

    def _finish_tile_row(self, r: int) -> None:
        g, ch = self.grid, self.chunk
        k = self._rows.index(r)
        end = ch.row_off + ch.height
        if k + 1 < len(self._rows):
            end = min(end, max(ch.row_off, g.row_offsets[self._rows[k + 1]]))
        n = end - self._base
        if n <= 0:
            return
        self._emit_rows(n)
        self.rows_emitted += n
        self._shift(n)
        self._base = end

    def _shift(self, n: int) -> None:
        """Move the accumulator up by ``n`` emitted rows and clear the rows freed at the bottom."""
        keep = self._acc.shape[0] - n
        self._acc[:keep] = self._acc[n:]
        self._acc[keep:] = 0.0

    def _emit_rows(self, n: int) -> None:
        """Normalize the first ``n`` accumulator rows and hand them on."""
        ch = self.chunk
        inv_col = self._w.inv_col[ch.col_off : ch.col_off + ch.width]
        for r0 in range(0, n, FLUSH_ROWS):  # in chunks: temporaries stay small
            r1 = min(r0 + FLUSH_ROWS, n)
            row0 = self._base + r0
            rows = r1 - r0
            mean = weighted_mean(
                self._acc[r0:r1],
                self._w.inv_row[row0 : self._base + r1],
                inv_col,
                out=self._rows_out[:rows],
                scratch=self._mean[:rows],
            )
            self._emit(row0, mean)

    @property
    def complete(self) -> bool:
        """True once every row of the chunk has been emitted."""
        return self.rows_emitted == self.chunk.height
