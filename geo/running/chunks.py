"""Output chunks: the unit of work, of resume and of distribution (pure functions over sizes).

The scene is cut into square output chunks whose sides are multiples of the COG block
(:data:`sam2unext.geo.writing.cog.BLOCK`). Each tile belongs to the one chunk that holds the
centre of its in-scene part (:func:`owns_tile`) and is computed once, by that chunk; its blended
contribution beyond the chunk's edge reaches the neighbouring chunks as stored partial sums
(overlap-add, :class:`OverlapLayout`). The chunk size therefore changes neither the number of
forward passes nor the output.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from rasterio.windows import Window

from sam2unext.errors import InputError, option
from sam2unext.geo.running.tiling import TileGrid

#: Chunk sides are multiples of this (the COG block of the output).
CHUNK_ALIGN = 512
#: Chunk sides below 512 that divide the COG block (small scenes and tests).
SMALL_CHUNKS = (16, 32, 64, 128, 256)
#: Seconds of forward passes a default chunk holds: what a kill loses per worker at most, and
#: the granularity of the work handed out (``--resume`` continues from finished chunks).
CHUNK_SECONDS = 180.0
#: Largest default chunk side: a chunk in flight holds about ``3 x tile x side`` float64 values.
MAX_DEFAULT_CHUNK = 8192
#: The default chunking cuts a scene into at least this many chunks when it is large enough,
#: so that every worker of a small cluster gets work.
MIN_DEFAULT_CHUNKS = 8


def default_chunk_size(
    tile_size: int,
    *,
    stride: int | None = None,
    seconds_per_tile: float | None = None,
    height: int | None = None,
    width: int | None = None,
) -> int:
    """The default chunk side: :data:`CHUNK_SECONDS` of work at ``seconds_per_tile``, a multiple of 512.

    Tiles are ``stride`` apart (``tile - overlap``), so a side of ``s`` pixels holds about
    ``(s / stride)**2`` tiles. Without a measured time the side is ``max(4096, 8 x tile)``. The
    side stays between ``max(512, 2 x tile)`` and :data:`MAX_DEFAULT_CHUNK`; given the scene's
    ``height`` and ``width`` (a cluster run) it shrinks until the scene has
    :data:`MIN_DEFAULT_CHUNKS` chunks, or to its floor. Smaller chunks cost no extra forward
    passes (each tile is computed once, by its owner), only more partial sums at their borders.
    """
    floor = -(-max(CHUNK_ALIGN, 2 * tile_size) // CHUNK_ALIGN) * CHUNK_ALIGN
    if seconds_per_tile is None or seconds_per_tile <= 0:
        side = max(4096, 8 * tile_size)
    else:
        side = (CHUNK_SECONDS / seconds_per_tile) ** 0.5 * (stride or tile_size)
    size = max(floor, min(MAX_DEFAULT_CHUNK, int(side) // CHUNK_ALIGN * CHUNK_ALIGN))
    if height is not None and width is not None:
        while size > floor and -(-height // size) * -(-width // size) < MIN_DEFAULT_CHUNKS:
            size -= CHUNK_ALIGN
    return size


@dataclass(frozen=True)
class Chunk:
    """One output chunk: its index (row-major) and its window on the scene."""

    index: int
    row_off: int
    col_off: int
    height: int
    width: int

    @property
    def window(self) -> Window:
        return Window(self.col_off, self.row_off, self.width, self.height)


@dataclass(frozen=True)
class ChunkGrid:
    """Square chunks of ``size`` pixels over a ``height x width`` scene (edge chunks smaller)."""

    height: int
    width: int
    size: int

    @property
    def shape(self) -> tuple[int, int]:
        """Number of chunk rows and columns."""
        return -(-self.height // self.size), -(-self.width // self.size)

    def __len__(self) -> int:
        rows, cols = self.shape
        return rows * cols

    def chunk(self, index: int) -> Chunk:
        """Chunk ``index`` (row-major)."""
        r, c = divmod(index, self.shape[1])
        r0, c0 = r * self.size, c * self.size
        return Chunk(index, r0, c0, min(self.size, self.height - r0), min(self.size, self.width - c0))

    def __iter__(self):
        return (self.chunk(i) for i in range(len(self)))


def make_chunk_grid(height: int, width: int, tile_size: int, chunk_size: int | None = None) -> ChunkGrid:
    """The chunk grid of a scene (default side :func:`default_chunk_size` without a measured time).

    Raises:
        InputError: a chunk side that is neither a positive multiple of 512 nor one of 16, 32, ...
            256 (small chunks, for tests and tiny scenes).
    """
    if chunk_size is None:
        size = default_chunk_size(tile_size)
    else:
        size = check_chunk_size(int(chunk_size))
    return ChunkGrid(height, width, size)


def check_chunk_size(size: int) -> int:
    """``size`` when it is a valid chunk side (see :func:`make_chunk_grid`).

    Raises:
        InputError: one line naming the size.
    """
    if not (size >= CHUNK_ALIGN and size % CHUNK_ALIGN == 0) and size not in SMALL_CHUNKS:
        raise InputError(
            f"chunk size {size} must be a multiple of {CHUNK_ALIGN} pixels; pass e.g. {option('chunk_size', 4096)}"
        )
    return size


def _touching(offsets: tuple[int, ...], tile: int, extent: int, start: int, length: int) -> list[int]:
    """Indexes of the tiles along one axis whose in-scene part meets ``[start, start + length)``."""
    end = start + length
    return [i for i, off in enumerate(offsets) if off < end and min(off + tile, extent) > start]


def tiles_touching(grid: TileGrid, chunk: Chunk) -> tuple[list[int], list[int]]:
    """Tile rows and tile columns of ``grid`` that touch ``chunk`` (ascending)."""
    rows = _touching(grid.row_offsets, grid.tile_size, grid.height, chunk.row_off, chunk.height)
    cols = _touching(grid.col_offsets, grid.tile_size, grid.width, chunk.col_off, chunk.width)
    return rows, cols


def owns_tile(grid: TileGrid, chunk: Chunk, tile_row: int, tile_col: int) -> bool:
    """True when ``chunk`` holds the centre of the tile's in-scene part (each tile has one owner)."""
    r0, c0 = grid.row_offsets[tile_row], grid.col_offsets[tile_col]
    rc = (r0 + min(r0 + grid.tile_size, grid.height)) // 2
    cc = (c0 + min(c0 + grid.tile_size, grid.width)) // 2
    return chunk.row_off <= rc < chunk.row_off + chunk.height and chunk.col_off <= cc < chunk.col_off + chunk.width


