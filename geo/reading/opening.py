"""Open and validate rasters: existence, readability, resampled views, one-line read errors."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias, Union

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from sam2unext.errors import InputError
from sam2unext.geo.reading.array_raster import ArrayDataset, ArraySource
from sam2unext.geo.storage import configure_gdal, is_url, storage_error

#: What :meth:`ReadPlan.open` returns: the file, a resampled view of it, or a dask-backed array.
Dataset: TypeAlias = Union[DatasetReader, WarpedVRT, ArrayDataset]


def open_raster(path: str | Path) -> rasterio.io.DatasetReader:
    """Open a raster with rasterio after checking it exists and is not empty.

    ``s3://``, ``gs://`` and ``https://`` URLs are read through GDAL's virtual file systems
    (windowed range requests), configured from the AWS_*/GOOGLE_* variables (:func:`configure_gdal`).

    Raises:
        InputError: missing file or object, zero-size file or raster, not a raster GDAL can
            read; for a URL also a missing bucket, no credentials or denied access.
    """
    remote = is_url(path) or str(path).startswith("/vsi")
    p: str | Path = str(path) if remote else Path(path)  # Path() would turn "https://" into "https:/"
    if remote:
        configure_gdal()
    else:
        local = Path(path)
        require_input(local)
        if local.is_file() and local.stat().st_size == 0:
            raise InputError(f"input raster {p} is an empty (zero-size) file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(p)
    except RasterioIOError as exc:
        if is_url(path):
            err = storage_error(str(path), exc)
            if err is not None:
                raise err from None
        first = str(exc).splitlines()[0] if str(exc) else "unreadable"
        raise InputError(f"input {p} is not a raster GDAL can read ({first})") from None
    if src.width == 0 or src.height == 0 or src.count == 0:
        src.close()
        raise InputError(f"input raster {p} has zero size ({src.width}x{src.height}, {src.count} bands)")
    return src


def open_source(source: str | Path | ArraySource) -> DatasetReader | ArrayDataset:
    """Open a scene: a raster path with :func:`open_raster`, a dask-backed array as a new handle.

    Raises:
        InputError: as :func:`open_raster`.
    """
    if isinstance(source, ArraySource):
        return source.open()
    return open_raster(source)


def require_input(path: str | Path) -> None:
    """Refuse a local input raster path that does not exist (a URL is checked when it is opened).

    Raises:
        InputError: one line naming the path.
    """
    if is_url(path):
        return
    if not Path(path).exists():
        raise InputError(f"input raster {path} does not exist; check the path")


def is_georeferenced(crs: object, transform: Affine) -> bool:
    """False for a raster with neither CRS nor geotransform (rasterio reports the identity)."""
    return crs is not None or not transform.is_identity


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


def resampled_view(src: DatasetReader, transform: Affine, height: int, width: int) -> WarpedVRT:
    """A bilinear resampling view of ``src`` on the grid ``transform`` x ``height`` x ``width`` (same CRS)."""
    return WarpedVRT(src, crs=src.crs, transform=transform, width=width, height=height, resampling=Resampling.bilinear)


def close_dataset(ds: Dataset) -> None:
    """Close a dataset from :meth:`ReadPlan.open` and, for a resampled view, its file."""
    parent = getattr(ds, "_sam2unext_parent", None)
    ds.close()
    if parent is not None:
        parent.close()


def check_readable(src: Dataset, bands: Sequence[int]) -> None:
    """Read the first and the last block of the bands used, so a truncated file fails early.

    The bands are read together (a dask-backed array computes each block once), with the
    block shape of the first band used.

    Raises:
        InputError: one line naming the file and the window that cannot be read.
    """
    unique = sorted(set(bands))
    bh, bw = src.block_shapes[unique[0] - 1]
    last_row = (src.height - 1) // bh * bh
    last_col = (src.width - 1) // bw * bw
    for window in (
        Window(0, 0, min(bw, src.width), min(bh, src.height)),
        Window(last_col, last_row, src.width - last_col, src.height - last_row),
    ):
        try:
            src.read(unique, window=window)
        except RasterioIOError as exc:
            raise read_error(src.name, window, exc) from None


def read_error(path: str | Path, window: Window, exc: Exception) -> InputError:
    """A one-line :class:`InputError` for a failed read of ``window`` of ``path``."""
    detail = exc.__cause__ or exc  # rasterio's own message only says "see previous exception"
    first = " ".join(str(detail).split()) or type(exc).__name__
    return InputError(
        f"cannot read {path} at window col {int(window.col_off)}, row {int(window.row_off)}, "
        f"{int(window.width)}x{int(window.height)} px ({first[:200]}); the file may be truncated or corrupt"
    )
