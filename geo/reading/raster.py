"""Open and validate rasters, choose bands, compute the scene stretch, read tile windows.

Everything a tile needs is gathered once per scene into a picklable :class:`ReadPlan`
(path, bands, stretch, optional resampling grid), so the same plan drives threaded reads
in this process and reads on ``dask.distributed`` workers. Only windows are ever read.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeAlias, Union

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from sam2unext.errors import InputError, option
from sam2unext.geo.running.tiling import clip_window, pad_to_tile

Stretch = tuple[tuple[float, float], ...]  # per selected band (min, max)
#: What :meth:`ReadPlan.open` returns: the file, or a resampled view of it.
Dataset: TypeAlias = Union[DatasetReader, WarpedVRT]

#: Percentiles of the automatic stretch for non-uint8 imagery.
DEFAULT_PERCENTILES = (2.0, 98.0)
#: Longest side of the decimated read used for stretch statistics.
STATS_SIDE = 1024
#: GDAL threads decoding the blocks of one read (GTiff, GDAL >= 3.6).
DECODE_THREADS = "ALL_CPUS"


def open_raster(path: str | Path) -> rasterio.io.DatasetReader:
    """Open a raster with rasterio after checking it exists and is not empty.

    Raises:
        InputError: missing file, zero-size file or raster, or not a raster GDAL can read.
    """
    remote = str(path).startswith(("/vsi", "http://", "https://"))
    p: str | Path = str(path) if remote else Path(path)  # Path() would turn "https://" into "https:/"
    if not remote:
        local = Path(path)
        require_input(local)
        if local.is_file() and local.stat().st_size == 0:
            raise InputError(f"input raster {p} is an empty (zero-size) file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(p)
    except RasterioIOError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "unreadable"
        raise InputError(f"input {p} is not a raster GDAL can read ({first})") from None
    if src.width == 0 or src.height == 0 or src.count == 0:
        src.close()
        raise InputError(f"input raster {p} has zero size ({src.width}x{src.height}, {src.count} bands)")
    return src


def require_input(path: Path) -> None:
    """Refuse a local input raster path that does not exist.

    Raises:
        InputError: one line naming the path.
    """
    if not path.exists():
        raise InputError(f"input raster {path} does not exist; check the path")


def is_georeferenced(crs: object, transform: Affine) -> bool:
    """False for a raster with neither CRS nor geotransform (rasterio reports the identity)."""
    return crs is not None or not transform.is_identity


def alpha_band(src: rasterio.io.DatasetReader) -> int | None:
    """1-based index of the band GDAL marks as alpha, or None."""
    for i, ci in enumerate(src.colorinterp, start=1):
        if ci == ColorInterp.alpha:
            return i
    return None


def _rgb_by_colorinterp(src: Dataset) -> tuple[int, int, int] | None:
    """The bands the file declares red, green and blue, or None."""
    interp: dict = {}
    for i, ci in enumerate(src.colorinterp, start=1):
        interp.setdefault(ci, i)
    if all(c in interp for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)):
        return interp[ColorInterp.red], interp[ColorInterp.green], interp[ColorInterp.blue]
    return None


def default_bands(src: rasterio.io.DatasetReader) -> tuple[int, int, int]:
    """The bands used when none are chosen.

    Rules: the bands whose colour interpretation is red, green and blue when the file declares
    them; otherwise the first three non-alpha bands (see :func:`band_choice_warning` for the
    warning given with more than three); one colour band is used as grey x3.
    """
    rgb = _rgb_by_colorinterp(src)
    if rgb is not None:
        return rgb
    alpha = alpha_band(src)
    colour = [i for i in range(1, src.count + 1) if i != alpha]
    if len(colour) >= 3:
        return colour[0], colour[1], colour[2]
    return colour[0], colour[0], colour[0]


def band_label(src: Dataset, band: int) -> str:
    """``"3 (red)"``: a band index with its description or colour interpretation when known."""
    desc = (src.descriptions[band - 1] or "").strip()
    ci = src.colorinterp[band - 1]
    name = desc or (ci.name if ci not in (ColorInterp.undefined, ColorInterp.gray, ColorInterp.grey) else "")
    return f"{band} ({name})" if name else str(band)


def band_choice_warning(src: Dataset, bands_given: object) -> str | None:
    """The warning to give when the bands were picked by position in a scene of more than three.

    None when the user chose the bands, when the file declares red/green/blue, or when it has
    at most three colour bands (plus alpha).
    """
    if bands_given is not None or _rgb_by_colorinterp(src) is not None:
        return None
    alpha = alpha_band(src)
    colour = [i for i in range(1, src.count + 1) if i != alpha]
    if len(colour) <= 3:
        return None
    used = ", ".join(band_label(src, b) for b in default_bands(src))
    named = [d for d in src.descriptions if d]
    how = f"choose others with {option('bands', '4,3,2')}" + (
        f" (or by description: {', '.join(named[:8])})" if named else ""
    )
    return (
        f"{Path(src.name).name} has {len(colour)} bands and no red/green/blue colour interpretation; "
        f"using bands {used} as red, green, blue; {how}"
    )


def resolve_band_names(src: Dataset, bands: Sequence[int | str]) -> tuple[int, ...]:
    """Turn band numbers and names into 1-based band indexes.

    A name matches a band description (case-insensitive, e.g. ``red`` or ``B04``), else a colour
    interpretation (``red``, ``green``, ``blue``, ``alpha`` ...). Numbers are kept as given.

    Raises:
        InputError: a name that matches no band, or matches several.
    """
    out: list[int] = []
    for b in bands:
        if isinstance(b, (int, np.integer)) or (isinstance(b, str) and b.strip().isdigit()):
            out.append(int(b))
            continue
        name = str(b).strip().lower()
        hits = [i for i, d in enumerate(src.descriptions, start=1) if d and d.strip().lower() == name]
        if not hits:
            hits = [i for i, ci in enumerate(src.colorinterp, start=1) if ci.name.lower() == name]
        if len(hits) != 1:
            named = [f"{i}={d}" for i, d in enumerate(src.descriptions, start=1) if d]
            known = f"its band descriptions are {', '.join(named)}" if named else "it has no band descriptions"
            what = "matches no band" if not hits else f"matches bands {', '.join(map(str, hits))}"
            raise InputError(f"band {b!r} {what} of {Path(src.name).name}; {known}; use band numbers (1-based)")
        out.append(hits[0])
    return tuple(out)


def select_bands(
    src: rasterio.io.DatasetReader,
    bands: Sequence[int | str] | int | str | None,
    n_bands: int = 3,
    default: Sequence[int] | None = None,
) -> tuple[int, ...]:
    """Validate a band selection (numbers or descriptions) and return 1-based band indexes.

    An RGB model (``n_bands`` 3) takes 1 or 3 bands and gets three indexes (grey x3 for one);
    a model that takes another count goes to :func:`select_n_bands`.

    Raises:
        InputError: wrong number of bands, an unknown band name, or an index outside ``1..count``.
    """
    if bands is not None:
        if isinstance(bands, (int, str, np.integer)):
            bands = [b for b in str(bands).replace(" ", "").split(",") if b] if isinstance(bands, str) else [bands]
        bands = resolve_band_names(src, list(bands))
    if n_bands != 3:
        return select_n_bands(src, bands, n_bands, default)
    if bands is None:
        return default_bands(src)
    sel = tuple(bands)
    if len(sel) not in (1, 3):
        raise InputError(f"bands {sel} must name 1 or 3 bands (1-based, e.g. 3,2,1)")
    for b in sel:
        if not 1 <= b <= src.count:
            raise InputError(f"band {b} is out of range for {src.name}, which has bands 1..{src.count}")
    return (sel * 3) if len(sel) == 1 else sel


def select_n_bands(
    src: rasterio.io.DatasetReader,
    bands: Sequence[int] | int | None,
    n_bands: int,
    default: Sequence[int] | None = None,
) -> tuple[int, ...]:
    """The ``n_bands`` 1-based bands read for a multispectral model, in channel order.

    Without ``bands``: ``default`` (the bands the model was trained on) when given, else every
    non-alpha band of a scene that has exactly ``n_bands`` of them.

    Raises:
        InputError: a band count other than ``n_bands`` (the message names both counts), or
            an index outside ``1..count``.
    """
    trained = f" (trained on bands {','.join(map(str, default))})" if default else ""
    if bands is None:
        alpha = alpha_band(src)
        colour = tuple(i for i in range(1, src.count + 1) if i != alpha)
        if default:
            sel = tuple(int(b) for b in default)
            if max(sel) > src.count:
                raise InputError(
                    f"{src.name} has {len(colour)} bands but the model takes {n_bands}{trained}; pass "
                    f"{option('bands', ','.join(['B'] * n_bands))} naming {n_bands} bands of this scene"
                )
        elif len(colour) == n_bands:
            sel = colour
        else:
            raise InputError(
                f"{src.name} has {len(colour)} bands but the model takes {n_bands}; pass "
                f"{option('bands', ','.join(['B'] * n_bands))} naming {n_bands} bands of this scene"
            )
    else:
        sel = (bands,) if isinstance(bands, int) else tuple(int(b) for b in bands)
        if len(sel) != n_bands:
            raise InputError(
                f"bands {','.join(map(str, sel))} name {len(sel)} bands but the model takes {n_bands}{trained}; "
                f"give {n_bands} band numbers of {src.name}"
            )
    for b in sel:
        if not 1 <= b <= src.count:
            raise InputError(f"band {b} is out of range for {src.name}, which has bands 1..{src.count}")
    return sel


def rgb_channels_of(bands: Sequence[int], rgb_bands: Sequence[int]) -> tuple[int, int, int]:
    """0-based positions in ``bands`` of the three bands mapped to the pretrained R, G, B kernels.

    Raises:
        InputError: not three different bands, or one that is not among ``bands``.
    """
    rgb = tuple(int(b) for b in rgb_bands)
    listed = ",".join(map(str, bands))
    if len(rgb) != 3 or len(set(rgb)) != 3:
        raise InputError(f"rgb_bands {','.join(map(str, rgb))} must name three different bands, e.g. 4,3,2")
    missing = [b for b in rgb if b not in bands]
    if missing:
        raise InputError(
            f"rgb band {missing[0]} is not among the bands read ({listed}); pick the R, G, B bands from {listed}"
        )
    return tuple(list(bands).index(b) for b in rgb)  # type: ignore[return-value]


@dataclass(frozen=True)
class ReadPlan:
    """Everything needed to read model-ready tiles from one scene (picklable).

    Attributes:
        path: raster path.
        bands: 1-based band indexes, one per model channel (three for RGB).
        stretch: per-band (min, max) mapped to 0..255, or None for uint8 used as is.
        height, width: size of the processing grid (after optional resampling).
        transform: geotransform of the processing grid.
        crs: CRS (WKT) or None.
        resample: True when reading through a resampling (warped) view.
        masked: False when every pixel of the bands is valid: GDAL reports no nodata, alpha
            or mask, and no band is floating point (NaN and ±inf are invalid pixels), so
            validity reads are skipped.
        finite_check: some band is floating point: tiles whose pixels are all NaN/inf are
            skipped (uint8 scenes never pay for this check).
        offset: (row, column) of this grid's origin in the opened dataset (an area of interest).
        rgb_channels: 0-based positions in ``bands`` of the bands mapped to the pretrained
            R, G, B kernels (None: not given).
    """

    path: str
    bands: tuple[int, ...]
    stretch: Stretch | None
    height: int
    width: int
    transform: Affine
    crs: str | None
    resample: bool = False
    masked: bool = True
    offset: tuple[int, int] = (0, 0)
    rgb_channels: tuple[int, int, int] | None = None
    finite_check: bool = False

    def source_window(self, window: Window) -> Window:
        """``window`` of this plan's grid as a window of the dataset :meth:`open` returns."""
        if self.offset == (0, 0):
            return window
        return Window(window.col_off + self.offset[1], window.row_off + self.offset[0], window.width, window.height)

    def within(self, window: Window) -> ReadPlan:
        """The plan of a sub-window of this grid (an area of interest): its size, transform and offset."""
        row0, col0 = int(window.row_off), int(window.col_off)
        return replace(
            self,
            height=int(window.height),
            width=int(window.width),
            transform=self.transform @ Affine.translation(col0, row0),
            offset=(self.offset[0] + row0, self.offset[1] + col0),
            masked=True,
        )

    def open(self):
        """Open a dataset for this plan: the file, or a resampled view of it.

        Close it with :func:`close_dataset` (which also closes the file under a view).
        """
        src = open_raster(self.path)
        if not self.resample:
            return src
        vrt = resampled_view(src, self.transform, self.height, self.width)
        vrt._sam2unext_parent = src  # keep the parent open as long as the view
        return vrt


