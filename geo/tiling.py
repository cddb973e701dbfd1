"""Tile grids over a raster: pure functions over sizes and windows.

A scene of ``height x width`` pixels is covered by square windows of ``tile_size`` pixels that
overlap by ``overlap`` (a fraction of the tile, or whole pixels when >= 1). The last window of
each row/column is shifted inward so that it ends on the scene edge; a scene smaller than one
tile gets a single window that extends past the scene (the reader pads it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from sam2unext.errors import InputError


@dataclass(frozen=True)
class TileGrid:
    """A row-major grid of tile windows.

    Attributes:
        height, width: scene size in pixels.
        tile_size: side of every tile in pixels.
        overlap_px: nominal overlap between neighbouring tiles in pixels.
        row_offsets, col_offsets: top/left pixel offsets of the tile rows/columns.
    """

    height: int
    width: int
    tile_size: int
    overlap_px: int
    row_offsets: tuple[int, ...]
    col_offsets: tuple[int, ...]

    @property
    def shape(self) -> tuple[int, int]:
        """Number of tile rows and columns."""
        return len(self.row_offsets), len(self.col_offsets)

    def __len__(self) -> int:
        return len(self.row_offsets) * len(self.col_offsets)

    def window(self, index: int) -> Window:
        """The window of tile ``index`` (row-major); it may extend past the scene edge."""
        r, c = divmod(index, len(self.col_offsets))
        return Window(self.col_offsets[c], self.row_offsets[r], self.tile_size, self.tile_size)

    def window_at(self, row: int, col: int) -> Window:
        """The window of the tile in tile row ``row`` and tile column ``col``."""
        return Window(self.col_offsets[col], self.row_offsets[row], self.tile_size, self.tile_size)

    def windows(self) -> list[Window]:
        """All tile windows in row-major order."""
        return [self.window(i) for i in range(len(self))]


def overlap_pixels(tile_size: int, overlap: float) -> int:
    """Overlap in pixels from a fraction (< 1) or a pixel count (>= 1).

    Raises:
        InputError: if the overlap leaves no positive stride.
    """
    px = int(round(overlap * tile_size)) if 0 <= overlap < 1 else int(overlap)
    if px < 0 or px >= tile_size:
        raise InputError(f"overlap {overlap} must be in [0, 1) or whole pixels below tile_size {tile_size}")
    return px


def axis_offsets(length: int, tile_size: int, stride: int) -> tuple[int, ...]:
    """Start offsets of tiles along one axis so that every pixel is covered.

    The last tile is shifted inward to end on the edge; if ``length <= tile_size`` the only
    tile starts at 0 (and extends past the edge when ``length < tile_size``).
    """
    if length <= tile_size:
        return (0,)
    offsets = list(range(0, length - tile_size, stride))
    offsets.append(length - tile_size)
    return tuple(offsets)


def make_grid(height: int, width: int, tile_size: int, overlap: float = 0.25) -> TileGrid:
    """Build the tile grid for a scene.

    Args:
        height, width: scene size in pixels (> 0).
        tile_size: tile side in pixels.
        overlap: fraction of the tile (< 1) or pixels (>= 1).

    Returns:
        The :class:`TileGrid`.
    """
    if tile_size < 1:
        raise InputError(f"tile_size {tile_size} must be a positive number of pixels")
    ov = overlap_pixels(tile_size, overlap)
    stride = tile_size - ov
    return TileGrid(height, width, tile_size, ov, axis_offsets(height, tile_size, stride),
                    axis_offsets(width, tile_size, stride))


def clip_window(window: Window, height: int, width: int) -> Window:
    """The part of ``window`` inside a ``height x width`` scene."""
    col0, row0 = int(window.col_off), int(window.row_off)
    col1 = min(col0 + int(window.width), width)
    row1 = min(row0 + int(window.height), height)
    return Window(col0, row0, col1 - col0, row1 - row0)


def pad_to_tile(array: np.ndarray, tile_size: int) -> np.ndarray:
    """Pad the last two axes of ``array`` at the bottom/right to ``tile_size`` (mirror padding).

    Mirror (reflect) padding keeps image statistics near the edge; a one-pixel axis is padded
    by repeating its edge.
    """
    h, w = array.shape[-2:]
    if h == tile_size and w == tile_size:
        return array
    pad = [(0, 0)] * (array.ndim - 2) + [(0, tile_size - h), (0, tile_size - w)]
    mode = "reflect" if h > 1 and w > 1 else "edge"
    return np.pad(array, pad, mode=mode)
