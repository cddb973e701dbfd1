"""A dask-backed raster read window by window: :class:`ArraySource` (picklable) and its handle :class:`ArrayDataset`.

A DataArray as odc-stac or stackstac build it from a STAC search (continent-sized, loaded lazily
from object storage) is never written whole anywhere: each read computes only the dask chunks
under its window. The handle answers the calls the readers make of a rasterio dataset (size,
bands, types, nodata, masks, colour interpretation, block shape, ``read``, ``read_masks``) with
what GDAL answers for the GeoTIFF that rioxarray's ``to_raster`` writes of the same array: the
same pixels, GDAL's masks (its nodata comparison, the alpha band) and GDAL's pixel picks for a
decimated nearest-neighbour read. So a scene gives the same bits read either way.

The source pickles with its dask graph, never its pixels: a ``dask.distributed`` worker that
receives a chunk task computes its own windows from the graph.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

#: Bytes of computed dask blocks one open handle keeps (least recently used dropped first), so
#: the blocks that neighbouring tiles share are computed once per chunk task, as GDAL's block
#: cache decodes a file's blocks once.
ARRAY_CACHE_BYTES = 256 * 2**20

#: GDAL's epsilon on source pixel positions of a decimated read (``GDALRasterBand::IRasterIO``).
_GDAL_EPS = 1e-10

#: The mask kinds a handle reproduces: none, a nodata value per band, an alpha band (uint8).
SUPPORTED_MASKS = ((MaskFlags.all_valid,), (MaskFlags.nodata,), (MaskFlags.per_dataset, MaskFlags.alpha))


@dataclass(frozen=True, eq=False)
class ArraySource:
    """A dask array ``[band, y, x]`` and the header of the GeoTIFF it stands for (picklable).

    Attributes:
        name: the scene's name in messages.
        data: the pixels as the GeoTIFF would hold them (its data type, CF-encoded: nodata
            written back where a masked array holds NaN, scale and offset undone).
        transform, crs: the grid (the CRS as GDAL reads it back from a GeoTIFF).
        dtypes, nodatavals, descriptions, colorinterp, mask_flag_enums: per band, as rasterio
            reports them for that GeoTIFF.
        token: the dask name of the user's array: equal for the same graph built again.
    """

    name: str
    data: Any
    transform: Affine
    crs: CRS | None
    dtypes: tuple[str, ...]
    nodatavals: tuple[float | None, ...]
    descriptions: tuple[str | None, ...]
    colorinterp: tuple[ColorInterp, ...]
    mask_flag_enums: tuple[tuple[MaskFlags, ...], ...]
    token: str

    @property
    def height(self) -> int:
        return int(self.data.shape[1])

    @property
    def width(self) -> int:
        return int(self.data.shape[2])

    @property
    def count(self) -> int:
        return int(self.data.shape[0])

    def open(self) -> ArrayDataset:
        """A new handle (its own block cache); close it when done."""
        return ArrayDataset(self)

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the array for a resume: its dask graph's name, shape and header.

        No pixel is computed. The graph's name is dask's token of how the array was built
        (for ``rioxarray.open_rasterio(path, chunks=...)``: the file, its modification time and
        the chunks), the same in a new process; an array rebuilt differently resumes nothing.
        """
        return {
            "array": {"dask_name": self.token, "shape": [self.count, self.height, self.width]},
            "header": {
                "width": self.width,
                "height": self.height,
                "count": self.count,
                "dtypes": list(self.dtypes),
                "nodata": None if self.nodatavals[0] is None else repr(self.nodatavals[0]),
                "crs": self.crs.to_wkt() if self.crs else None,
                "transform": list(self.transform)[:6],
            },
        }


def nearest_rows(n: int, size: int, offset: float = 0.0, span: float | None = None) -> np.ndarray:
    """The rows GDAL picks for ``n`` output rows of a nearest-neighbour read of ``span`` rows from ``offset``."""
    inc = (size if span is None else span) / n
    pos = (np.arange(n) + 0.5) * inc + offset + _GDAL_EPS
    return np.minimum(np.maximum(0.0, pos), size - 1).astype(np.int64)


def nearest_cols(n: int, size: int, offset: float = 0.0, span: float | None = None) -> np.ndarray:
    """The columns GDAL picks for ``n`` output columns (it steps along a row by repeated addition)."""
    inc = (size if span is None else span) / n
    start = 0.5 * inc + offset + _GDAL_EPS
    if float(int(inc)) == inc:  # a whole-number step: integer arithmetic
        return np.minimum(int(start) + int(inc) * np.arange(n), size - 1).astype(np.int64)
    pos = np.add.accumulate(np.r_[start, np.full(n - 1, inc)])  # sequential sums, as the C loop
    return np.minimum(np.maximum(0.0, pos), size - 1).astype(np.int64)