def resampled_view(src: DatasetReader, transform: Affine, height: int, width: int) -> WarpedVRT:
    """A bilinear resampling view of ``src`` on the grid ``transform`` x ``height`` x ``width`` (same CRS)."""
    return WarpedVRT(src, crs=src.crs, transform=transform, width=width, height=height, resampling=Resampling.bilinear)


def close_dataset(ds: Dataset) -> None:
    """Close a dataset from :meth:`ReadPlan.open` and, for a resampled view, its file."""
    parent = getattr(ds, "_sam2unext_parent", None)
    ds.close()
    if parent is not None:
        parent.close()


def resampled_grid(src: Dataset, resolution: float) -> tuple[Affine, int, int]:
    """Grid with pixel size ``resolution`` (map units) covering the same area as ``src``.

    Raises:
        InputError: non-positive resolution or a raster without CRS.
    """
    if resolution <= 0:
        raise InputError(f"resolution {resolution} must be a positive pixel size in map units")
    if src.crs is None:
        raise InputError(f"{src.name} has no CRS, so --resolution cannot be applied; drop it")
    t = src.transform
    res_x = float(np.hypot(t.a, t.d))
    res_y = float(np.hypot(t.b, t.e))
    width = max(1, int(round(src.width * res_x / resolution)))
    height = max(1, int(round(src.height * res_y / resolution)))
    new_t = t @ Affine.scale(src.width / width, src.height / height)
    return new_t, height, width


