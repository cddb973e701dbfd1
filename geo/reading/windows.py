"""Windowed reads of model-ready tiles: validity (nodata, masks, NaN), regions read once, the tile reader.

Only windows are ever read.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Sequence

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from sam2unext.geo.reading.bands import apply_stretch, float_bands
from sam2unext.geo.reading.opening import Dataset, close_dataset, read_error
from sam2unext.geo.reading.plan import ReadPlan
from sam2unext.geo.running.tiling import clip_window, pad_to_tile

#: GDAL threads decoding the blocks of one read (GTiff, GDAL >= 3.6).
DECODE_THREADS = "ALL_CPUS"


def read_valid(ds: Dataset, window: Window, bands: Sequence[int]) -> np.ndarray:
    """Boolean validity of ``window``: nodata, alpha band, mask and, in float bands, NaN/±inf excluded.

    Raises:
        InputError: the window cannot be read.
    """
    try:
        masks = ds.read_masks(sorted(set(bands)), window=window)
        valid = np.all(masks > 0, axis=0)
        floats = float_bands(ds, bands)
        if floats:
            valid &= np.all(np.isfinite(ds.read(floats, window=window)), axis=0)
    except RasterioIOError as exc:
        raise read_error(_path_of(ds), window, exc) from None
    return valid


def _path_of(ds: Dataset) -> str:
    parent = getattr(ds, "_sam2unext_parent", None)
    return str((parent or ds).name)


def integer_nodata(ds: Dataset, bands: Sequence[int]) -> tuple[int, ...] | None:
    """Per-band nodata values when a nodata value is the *only* source of invalidity of integer bands.

    Then GDAL's mask of a band is exactly ``data != nodata`` (see :func:`valid_from_nodata`), so
    the mask can be computed from data that is read anyway. None in every other case (alpha
    band, internal mask, float data, a nodata value the type cannot hold).
    """
    values = []
    for b in bands:
        dtype = np.dtype(ds.dtypes[b - 1])
        nd = ds.nodatavals[b - 1]
        if ds.mask_flag_enums[b - 1] != [MaskFlags.nodata] or dtype.kind not in "ui" or nd is None:
            return None
        info = np.iinfo(dtype)
        if not (float(nd).is_integer() and info.min <= nd <= info.max):
            return None
        values.append(int(nd))
    return tuple(values)


def valid_from_nodata(data: np.ndarray, nodata: Sequence[int]) -> np.ndarray:
    """Boolean validity of ``data`` ``[bands, H, W]``: no band equals its nodata value."""
    valid = data[0] != nodata[0]
    for band, nd in zip(data[1:], nodata[1:]):
        valid &= band != nd
    return valid


def region_groups(windows: Sequence[Window]) -> list[list[tuple[int, Window]]]:
    """Group windows into runs that can be read as one region.

    A run is consecutive windows (in the given order) with the same rows whose columns overlap
    or touch the previous one's, left to right; each item is ``(position in windows, window)``.
    """
    groups: list[list[tuple[int, Window]]] = []
    for i, w in enumerate(windows):
        if groups:
            _, last = groups[-1][-1]
            same_rows = (int(w.row_off), int(w.height)) == (int(last.row_off), int(last.height))
            if same_rows and int(last.col_off) <= int(w.col_off) <= int(last.col_off) + int(last.width):
                groups[-1].append((i, w))
                continue
        groups.append([(i, w)])
    return groups


class RegionValidity:
    """The validity of the regions a chunk task read, kept until the chunk's rows are written.

    The tile reads already know which pixels are valid; the rows written to the output need
    the same mask, so it is not read (and decoded) a second time. A pixel that no region
    covered is invalid: every valid pixel of an output chunk lies in some tile that was read
    (tiles are skipped only when they miss the area of interest or hold no valid pixel).
    Thread-safe: lanes add regions while the chunk task takes rows.
    """

    def __init__(self, col_off: int, width: int):
        self.col_off, self.width = col_off, width
        self._pieces: list[tuple[int, int, int, int, np.ndarray | None]] = []  # row, height, col, width, valid
        self._lock = threading.Lock()

    def add(self, region: Window, valid: np.ndarray | None) -> None:
        """Record a region of the plan's grid and its validity (None: every pixel valid)."""
        piece = (int(region.row_off), int(region.height), int(region.col_off), int(region.width), valid)
        with self._lock:
            self._pieces.append(piece)

    def rows(self, row0: int, n: int) -> np.ndarray:
        """Boolean validity of rows ``[row0, row0 + n)`` over the chunk's columns."""
        out = np.zeros((n, self.width), dtype=bool)
        with self._lock:
            pieces = [p for p in self._pieces if p[0] <= row0 and row0 + n <= p[0] + p[1]]
        for r, _, c, w, valid in pieces:
            a, b = max(c, self.col_off), min(c + w, self.col_off + self.width)
            if a >= b:
                continue
            if valid is None:
                out[:, a - self.col_off : b - self.col_off] = True
            else:
                out[:, a - self.col_off : b - self.col_off] |= valid[row0 - r : row0 - r + n, a - c : b - c]
        return out

    def forget_above(self, row: int) -> None:
        """Drop the regions that end at or above scene row ``row`` (their rows are written)."""
        with self._lock:
            self._pieces = [p for p in self._pieces if p[0] + p[1] > row]


