"""The overview pyramid of the probability raster, built chunk by chunk into the run store.

Level ``k`` (``k = 1 .. K``) halves level ``k - 1`` (level 0 is the raster): each pixel is the
mean of the valid pixels of its 2 x 2 block, valid where any of them is; ``uint8`` rounds half
up (GDAL's ``average`` for bytes), ``float32`` skips NaN. A level is ``ceil(n / 2)`` pixels on
each side (GDAL's overview size for power-of-two factors), and there are as many levels as the
COG driver makes (:func:`overview_factors`).

A 2 x 2 block of level ``k`` pixels starts at a multiple of ``2**k`` scene pixels, so a chunk
whose side (and so its origin) is a multiple of ``2**k`` computes levels ``1 .. k`` from its own
pixels alone: the pyramid does not depend on the chunk size, the workers or the order.
:func:`chunk_levels` says how many a chunk makes (its second step, :func:`write_chunk_pyramid`);
the client makes the few coarse levels left from the last of them (:func:`finish_pyramid`,
``1 / 4**k`` of the scene), so the final COG only copies what the store holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sam2unext.geo.writing.store import RunStore

#: Block side of the COG; overviews go down to one block.
BLOCK = 512
#: A chunk makes level ``k`` only while its side at that level is at least this (smaller Zarr
#: chunks would be many tiny objects on object storage); coarser levels are the client's.
MIN_CHUNK_LEVEL_SIDE = 64
#: Output side of one block the client computes at a time (a ``2 x`` larger block is read).
CLIENT_BLOCK = 1024


def overview_factors(height: int, width: int, block: int = BLOCK) -> list[int]:
    """Overview decimation factors 2, 4, ... until both sides fit in one ``block``.

    The same number of levels as GDAL's COG driver with ``OVERVIEWS=AUTO`` (sides halved,
    rounded down, until both fit in a block).
    """
    factors: list[int] = []
    h, w = height, width
    while h > block or w > block:
        h, w = h // 2, w // 2
        factors.append(2 ** (len(factors) + 1))
    return factors


def level_count(height: int, width: int) -> int:
    """Number of overview levels of a ``height x width`` raster (as GDAL's COG driver makes)."""
    return len(overview_factors(height, width))


def level_shape(height: int, width: int, level: int) -> tuple[int, int]:
    """Rows and columns of overview ``level`` (0: the raster itself)."""
    f = 2**level
    return -(-height // f), -(-width // f)


def chunk_levels(chunk_size: int, height: int, width: int) -> int:
    """The levels a chunk of side ``chunk_size`` computes itself: ``2**k`` divides its side, at most all."""
    total, k = level_count(height, width), 0
    while k < total and chunk_size % 2 ** (k + 1) == 0 and chunk_size >> (k + 1) >= MIN_CHUNK_LEVEL_SIDE:
        k += 1
    return k


def halve(values: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """One level down: 2 x 2 means of ``values`` (uint8 or float32) and the 0/255 ``valid`` of the result.

    ``valid``: uint8 255/0 per pixel (None: every pixel valid; float32 marks invalid pixels NaN).
    Invalid uint8 pixels hold 0, as the store keeps them.
    """
    h, w = values.shape
    h2, w2 = -(-h // 2), -(-w // 2)
    if values.dtype == np.float32:
        return _halve_float(values, h2, w2), None
    sums = _block_sums(values, h2, w2)
    if valid is None and h % 2 == 0 and w % 2 == 0:  # every block has 4 pixels: round half up
        sums += 2
        sums >>= 2
        return sums.astype(np.uint8), None
    counts = _block_sums(np.ones((h, w), np.uint8) if valid is None else (valid != 0).view(np.uint8), h2, w2)
    # round half up: floor(s / n + 1/2) = (2 s + n) // (2 n); 0 where no pixel is valid
    out = ((2 * sums + counts) // np.maximum(2 * counts, 1)).astype(np.uint8)
    return out, (None if valid is None else np.where(counts > 0, 255, 0).astype(np.uint8))


def _block_sums(values: np.ndarray, h2: int, w2: int) -> np.ndarray:
    """uint16 sums of the 2 x 2 blocks of a uint8 array (zero-padded to ``2 h2 x 2 w2``), by strided adds."""
    h, w = values.shape
    if (h, w) == (2 * h2, 2 * w2):
        padded = values
    else:
        padded = np.zeros((2 * h2, 2 * w2), np.uint8)
        padded[:h, :w] = values
    sums = padded[0::2, 0::2].astype(np.uint16)
    sums += padded[1::2, 0::2]
    sums += padded[0::2, 1::2]
    sums += padded[1::2, 1::2]
    return sums


def _halve_float(values: np.ndarray, h2: int, w2: int) -> np.ndarray:
    h, w = values.shape
    padded = np.full((h2 * 2, w2 * 2), np.nan, np.float64)
    padded[:h, :w] = values
    blocks = padded.reshape(h2, 2, w2, 2)
    ok = ~np.isnan(blocks)
    counts = ok.sum(axis=(1, 3))
    sums = np.where(ok, blocks, 0.0).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan).astype(np.float32)


def write_chunk_pyramid(store: RunStore, row0: int, col0: int, height: int, width: int, levels: int) -> None:
    """Levels ``1 .. levels`` of the finished chunk at ``(row0, col0)`` (read back from the store) into the store."""
    if levels <= 0:
        return
    values, valid = store.read(row0, col0, height, width)
    for k in range(1, levels + 1):
        values, valid = halve(values, valid)
        store.write_level(k, row0 >> k, col0 >> k, values, valid)


def finish_pyramid(
    store: RunStore, height: int, width: int, first: int, on_level: Callable[[int], None] | None = None
) -> None:
    """The levels after ``first`` (the last one the chunks made), each from the one above, block by block."""
    for k in range(first + 1, level_count(height, width) + 1):
        rows, cols = level_shape(height, width, k)
        above_rows, above_cols = level_shape(height, width, k - 1)
        for r in range(0, rows, CLIENT_BLOCK):
            for c in range(0, cols, CLIENT_BLOCK):
                r2, c2 = 2 * r, 2 * c
                n_rows = min(2 * CLIENT_BLOCK, above_rows - r2)
                n_cols = min(2 * CLIENT_BLOCK, above_cols - c2)
                values, valid = store.read_level(k - 1, r2, c2, n_rows, n_cols)
                store.write_level(k, r, c, *halve(values, valid))
        if on_level is not None:
            on_level(k)