def compute_stretch(
    src: Dataset,
    bands: Sequence[int],
    stretch: Sequence[float] | Sequence[Sequence[float]] | None = None,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
) -> Stretch | None:
    """The scene-wide stretch of the selected bands to 0..255.

    Args:
        src: open dataset.
        bands: 1-based bands (any count).
        stretch: None (uint8 as is, else per-band percentiles from a decimated read, overviews
            used when present), one ``(min, max)`` for all bands, or one pair per band.
        percentiles: low/high percentiles of the automatic stretch.

    Returns:
        Per-band ``(min, max)``, or None when the data are used unchanged.

    Raises:
        InputError: malformed ``stretch``.
    """
    if stretch is not None:
        pairs: list[Any] = list(stretch)  # user input, checked below
        if len(pairs) == 2 and all(np.isscalar(v) for v in pairs):
            pairs = [tuple(pairs)] * len(bands)
        if len(pairs) != len(bands) or any(len(p) != 2 or float(p[1]) <= float(p[0]) for p in pairs):
            raise InputError(
                f"stretch {stretch!r} must be (min, max) with max > min, or one pair per band ({len(bands)} bands)"
            )
        return tuple((float(a), float(b)) for a, b in pairs)
    if all(src.dtypes[b - 1] == "uint8" for b in bands):
        return None
    scale = max(src.height, src.width) / STATS_SIDE
    shape = (max(1, int(src.height / scale)), max(1, int(src.width / scale))) if scale > 1 else (src.height, src.width)
    out = []
    unique = sorted(set(bands))
    data = src.read(unique, out_shape=(len(unique), *shape), masked=True, resampling=Resampling.nearest)
    valid_all = ~np.ma.getmaskarray(data).any(axis=0)
    for b in bands:
        values = np.asarray(data[unique.index(b)])[valid_all]
        values = values[np.isfinite(values)]
        if values.size == 0:
            out.append((0.0, 1.0))
            continue
        lo, hi = np.percentile(values.astype(np.float64), percentiles)
        if hi <= lo:
            hi = lo + 1.0
        out.append((float(lo), float(hi)))
    return tuple(out)


