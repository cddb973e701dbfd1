"""Write the probability raster: the finished chunks of the run store to a temporary file, then a COG.

The run store's chunks are copied block row by block row into an uncompressed, tiled
temporary GeoTIFF in the target folder (partly written blocks wait in GDAL's block cache,
whose size the caller bounds). On :meth:`ProbabilityWriter.commit` GDAL's COG driver copies it to a tiled,
ZSTD-compressed Cloud-Optimized GeoTIFF with overviews under a second temporary name, which
is then renamed onto the output. Any failure (``KeyboardInterrupt`` and ``SystemExit`` included) removes
both temporary files. GDAL reports a full disk as a plain write error without its errno
("Write failed", "TIFFAppendToStrip:Write error"), so after a failed write the device itself is
asked (:func:`disk_is_full`) while the temporary files still hold their space.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import DatasetWriter
from rasterio.windows import Window

from sam2unext.errors import OutputError, option
from sam2unext.files import write_atomically
from sam2unext.geo.writing.store import RunStore, disk_full_error

OUT_DTYPES = ("uint8", "float32")
#: COG compression: ZSTD at a low level is several times faster than DEFLATE for similar size.
COMPRESS, COMPRESS_LEVEL = "ZSTD", 1
#: Block side of the temporary and final rasters; overviews go down to one block.
BLOCK = 512
#: Bytes a device must still take after a failed write not to count as full: one float32 block.
PROBE_BYTES = BLOCK * BLOCK * 4


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


def check_output(path: str | Path, overwrite: bool) -> Path:
    """Validate an output path before any work is done.

    Raises:
        OutputError: existing output without ``overwrite``, missing or unwritable folder.
    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise OutputError(f"output {p} already exists; pass {option('overwrite')} to replace it")
    if p.is_dir():
        raise OutputError(f"output {p} is a folder; give a file name")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable; choose another output path")
    return p


def temp_name(final: Path, tag: str) -> Path:
    """A hidden temporary path next to ``final`` (same folder, so renaming is atomic)."""
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.{tag}.tif")


def leftover_temporaries(final: Path) -> list[Path]:
    """The :func:`temp_name` files of ``final`` (and their GDAL side-cars) that a killed run left behind.

    Only names made for ``final`` match (``.<final name>.<8 hex>.<tag>.tif``), so a resume removes
    its own run's leftovers and nothing else in the folder.
    """
    folder = final.parent if str(final.parent) else Path(".")
    pattern = re.compile(rf"\.{re.escape(final.name)}\.[0-9a-f]{{8}}\.[a-z]+\.tif(\.msk|\.aux\.xml)?")
    try:
        return sorted(p for p in folder.iterdir() if pattern.fullmatch(p.name))
    except OSError:
        return []


def disk_is_full(folder: Path, need: int = PROBE_BYTES) -> bool:
    """Whether the device of ``folder`` (or the user's quota there) cannot take ``need`` more bytes now.

    Asks ``statvfs`` first, then writes (and removes) a probe file of ``need`` bytes, which also
    meets a quota that ``statvfs`` does not show.
    """
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    if stat.f_bavail * stat.f_frsize < need:
        return True
    probe = folder / f".space-probe.{uuid.uuid4().hex[:8]}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            block, left = b"\0" * min(need, 1 << 16), need
            while left > 0:
                left -= os.write(fd, block[:left])
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    finally:
        probe.unlink(missing_ok=True)
    return False