class TileReader:
    """Reads model-ready uint8 tiles for a :class:`ReadPlan` through one dataset handle.

    Threads take turns on the handle for the GDAL calls only (band pick, stretch, validity and
    padding run outside the lock). One handle, because GDAL keeps its block cache per handle:
    with a handle per thread, blocks shared by neighbouring tiles were decoded once per handle
    (measured on an 8192² DEFLATE scene: 1.7 CPU-s of reading with two handles, 1.0 with one).
    GDAL decodes the blocks of one region on several threads (``GDAL_NUM_THREADS``).
    Call :meth:`close` when done.
    """

    def __init__(self, plan: ReadPlan, tile_size: int, validity: RegionValidity | None = None):
        self.plan = plan
        self.tile_size = tile_size
        self.validity = validity  # receives the validity of every region read (read once, used twice)
        self._ds = None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def dataset(self):
        """The reader's open dataset, held by this thread for the duration of the ``with`` block."""
        with self._lock:
            if self._ds is None:
                with warnings.catch_warnings(), rasterio.Env(GDAL_NUM_THREADS=DECODE_THREADS):
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    self._ds = self.plan.open()
            yield self._ds

    def read(self, window: Window) -> np.ndarray | None:
        """Read one tile as uint8 ``[C, T, T]``, one channel per plan band (padded past the scene edge).

        Returns:
            The tile, or None when none of its pixels is valid (the tile is skipped).
        """
        return self.read_many([window])[0]

    def read_many(self, windows: Sequence[Window]) -> list[np.ndarray | None]:
        """Read several tiles (e.g. a batch) with one borrowed handle; see :meth:`read`.

        Tiles of one tile row that overlap or touch are read as one region (one GDAL call, each
        block decoded once, the stretch applied once) and returned as views into it; only tiles
        past the scene edge are copied (padded). The values equal those of separate reads.
        """
        out: list[np.ndarray | None] = [None] * len(windows)
        for group in region_groups([self._inner(w) for w in windows]):
            self._read_group(group, out)
        return out

    def _inner(self, window: Window) -> Window:
        return clip_window(window, self.plan.height, self.plan.width)

    def _read_group(self, group: list[tuple[int, Window]], out: list[np.ndarray | None]) -> None:
        """Read the region covering ``group`` (index, in-scene window) and cut its tiles into ``out``."""
        first = group[0][1]
        col0 = int(first.col_off)
        col1 = max(int(w.col_off) + int(w.width) for _, w in group)
        region = Window(col0, int(first.row_off), col1 - col0, int(first.height))
        read = self._read_region(region)
        if read is None:
            return
        data, valid = read
        if self.validity is not None:
            self.validity.add(region, valid)
        for i, w in group:
            cols = slice(int(w.col_off) - col0, int(w.col_off) - col0 + int(w.width))
            if valid is not None and not valid[:, cols].any():
                continue  # no valid pixel: the tile is skipped
            out[i] = pad_to_tile(data[:, :, cols], self.tile_size)

    def _read_region(self, region: Window) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Model-ready uint8 ``[C, H, W]`` of a region of the plan's grid, with its validity.

        Returns:
            (data, valid) where ``valid`` is None when every pixel is valid by construction
            (unmasked scene); None when no pixel of the region is valid (nothing is decoded
            beyond the mask).
        """
        inner = self.plan.source_window(region)
        unique = sorted(set(self.plan.bands))
        valid = None
        try:
            with self.dataset() as ds:
                nodata = integer_nodata(ds, unique) if self.plan.masked and not self.plan.resample else None
                if nodata is None and self.plan.masked:
                    valid = (ds.read_masks(unique, window=inner) > 0).all(axis=0)
                    if not valid.any():
                        return None
                data = ds.read(unique, window=inner)
        except RasterioIOError as exc:
            raise read_error(self.plan.path, inner, exc) from None
        if nodata is not None:  # fast path: validity from the data itself (GDAL would decode it twice)
            valid = valid_from_nodata(data, nodata)
        if self.plan.finite_check:  # a pixel that is NaN/inf in some band is invalid for skipping
            finite = np.isfinite(data).all(axis=0)
            valid = finite if valid is None else valid & finite
        if valid is not None and not valid.any():
            return None
        order = [unique.index(b) for b in self.plan.bands]
        if order != list(range(len(unique))):
            data = data[order]
        return apply_stretch(data, self.plan.stretch), valid

    def close(self) -> None:
        """Close the dataset (a later read opens it again)."""
        with self._lock:
            if self._ds is not None:
                close_dataset(self._ds)
                self._ds = None
