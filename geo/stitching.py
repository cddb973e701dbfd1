"""Out-of-core stitching: blend tiles into a band of open rows, write rows once final.

Tiles must be added in row-major order (skipped tiles included, as ``None``). The
accumulator holds ``min(tile_size, height)`` rows of the current tile row; when the last
tile of a tile row arrives, the rows above the next tile row are final: they are
normalized, masked and handed to the writer, and the band slides down. Memory is
``tile_size x width`` float64 whatever the scene height. Where no earlier tile reached (below
the previous tile row, right of the previous tile) the weighted tile is stored rather than
added, so the band is never cleared.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .blending import axis_weight_sum, normalize, ramp_window
from .tiling import TileGrid

#: Rows normalized and written at a time.
FLUSH_ROWS = 32
#: Tile rows weighted and accumulated at a time (the temporary stays in cache).
ADD_ROWS = 32
#: ``write(row0, prob[rows, width] float32, valid[rows, width] bool or None = all valid)``
RowWriter = Callable[[int, np.ndarray, np.ndarray | None], None]
#: ``valid(row0, rows) -> bool[rows, width]`` validity of the input rows (None: all valid)
ValidReader = Callable[[int, int], np.ndarray | None]


class RowBandStitcher:
    """Accumulate weighted tile predictions and emit finished full-width rows.

    Args:
        grid: the tile grid.
        write: receives finished rows.
        valid: returns the input validity of rows (nodata, alpha, mask).
    """

    def __init__(self, grid: TileGrid, write: RowWriter, valid: ValidReader):
        self.grid = grid
        self._write = write
        self._valid = valid
        self._w1d = ramp_window(grid.tile_size, grid.overlap_px)
        self._row_total = axis_weight_sum(grid.height, grid.row_offsets, self._w1d)
        self._col_total = axis_weight_sum(grid.width, grid.col_offsets, self._w1d)
        self._inv_row = 1.0 / self._row_total
        self._inv_col = 1.0 / self._col_total
        self._w2d = np.outer(self._w1d, self._w1d)
        self._tmp = np.empty((min(ADD_ROWS, grid.tile_size), grid.tile_size), dtype=np.float64)
        self._acc = np.zeros((min(grid.tile_size, grid.height), grid.width), dtype=np.float64)
        self._base = 0  # scene row of self._acc[0]
        self._next = 0  # next expected tile index
        self.rows_written = 0

    def add(self, index: int, prob: np.ndarray | None) -> None:
        """Add tile ``index``'s ``[T, T]`` probabilities (None for a skipped tile)."""
        if index != self._next:
            raise ValueError(f"tiles must be added in order: expected {self._next}, got {index}")
        g = self.grid
        n_cols = len(g.col_offsets)
        r, c = divmod(index, n_cols)
        t = g.tile_size
        r0, c0 = g.row_offsets[r], g.col_offsets[c]
        h = min(t, g.height - r0)
        w = min(t, g.width - c0)
        a0 = r0 - self._base
        # Rows below the previous tile row and columns right of the previous tile hold no sum yet:
        # there the weighted tile is stored (no zeroing pass), elsewhere it is added.
        fresh_r = 0 if r == 0 else min(h, max(0, g.row_offsets[r - 1] + t - r0))
        fresh_c = 0 if c == 0 else min(w, max(0, g.col_offsets[c - 1] + t - c0))
        if prob is None:
            self._acc[a0 + fresh_r:a0 + h, c0 + fresh_c:c0 + w] = 0.0
        else:
            self._add_weighted(prob, a0, c0, 0, fresh_r, 0, w)
            self._add_weighted(prob, a0, c0, fresh_r, h, 0, fresh_c)
            np.multiply(self._w2d[fresh_r:h, fresh_c:w], prob[fresh_r:h, fresh_c:w],
                        out=self._acc[a0 + fresh_r:a0 + h, c0 + fresh_c:c0 + w])
        self._next += 1
        if c == n_cols - 1:
            self._finish_tile_row(r)

    def _add_weighted(self, prob: np.ndarray, a0: int, c0: int, q0: int, q1: int, p0: int, p1: int) -> None:
        """``acc += w * prob`` over tile rows ``q0:q1`` and columns ``p0:p1``, in cache-sized chunks."""
        if q1 <= q0 or p1 <= p0:
            return
        for s0 in range(q0, q1, ADD_ROWS):
            s1 = min(s0 + ADD_ROWS, q1)
            weighted = np.multiply(self._w2d[s0:s1, p0:p1], prob[s0:s1, p0:p1], out=self._tmp[:s1 - s0, :p1 - p0])
            self._acc[a0 + s0:a0 + s1, c0 + p0:c0 + p1] += weighted

    def _finish_tile_row(self, r: int) -> None:
        g = self.grid
        end = g.row_offsets[r + 1] if r + 1 < len(g.row_offsets) else g.height
        n = end - self._base
        if n <= 0:
            return
        for r0 in range(0, n, FLUSH_ROWS):  # in chunks: temporaries stay small
            r1 = min(r0 + FLUSH_ROWS, n)
            row0 = self._base + r0
            prob = normalize(self._acc[r0:r1], self._inv_row[row0:self._base + r1], self._inv_col)
            self._write(row0, prob, self._valid(row0, r1 - r0))
        self.rows_written += n
        keep = self._acc.shape[0] - n
        self._acc[:keep] = self._acc[n:]  # the rows below are overwritten by the next tile row
        self._base = end

    @property
    def complete(self) -> bool:
        """True once every row of the scene has been written."""
        return self.rows_written == self.grid.height