def tile_computations(grid: TileGrid, chunks: ChunkGrid) -> int:
    """Forward passes of all chunk tasks together: every tile once, whatever the chunking."""
    return len(grid)


def _axis_owner(offsets: tuple[int, ...], tile: int, extent: int, size: int) -> list[int]:
    """The chunk index (along one axis) owning each tile: the one holding its in-scene centre."""
    return [(off + min(off + tile, extent)) // 2 // size for off in offsets]


@dataclass(frozen=True)
class _Axis:
    """One axis of an :class:`OverlapLayout`, per chunk index along it (pixel ranges are half-open)."""

    owned: tuple[tuple[int, int], ...]  # tile indexes owned
    extended: tuple[tuple[int, int], ...]  # pixels covered by the owned tiles
    core: tuple[tuple[int, int], ...]  # pixels of the chunk covered by no other chunk's tile
    touching: tuple[tuple[int, int], ...]  # chunk indexes whose tiles touch this chunk's pixels


def _axis(offsets: tuple[int, ...], tile: int, extent: int, size: int) -> _Axis:
    n_chunks = -(-extent // size)
    owner = _axis_owner(offsets, tile, extent, size)
    ends = [min(off + tile, extent) for off in offsets]
    owned, extended, core, touching = [], [], [], []
    for i in range(n_chunks):
        c0, c1 = i * size, min((i + 1) * size, extent)
        mine = [t for t, o in enumerate(owner) if o == i]
        t0, t1 = (mine[0], mine[-1] + 1) if mine else (0, 0)
        owned.append((t0, t1))
        if mine:
            extended.append((offsets[t0], ends[t1 - 1]))
            lo = ends[t0 - 1] if t0 > 0 else 0  # pixels from here on: no earlier tile
            hi = offsets[t1] if t1 < len(offsets) else extent  # pixels below this: no later tile
            k0, k1 = max(c0, lo), min(c1, hi)
            core.append((k0, k1) if k1 > k0 else (c0, c0))
        else:
            extended.append((c0, c0))
            core.append((c0, c0))
        near = [owner[t] for t, off in enumerate(offsets) if off < c1 and ends[t] > c0]
        touching.append((min(near), max(near) + 1))
    return _Axis(tuple(owned), tuple(extended), tuple(core), tuple(touching))


def _window(rows: tuple[int, int], cols: tuple[int, int]) -> Window | None:
    if rows[1] <= rows[0] or cols[1] <= cols[0]:
        return None
    return Window(cols[0], rows[0], cols[1] - cols[0], rows[1] - rows[0])


def _frame(outer: Window, inner: Window | None) -> list[tuple[str, Window]]:
    """``outer`` minus ``inner`` (inside it) as named rectangles: top, bottom, left, right."""
    if inner is None:
        return [("all", outer)]
    r0, c0 = int(outer.row_off), int(outer.col_off)
    r1, c1 = r0 + int(outer.height), c0 + int(outer.width)
    k0, j0 = int(inner.row_off), int(inner.col_off)
    k1, j1 = k0 + int(inner.height), j0 + int(inner.width)
    parts = [
        ("top", _window((r0, k0), (c0, c1))),
        ("bottom", _window((k1, r1), (c0, c1))),
        ("left", _window((k0, k1), (c0, j0))),
        ("right", _window((k0, k1), (j1, c1))),
    ]
    return [(name, w) for name, w in parts if w is not None]


class OverlapLayout:
    """Who computes, finishes and stores what, for a tile grid cut into chunks (pure geometry).

    For chunk ``k``: its **own tiles** (:meth:`owned`) cover its **extended window**
    (:meth:`extended`, the chunk and a halo of at most half a tile); the **core**
    (:meth:`core`) is the part of the chunk no other chunk's tile reaches, finished by the
    chunk's first step. The rest of the extended window is stored as partial sums, in the
    rectangles of :meth:`strips`; a chunk's second step finishes its **frame**
    (:meth:`frame`: the chunk minus its core) by adding the strips of its
    :meth:`contributors`. A chunk's strips can go once every chunk in :meth:`dependents` is
    finished.
    """

    def __init__(self, grid: TileGrid, chunks: ChunkGrid):
        self.grid, self.chunks = grid, chunks
        self._rows = _axis(grid.row_offsets, grid.tile_size, grid.height, chunks.size)
        self._cols = _axis(grid.col_offsets, grid.tile_size, grid.width, chunks.size)

    @staticmethod
    @functools.lru_cache(maxsize=8)
    def of(grid: TileGrid, chunks: ChunkGrid) -> OverlapLayout:
        """The layout of ``grid`` and ``chunks``, computed once per process."""
        return OverlapLayout(grid, chunks)

    def _rc(self, index: int) -> tuple[int, int]:
        return divmod(index, self.chunks.shape[1])

    def owned(self, index: int) -> tuple[list[int], list[int]]:
        """Tile rows and tile columns chunk ``index`` owns (ascending; empty when none)."""
        r, c = self._rc(index)
        (a, b), (d, e) = self._rows.owned[r], self._cols.owned[c]
        rows, cols = list(range(a, b)), list(range(d, e))
        return (rows, cols) if rows and cols else ([], [])

    def extended(self, index: int) -> Window | None:
        """The pixels the chunk's own tiles cover (None when it owns none)."""
        if not self.owned(index)[0]:
            return None
        r, c = self._rc(index)
        return _window(self._rows.extended[r], self._cols.extended[c])

    def core(self, index: int) -> Window | None:
        """The pixels of the chunk that only its own tiles cover (None when there are none)."""
        r, c = self._rc(index)
        return _window(self._rows.core[r], self._cols.core[c])

    def strips(self, index: int) -> list[tuple[str, Window]]:
        """The extended window minus the core: the rectangles kept as partial sums."""
        ext = self.extended(index)
        return [] if ext is None else _frame(ext, self.core(index))

    def frame(self, index: int) -> list[tuple[str, Window]]:
        """The chunk minus its core: the rectangles its second step finishes."""
        return _frame(self.chunks.chunk(index).window, self.core(index))

    def contributors(self, index: int) -> list[int]:
        """Chunks whose own tiles touch chunk ``index`` (itself included when it owns any)."""
        r, c = self._rc(index)
        (r0, r1), (c0, c1) = self._rows.touching[r], self._cols.touching[c]
        cols = self.chunks.shape[1]
        return [i * cols + j for i in range(r0, r1) for j in range(c0, c1) if self.owned(i * cols + j)[0]]

    def dependents(self, index: int) -> list[int]:
        """Chunks that read chunk ``index``'s strips in their second step."""
        ext = self.extended(index)
        if ext is None:
            return []
        size, cols = self.chunks.size, self.chunks.shape[1]
        r0, r1 = int(ext.row_off) // size, (int(ext.row_off + ext.height) - 1) // size + 1
        c0, c1 = int(ext.col_off) // size, (int(ext.col_off + ext.width) - 1) // size + 1
        return [i * cols + j for i in range(r0, r1) for j in range(c0, c1)]
