"""Tile grids over a raster: pure functions over sizes and windows.

A scene of ``height x width`` pixels is covered by square windows of ``tile_size`` pixels that
overlap by ``overlap``: a fraction of the tile in [0, 1) (``0.25``), or whole pixels written
with a ``px`` suffix (``"64px"``); anything else is refused. The last window of
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


#: Scenes smaller than this on either side are refused: the model sees mostly padding and
#: answers with a constant (a 1x1 or 5x5 scene came out all foreground).
MIN_SCENE_SIDE = 16


def overlap_pixels(tile_size: int, overlap: float | str) -> int:
    """Overlap in pixels from a fraction in [0, 1) or pixels written as ``"64px"``.

    A fraction is rounded to whole pixels (``round(overlap * tile_size)``). Numbers of 1 or
    more are refused rather than guessed at (``1.5`` used to mean one pixel).

    Raises:
        InputError: any other value, or an overlap that leaves no positive stride.
    """
    text = str(overlap).strip().lower()
    hint = "a fraction of the tile in [0, 1) such as 0.25, or pixels such as 64px"
    try:
        if text.endswith("px"):
            px = int(text[:-2].strip())
        else:
            fraction = float(text)
            if not 0 <= fraction < 1:
                raise ValueError
            px = int(round(fraction * tile_size))
    except ValueError:
        raise InputError(f"overlap {overlap!r} must be {hint}") from None
    if px < 0 or px >= tile_size:
        raise InputError(f"overlap {overlap!r} is {px} px but must be below the tile size {tile_size} px; use {hint}")
    return px


def check_scene_size(height: int, width: int, name: str, minimum: int = MIN_SCENE_SIDE) -> None:
    """Refuse scenes too small to segment.

    Raises:
        InputError: a side below ``minimum`` pixels.
    """
    if min(height, width) < minimum:
        raise InputError(
            f"{name} is {width}x{height} pixels; scenes need at least {minimum} pixels on each side "
            f"(the model would see mostly padding)"
        )


def clamp_tile(tile_size: int, height: int, width: int, input_size: int | None = None) -> int:
    """A tile no larger than needed: the scene's longer side, or the model's input size if larger.

    A bigger tile would only add padding (and memory) to every read.
    """
    return max(1, min(int(tile_size), max(height, width, int(input_size or 0))))


def estimate_memory(tile_size: int, batch_size: int, width: int, bytes_per_pixel: int = 3, prefetch: int = 2) -> int:
    """Rough peak memory in bytes of running tiles of ``tile_size`` in batches of ``batch_size``.

    With T the tile side, B the batch and W the scene width: ``40·T²`` for the blending weights
    and stitching temporaries (float64), ``8·T·W`` for the row band, and per tile of a batch
    ``16·T²`` in the model step (float32 input, resized copy, probabilities back at tile size)
    plus ``(prefetch + 1)·bytes_per_pixel·T²`` for tiles read ahead. The model's own
    activations at its input size are not included (they do not depend on the tile size).

    Measured with the demo model on CPU (peak RSS growth, uint8 scenes): T=2048, B=2, W=3000:
    435 MB (estimate 427 MB); T=4096, B=2, W=5000: 1395 MB (1674 MB); T=4096, B=4: 2078 MB
    (2513 MB).
    """
    t2 = int(tile_size) ** 2
    per_tile = (16 + (prefetch + 1) * bytes_per_pixel) * t2
    return 40 * t2 + 8 * int(tile_size) * int(width) + int(batch_size) * per_tile


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


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


def make_grid(height: int, width: int, tile_size: int, overlap: float | str = 0.25) -> TileGrid:
    """Build the tile grid for a scene.

    Args:
        height, width: scene size in pixels (> 0).
        tile_size: tile side in pixels.
        overlap: fraction of the tile in [0, 1), or pixels as ``"64px"``.

    Returns:
        The :class:`TileGrid`.
    """
    if tile_size < 1:
        raise InputError(f"tile_size {tile_size} must be a positive number of pixels")
    ov = overlap_pixels(tile_size, overlap)
    stride = tile_size - ov
    return TileGrid(
        height, width, tile_size, ov, axis_offsets(height, tile_size, stride), axis_offsets(width, tile_size, stride)
    )


def clip_window(window: Window, height: int, width: int) -> Window:
    """The part of ``window`` inside a ``height x width`` scene."""
    col0, row0 = int(window.col_off), int(window.row_off)
    col1 = min(col0 + int(window.width), width)
    row1 = min(row0 + int(window.height), height)
    return Window(col0, row0, col1 - col0, row1 - row0)


def mirror_pad(array: np.ndarray, offset: tuple[int, int], tile_size: int) -> np.ndarray:
    """Place ``array`` at ``offset`` (row, column) in a ``tile_size`` square and mirror it into the rest.

    :func:`pad_to_tile` when ``offset`` is ``(0, 0)``; a one-pixel axis repeats its edge.
    """
    h, w = array.shape[-2:]
    pad = [(0, 0)] * (array.ndim - 2) + [(offset[0], tile_size - h - offset[0]), (offset[1], tile_size - w - offset[1])]
    if all(p == (0, 0) for p in pad):
        return array
    return np.pad(array, pad, mode="reflect" if h > 1 and w > 1 else "edge")


def pad_to_tile(array: np.ndarray, tile_size: int) -> np.ndarray:
    """Pad the last two axes of ``array`` at the bottom/right to ``tile_size`` (mirror padding).

    Mirror (reflect) padding keeps image statistics near the edge; a one-pixel axis is padded
    by repeating its edge.
    """
    return mirror_pad(array, (0, 0), tile_size)