def no_space_error(folder: Path) -> OutputError:
    """The run's disk-full error for ``folder`` (the words of a full store write)."""
    error = disk_full_error(folder, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert error is not None  # ENOSPC is a full disk
    return error


@contextlib.contextmanager
def full_disk_as_output_error(folder: Path) -> Iterator[None]:
    """Turn a failed GDAL write on a full device into the run's disk-full :class:`OutputError`.

    Raises:
        OutputError: "no space left on the device of ``folder``; ... rerun with resume".
    """
    try:
        yield
    except OutputError:
        raise
    except Exception as exc:  # noqa: BLE001 (GDAL's errors carry no errno: the device is asked)
        full = disk_full_error(folder, exc)
        if full is None and disk_is_full(folder):
            full = no_space_error(folder)
        if full is not None:
            raise full from None
        raise


def remove_quietly(*paths: Path) -> None:
    """Delete files (and GDAL side-cars) that may or may not exist."""
    for p in paths:
        for q in (p, Path(str(p) + ".msk"), Path(str(p) + ".aux.xml")):
            try:
                q.unlink()
            except FileNotFoundError:
                pass


class ProbabilityWriter:
    """Row-strip writer of a probability raster with a temp name + rename.

    Args:
        path: final output path (already checked with :func:`check_output`).
        height, width, transform, crs: output grid, copied from the input.
        out_dtype: ``"uint8"`` (0..255, invalid pixels masked with an internal mask band)
            or ``"float32"`` (0..1, invalid pixels NaN = nodata).
        overwrite: replace an existing output at commit time.
        masked: whether some input pixels may be invalid (uint8: write a mask band).
        tags: GDAL metadata items written on the raster (kept by the COG copy).

    The identity transform (what rasterio reports for a file without a geotransform) is not
    written, so an input without georeferencing gives an output without it, and GDAL and
    QGIS place both the same way.

    Use as a context manager; call :meth:`commit` at the end of the ``with`` block.
    """

    def __init__(
        self,
        path: Path,
        *,
        height: int,
        width: int,
        transform: Affine | None,
        crs: object,
        out_dtype: str = "uint8",
        overwrite: bool = False,
        masked: bool = True,
        tags: dict[str, str] | None = None,
    ) -> None:
        if out_dtype not in OUT_DTYPES:
            raise OutputError(f"out_dtype {out_dtype!r} must be one of {', '.join(OUT_DTYPES)}")
        self.path = Path(path)
        self.out_dtype = out_dtype
        self.overwrite = overwrite
        self.masked = masked
        self.height, self.width = height, width
        self._strips = temp_name(self.path, "strips")
        self._cog = temp_name(self.path, "cog")
        self.tags = dict(tags or {})
        profile = dict(
            driver="GTiff",
            width=width,
            height=height,
            count=1,
            dtype=out_dtype,
            tiled=True,
            blockxsize=BLOCK,
            blockysize=BLOCK,
        )
        if crs is not None:
            profile["crs"] = crs
        if transform is not None and not Affine(*transform[:6]).is_identity:
            profile["transform"] = transform  # none at all when the input has none
        if out_dtype == "float32":
            profile["nodata"] = float("nan")
        self._profile = profile
        self._ds: DatasetWriter | None = None

    def __enter__(self) -> ProbabilityWriter:
        try:
            with warnings.catch_warnings(), rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                ds = self._ds = rasterio.open(self._strips, "w", **self._profile)
                if self.tags:
                    ds.update_tags(**self.tags)
        except (rasterio.errors.RasterioIOError, OSError) as exc:
            full = disk_is_full(self.folder)
            remove_quietly(self._strips)
            if full:
                raise no_space_error(self.folder) from None
            raise OutputError(f"cannot write {self.path}: {str(exc).splitlines()[0]}") from None
        return self

    @property
    def folder(self) -> Path:
        """The output's folder (where both temporary files are written)."""
        return self.path.parent if str(self.path.parent) else Path(".")

    def write_block(self, row0: int, col0: int, values: np.ndarray, valid: np.ndarray | None) -> None:
        """Write final values (``out_dtype``) of a window and, for a masked uint8 raster, its mask.

        Args:
            row0, col0: top-left pixel of the window.
            values: ``[rows, cols]`` in the output type (nodata already applied).
            valid: uint8 ``[rows, cols]``, 255 valid and 0 nodata (None: all valid).
        """
        window = Window(col0, row0, values.shape[1], values.shape[0])
        ds = self._open()
        with full_disk_as_output_error(self.folder):
            ds.write(values, 1, window=window)
            if self.masked and self.out_dtype == "uint8":
                ds.write_mask(np.full(values.shape, 255, np.uint8) if valid is None else valid, window=window)

    def _open(self) -> DatasetWriter:
        if self._ds is None:
            raise RuntimeError("ProbabilityWriter used outside its with block or after commit")
        return self._ds

    def commit(self) -> Path:
        """Finish: convert to a COG and rename onto the output path.

        Returns:
            The output path.

        Raises:
            OutputError: the device is full (see :func:`full_disk_as_output_error`).
        """
        with full_disk_as_output_error(self.folder):
            self._open().close()  # the blocks still in GDAL's cache are written here
        self._ds = None
        opts = dict(
            driver="COG",
            compress=COMPRESS,
            level=COMPRESS_LEVEL,
            blocksize=BLOCK,
            overviews="FORCE_USE_EXISTING",
            resampling="average",
            bigtiff="IF_SAFER",
            predictor=3 if self.out_dtype == "float32" else 2,
            num_threads="ALL_CPUS",
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            # Overviews built once on the uncompressed temporary file (several times cheaper than
            # letting the COG driver build them into a compressed temporary), then copied as is.
            factors = overview_factors(self.height, self.width, BLOCK)
            if factors:
                with (
                    full_disk_as_output_error(self.folder),
                    rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
                    rasterio.open(self._strips, "r+") as ds,
                ):
                    ds.build_overviews(factors, Resampling.average)
            if self.path.exists() and not self.overwrite:
                raise OutputError(
                    f"output {self.path} appeared while running; pass {option('overwrite')} to replace it"
                )

            def copy(tmp: Path) -> None:
                with full_disk_as_output_error(self.folder):  # asked while the partial COG holds its space
                    rasterio.shutil.copy(self._strips, tmp, **opts)

            write_atomically(self.path, copy, tmp=self._cog)
        remove_quietly(self._strips)
        return self.path

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self._ds is not None:
            try:
                self._ds.close()
            finally:
                self._ds = None
        remove_quietly(self._strips, self._cog)


def write_from_store(
    store: RunStore, writer: ProbabilityWriter, chunk_width: int, on_rows: Callable[[int], None] | None = None
) -> None:
    """Copy every finished chunk of ``store`` into ``writer``, block row by block row."""
    for row0 in range(0, writer.height, BLOCK):
        rows = min(BLOCK, writer.height - row0)
        for col0 in range(0, writer.width, chunk_width):
            cols = min(chunk_width, writer.width - col0)
            values, valid = store.read(row0, col0, rows, cols)
            writer.write_block(row0, col0, values, valid)
        if on_rows is not None:
            on_rows(row0 + rows)
