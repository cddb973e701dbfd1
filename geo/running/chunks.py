"""Output chunks: the unit of work, of resume and of distribution (pure functions over sizes).

The scene is cut into square output chunks whose sides are multiples of the COG block
(:data:`sam2unext.geo.writing.cog.BLOCK`). A chunk task computes every tile that touches its
chunk, so that each pixel of the chunk sees exactly the tiles and weights of an unchunked run;
tiles that cross a chunk border are computed once by each chunk they touch. Larger chunks
recompute fewer border tiles but hold a larger accumulator (``tile x chunk`` float64).
"""

from __future__ import annotations

from dataclasses import dataclass

from rasterio.windows import Window

from sam2unext.errors import InputError, option
from sam2unext.geo.running.tiling import TileGrid

#: Chunk sides are multiples of this (the COG block of the output).
CHUNK_ALIGN = 512
#: Smallest default chunk side.
MIN_DEFAULT_CHUNK = 4096
#: Chunk sides below 512 that divide the COG block (small scenes and tests).
SMALL_CHUNKS = (16, 32, 64, 128, 256)
#: The default chunk side spans this many tiles (fewer border recomputations).
TILES_PER_CHUNK_SIDE = 8


def default_chunk_size(tile_size: int) -> int:
    """``max(4096, 8 x tile)`` rounded up to a multiple of 512."""
    side = max(MIN_DEFAULT_CHUNK, TILES_PER_CHUNK_SIDE * tile_size)
    return -(-side // CHUNK_ALIGN) * CHUNK_ALIGN


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
    """The chunk grid of a scene (default side :func:`default_chunk_size`).

    Raises:
        InputError: a chunk side that is neither a positive multiple of 512 nor one of 16, 32, ...
            256 (small chunks, for tests and tiny scenes).
    """
    size = default_chunk_size(tile_size) if chunk_size is None else check_chunk_size(int(chunk_size))
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
    """Tiles computed by all chunk tasks together (border tiles counted once per chunk)."""
    rows, cols = chunks.shape
    per_row = [
        len(
            _touching(
                grid.row_offsets,
                grid.tile_size,
                grid.height,
                r * chunks.size,
                min(chunks.size, grid.height - r * chunks.size),
            )
        )
        for r in range(rows)
    ]
    per_col = [
        len(
            _touching(
                grid.col_offsets,
                grid.tile_size,
                grid.width,
                c * chunks.size,
                min(chunks.size, grid.width - c * chunks.size),
            )
        )
        for c in range(cols)
    ]
    return sum(per_row) * sum(per_col)