def apply_stretch(data: np.ndarray, stretch: Stretch | None) -> np.ndarray:
    """Map ``[C, H, W]`` band data to uint8 with the scene stretch (rounded, clipped), any C."""
    if stretch is None:
        return data.astype(np.uint8, copy=False)
    out = np.empty(data.shape, dtype=np.uint8)
    for i, (lo, hi) in enumerate(stretch):
        band = (data[i].astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
        np.rint(band, out=band)
        np.clip(band, 0, 255, out=band)
        band[~np.isfinite(band)] = 0
        out[i] = band
    return out


def float_bands(ds: Dataset, bands: Sequence[int]) -> list[int]:
    """The selected bands with a floating-point type (the only ones that can hold NaN/inf)."""
    return sorted(b for b in set(bands) if np.dtype(ds.dtypes[b - 1]).kind in "fc")


def read_error(path: str | Path, window: Window, exc: Exception) -> InputError:
    """A one-line :class:`InputError` for a failed read of ``window`` of ``path``."""
    detail = exc.__cause__ or exc  # rasterio's own message only says "see previous exception"
    first = " ".join(str(detail).split()) or type(exc).__name__
    return InputError(
        f"cannot read {path} at window col {int(window.col_off)}, row {int(window.row_off)}, "
        f"{int(window.width)}x{int(window.height)} px ({first[:200]}); the file may be truncated or corrupt"
    )


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


def check_readable(src: Dataset, bands: Sequence[int]) -> None:
    """Read the first and the last block of every band used, so a truncated file fails early.

    Raises:
        InputError: one line naming the file and the window that cannot be read.
    """
    for b in sorted(set(bands)):
        bh, bw = src.block_shapes[b - 1]
        last_row = (src.height - 1) // bh * bh
        last_col = (src.width - 1) // bw * bw
        for window in (
            Window(0, 0, min(bw, src.width), min(bh, src.height)),
            Window(last_col, last_row, src.width - last_col, src.height - last_row),
        ):
            try:
                src.read(b, window=window)
            except RasterioIOError as exc:
                raise read_error(src.name, window, exc) from None


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


def make_plan(
    path: str | Path,
    *,
    bands: Sequence[int | str] | int | str | None = None,
    stretch: Sequence[float] | Sequence[Sequence[float]] | None = None,
    resolution: float | None = None,
    n_bands: int = 3,
    default_bands: Sequence[int] | None = None,
    rgb_bands: Sequence[int] | None = None,
    warn: Callable[[str], None] | None = None,
) -> ReadPlan:
    """Open, validate and summarise a scene into a :class:`ReadPlan`.

    The first and last blocks of every band used are read, so a truncated or corrupt file is
    refused here, before any model is loaded.

    Args:
        path: the raster.
        bands: 1-based bands or band descriptions (None: the default choice, see :func:`select_bands`).
        stretch: see :func:`compute_stretch`.
        resolution: resample to this pixel size (map units).
        n_bands: bands the model takes (3 for RGB).
        default_bands: bands used when ``bands`` is None and ``n_bands`` is not 3 (the
            bands a multispectral model was trained on).
        rgb_bands: which of the bands carry the pretrained R, G, B kernels (stored as
            ``rgb_channels``).
        warn: receives warnings that do not stop the run (bands picked by position in a
            multispectral scene).

    Raises:
        InputError: unreadable input, bad bands (a count other than ``n_bands``), bad
            rgb bands, bad stretch or resolution.
    """
    with open_raster(path) as src:
        sel = select_bands(src, bands, n_bands, default_bands)
        rgb_channels = rgb_channels_of(sel, rgb_bands) if rgb_bands is not None else None
        check_readable(src, sel)
        note = band_choice_warning(src, bands) if n_bands == 3 else None
        if note and warn is not None:
            warn(note)
        if resolution:
            transform, height, width = resampled_grid(src, float(resolution))
        else:
            transform, height, width = src.transform, src.height, src.width
        stats_src = src
        vrt = None
        if resolution:
            vrt = resampled_view(src, transform, height, width)
            stats_src = vrt
        try:
            st = compute_stretch(stats_src, sel, stretch)
        except RasterioIOError as exc:
            raise read_error(path, Window(0, 0, src.width, src.height), exc) from None
        finally:
            if vrt is not None:
                vrt.close()
        crs = src.crs.to_wkt() if src.crs else None
        finite_check = bool(float_bands(src, sel))
        masked = (
            bool(resolution) or finite_check or any(src.mask_flag_enums[b - 1] != [MaskFlags.all_valid] for b in sel)
        )
        full = str(Path(path).resolve()) if Path(path).exists() else str(path)  # workers may run elsewhere
        return ReadPlan(
            full,
            sel,
            st,
            height,
            width,
            transform,
            crs,
            bool(resolution),
            masked,
            rgb_channels=rgb_channels,
            finite_check=finite_check,
        )


def band_statistics(plan: ReadPlan) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Per-channel mean and standard deviation of a scene's model input (stretched, in [0, 1]).

    Read from a decimated view (at most :data:`STATS_SIDE` px a side) of the valid pixels,
    after the plan's stretch: the statistics a model normalizes its non-RGB bands with.
    None when the scene has no valid pixel.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        ds = plan.open()
    try:
        scale = max(plan.height, plan.width) / STATS_SIDE
        shape = (
            (max(1, int(plan.height / scale)), max(1, int(plan.width / scale)))
            if scale > 1
            else (plan.height, plan.width)
        )
        unique = sorted(set(plan.bands))
        data = ds.read(unique, out_shape=(len(unique), *shape), masked=True, resampling=Resampling.nearest)
    finally:
        close_dataset(ds)
    valid = ~np.ma.getmaskarray(data).any(axis=0)
    raw = np.asarray(data)[[unique.index(b) for b in plan.bands]]
    values = apply_stretch(raw, plan.stretch).astype(np.float64)[:, valid] / 255.0
    if values.shape[1] == 0:
        return None
    return tuple(float(v) for v in values.mean(axis=1)), tuple(float(v) for v in values.std(axis=1))