def nodata_mask(band: np.ndarray, nodata: float) -> np.ndarray:
    """GDAL's nodata mask of one band: 0 where a pixel is nodata, else 255.

    Integers compare exactly; floating point as ``GDALNoDataMaskBand`` does: NaN pixels when
    the nodata value is NaN, else ``ARE_REAL_EQUAL`` (equal, or within 2 float epsilons of
    the pair's sum), in float32 for bands of up to 32 bits and in float64 above.
    """
    if band.dtype.kind in "uib":
        invalid = band == band.dtype.type(nodata)
    else:
        work = np.float32 if band.dtype.itemsize <= 4 else np.float64
        values, nd = band.astype(work, copy=False), work(nodata)
        if np.isnan(nd):
            invalid = np.isnan(values)
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                near = np.abs(values - nd) < work(np.finfo(np.float32).eps) * np.abs(values + nd) * work(2)
            invalid = (values == nd) | near
    return np.where(invalid, np.uint8(0), np.uint8(255))


class ArrayDataset:
    """An open :class:`ArraySource`: rasterio's reading calls, each window computed from the dask graph.

    Reads of windows go through a cache of whole dask blocks (per band, at most
    :data:`ARRAY_CACHE_BYTES`), so a mask read followed by the data read of the same window,
    or neighbouring tiles, compute a block once. Thread-safe.
    """

    def __init__(self, source: ArraySource, cache_bytes: int = ARRAY_CACHE_BYTES):
        self.source = source
        self.closed = False
        self._limit = cache_bytes
        self._cache: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        chunks = source.data.chunks
        self._rows = [int(v) for v in np.cumsum((0, *chunks[1]))]
        self._cols = [int(v) for v in np.cumsum((0, *chunks[2]))]

    # ------------------------------------------------------------------ header (rasterio's names)
    name = property(lambda self: self.source.name)
    width = property(lambda self: self.source.width)
    height = property(lambda self: self.source.height)
    count = property(lambda self: self.source.count)
    transform = property(lambda self: self.source.transform)
    crs = property(lambda self: self.source.crs)
    dtypes = property(lambda self: self.source.dtypes)
    nodatavals = property(lambda self: self.source.nodatavals)
    nodata = property(lambda self: self.source.nodatavals[0])
    descriptions = property(lambda self: self.source.descriptions)
    colorinterp = property(lambda self: self.source.colorinterp)

    @property
    def mask_flag_enums(self) -> tuple[list[MaskFlags], ...]:
        return tuple(list(f) for f in self.source.mask_flag_enums)

    @property
    def block_shapes(self) -> list[tuple[int, int]]:
        """The dask chunk shape (first block) of every band."""
        return [(self._rows[1], self._cols[1])] * self.count

    # ------------------------------------------------------------------ reads
    def read(
        self,
        indexes: int | Sequence[int] | None = None,
        window: Window | None = None,
        out_shape: Sequence[int] | None = None,
        masked: bool = False,
        resampling: Resampling = Resampling.nearest,
    ) -> np.ndarray:
        """Pixels of bands ``indexes`` (1-based; an int gives one 2-D band) in ``window``, as rasterio reads them.

        ``out_shape`` smaller than the window: GDAL's nearest-neighbour picks (no other
        resampling). ``masked``: a masked array, masked where :meth:`read_masks` is 0.
        """
        bands, single = _bands(indexes, self.count)
        data = self._pixels(bands, window, out_shape, resampling)
        if masked:
            data = np.ma.array(data, mask=self._masks(bands, window, out_shape, resampling) == 0)
        return data[0] if single else data

    def read_masks(
        self,
        indexes: int | Sequence[int] | None = None,
        window: Window | None = None,
        out_shape: Sequence[int] | None = None,
        resampling: Resampling = Resampling.nearest,
    ) -> np.ndarray:
        """GDAL's validity masks of bands ``indexes``: uint8, 0 invalid (nodata, alpha 0), 255 valid."""
        bands, single = _bands(indexes, self.count)
        masks = self._masks(bands, window, out_shape, resampling)
        return masks[0] if single else masks

    def _masks(
        self, bands: list[int], window: Window | None, out_shape: Sequence[int] | None, resampling: Resampling
    ) -> np.ndarray:
        flags = [self.source.mask_flag_enums[b - 1] for b in bands]
        alpha = next((i for i, ci in enumerate(self.colorinterp, start=1) if ci == ColorInterp.alpha), None)
        need = sorted({b for b, f in zip(bands, flags) if MaskFlags.nodata in f})
        if alpha is not None and any(MaskFlags.alpha in f for f in flags):
            need = sorted({*need, alpha})
        pixels = dict(zip(need, self._pixels(need, window, out_shape, resampling))) if need else {}
        h, w = self._out_size(window, out_shape)
        out = np.empty((len(bands), h, w), dtype=np.uint8)
        for k, (b, f) in enumerate(zip(bands, flags)):
            if f == (MaskFlags.all_valid,):
                out[k] = 255
            elif MaskFlags.nodata in f:
                nd = self.nodatavals[b - 1]
                assert nd is not None, "a nodata mask without a nodata value"
                out[k] = nodata_mask(pixels[b], nd)
            elif MaskFlags.alpha in f and alpha is not None:
                out[k] = pixels[alpha]  # a uint8 alpha band is its own mask
            else:
                raise ValueError(f"{self.name}: mask flags {f} are not read from an array")
        return out

    def _out_size(self, window: Window | None, out_shape: Sequence[int] | None) -> tuple[int, int]:
        if out_shape is not None:
            return int(out_shape[-2]), int(out_shape[-1])
        if window is None:
            return self.height, self.width
        return int(window.height), int(window.width)

    def _pixels(
        self, bands: list[int], window: Window | None, out_shape: Sequence[int] | None, resampling: Resampling
    ) -> np.ndarray:
        """``[len(bands), h, w]`` in the file's type: a window (block cache), or GDAL's decimated picks."""
        r0, c0 = (0, 0) if window is None else (int(window.row_off), int(window.col_off))
        wh, ww = (self.height, self.width) if window is None else (int(window.height), int(window.width))
        h, w = self._out_size(window, out_shape)
        if (h, w) == (wh, ww):
            return self._window(bands, r0, r0 + wh, c0, c0 + ww)
        if resampling != Resampling.nearest:
            raise ValueError(f"{self.name}: only nearest-neighbour decimated reads, not {resampling.name}")
        rows = nearest_rows(h, self.height, r0, wh)
        cols = nearest_cols(w, self.width, c0, ww)
        picked = self.source.data[[b - 1 for b in bands]][:, rows][:, :, cols]
        (out,) = _compute(picked)
        return np.asarray(out)

    def _window(self, bands: list[int], r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Rows ``[r0, r1)`` x columns ``[c0, c1)`` of ``bands``, assembled from whole cached blocks."""
        ys = range(bisect_right(self._rows, r0) - 1, bisect_left(self._rows, r1))
        xs = range(bisect_right(self._cols, c0) - 1, bisect_left(self._cols, c1))
        blocks = self._blocks(bands, [(i, j) for i in ys for j in xs])
        out = np.empty((len(bands), r1 - r0, c1 - c0), dtype=self.source.data.dtype)
        for k, b in enumerate(bands):
            for i in ys:
                a0, a1 = max(r0, self._rows[i]), min(r1, self._rows[i + 1])
                for j in xs:
                    b0, b1 = max(c0, self._cols[j]), min(c1, self._cols[j + 1])
                    block = blocks[b, i, j]
                    out[k, a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = block[
                        a0 - self._rows[i] : a1 - self._rows[i], b0 - self._cols[j] : b1 - self._cols[j]
                    ]
        return out

    def _blocks(self, bands: list[int], blocks: list[tuple[int, int]]) -> dict[tuple[int, int, int], np.ndarray]:
        """Whole dask blocks ``(band, block row, block column)``: from the cache, the others computed at once."""
        found: dict[tuple[int, int, int], np.ndarray] = {}
        missing: dict[tuple[int, int], list[int]] = {}
        with self._lock:
            for i, j in blocks:
                for b in dict.fromkeys(bands):
                    key = (b, i, j)
                    if key in self._cache:
                        self._cache.move_to_end(key)
                        found[key] = self._cache[key]
                    else:
                        missing.setdefault((i, j), []).append(b)
        if not missing:
            return found
        data = self.source.data
        parts = [
            data[[b - 1 for b in bs], self._rows[i] : self._rows[i + 1], self._cols[j] : self._cols[j + 1]]
            for (i, j), bs in missing.items()
        ]
        for ((i, j), bs), part in zip(missing.items(), _compute(*parts)):
            for k, b in enumerate(bs):
                found[b, i, j] = np.asarray(part[k])
        with self._lock:
            for (i, j), bs in missing.items():
                for b in bs:
                    self._remember((b, i, j), found[b, i, j])
        return found

    def _remember(self, key: tuple[int, int, int], block: np.ndarray) -> None:
        if key in self._cache:
            return
        self._cache[key] = block
        self._bytes += block.nbytes
        while self._bytes > self._limit and self._cache:
            _, old = self._cache.popitem(last=False)
            self._bytes -= old.nbytes

    def close(self) -> None:
        """Drop the cached blocks."""
        with self._lock:
            self._cache.clear()
            self._bytes = 0
            self.closed = True

    def __enter__(self) -> ArrayDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bands(indexes: int | Sequence[int] | None, count: int) -> tuple[list[int], bool]:
    if indexes is None:
        return list(range(1, count + 1)), False
    if isinstance(indexes, (int, np.integer)):
        return [int(indexes)], True
    return [int(b) for b in indexes], False


def _compute(*arrays: Any) -> tuple[Any, ...]:
    """Compute dask arrays on local threads (also inside a ``dask.distributed`` task: no task is
    sent back to the cluster). An I/O error becomes rasterio's, which the readers report in one
    line naming the scene and the window."""
    import dask

    try:
        return dask.compute(*arrays, scheduler="threads")
    except RasterioIOError:
        raise
    except OSError as exc:
        raise RasterioIOError(str(exc) or type(exc).__name__) from exc
