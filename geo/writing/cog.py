"""Write the probability raster: the finished run store, pyramid included, copied into a COG.

The chunks computed the raster and its overview levels into the run store
(:mod:`~sam2unext.geo.writing.pyramid`); GDAL's COG driver copies them, through VRT files
over the store's Zarr arrays, into a tiled, ZSTD-compressed Cloud-Optimized GeoTIFF under a
temporary name, which is then renamed onto the output. No whole-scene scratch copy is made:
the only file written is the output. Any failure (``KeyboardInterrupt`` and ``SystemExit``
included) removes the temporary file. GDAL reports a full disk as a plain write error without its errno
("Write failed", "TIFFAppendToStrip:Write error"), so after a failed write the device itself is
asked (:func:`disk_is_full`) while the temporary files still hold their space.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from sam2unext.errors import OutputError, option
from sam2unext.files import write_atomically
from sam2unext.geo.writing.pyramid import BLOCK, overview_factors
from sam2unext.geo.writing.store import RunStore, disk_full_error
from sam2unext.geo.writing.store_vrt import write_store_vrt

__all__ = [
    "BLOCK",
    "check_output",
    "disk_is_full",
    "full_disk_as_output_error",
    "leftover_temporaries",
    "overview_factors",
    "remove_quietly",
    "temp_name",
    "write_probability_cog",
]

OUT_DTYPES = ("uint8", "float32")
#: COG compression: ZSTD at a low level is several times faster than DEFLATE for similar size.
COMPRESS, COMPRESS_LEVEL = "ZSTD", 1
#: Bytes a device must still take after a failed write not to count as full: one float32 block.
PROBE_BYTES = BLOCK * BLOCK * 4


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

    Asks ``statvfs`` first, then writes (and removes) a probe file of ``need`` bytes (at most
    :data:`PROBE_BYTES`), which also meets a quota that ``statvfs`` does not show.
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
            block, left = b"\0" * min(need, 1 << 16), min(need, PROBE_BYTES)
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
def full_disk_as_output_error(folder: Path, need: int = PROBE_BYTES) -> Iterator[None]:
    """Turn a failed GDAL write on a full device into the run's disk-full :class:`OutputError`.

    ``need``: bytes the write needed at most; the device counts as full when it has less free
    (GDAL may delete a file it failed to finish, freeing the space before the device is asked).

    Raises:
        OutputError: "no space left on the device of ``folder``; ... rerun with resume".
    """
    try:
        yield
    except OutputError:
        raise
    except Exception as exc:  # noqa: BLE001 (GDAL's errors carry no errno: the device is asked)
        full = disk_full_error(folder, exc)
        if full is None and disk_is_full(folder, need):
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


def _most_bytes(height: int, width: int, out_dtype: str) -> int:
    """An upper bound of the COG's size: uncompressed raster, mask and overviews (a third more)."""
    per_pixel = 4 if out_dtype == "float32" else 2
    return height * width * per_pixel * 4 // 3


def _check_complete(path: Path, height: int, width: int) -> None:
    """Open the COG and read its last block, which a COG writes last.

    GDAL's COG driver can end without an error when a full device cut the file short (the
    write errors of its worker threads are only printed); the truncated file fails here.
    """
    row0, col0 = (height - 1) // BLOCK * BLOCK, (width - 1) // BLOCK * BLOCK
    with rasterio.open(path) as ds:
        window = Window(col0, row0, width - col0, height - row0)
        ds.read(1, window=window)
        ds.read_masks(1, window=window)


def write_probability_cog(
    store: RunStore,
    path: Path,
    *,
    height: int,
    width: int,
    transform: Affine | None,
    crs: object,
    out_dtype: str = "uint8",
    masked: bool = True,
    overwrite: bool = False,
    tags: dict[str, str] | None = None,
) -> Path:
    """The probability COG of a finished store (raster, mask and overview pyramid) at ``path``.

    GDAL's COG driver copies the store's arrays (:func:`write_store_vrt`) with the overviews
    the store holds: nothing is written but the output, under a hidden temporary name renamed
    onto ``path`` at the end (removed on any failure).

    Args:
        store: a store whose chunks and pyramid are finished.
        path: final output path (already checked with :func:`check_output`).
        height, width, transform, crs: output grid, copied from the input (an identity or
            missing transform is not written: an input without georeferencing gives an output
            without it).
        out_dtype: ``"uint8"`` (0..255; invalid pixels masked by an internal mask band when
            ``masked``) or ``"float32"`` (0..1; invalid pixels NaN = nodata).
        overwrite: replace an existing output.
        tags: GDAL metadata items written on the raster.

    Raises:
        OutputError: the device is full (see :func:`full_disk_as_output_error`), or the output
            appeared meanwhile without ``overwrite``.
    """
    if out_dtype not in OUT_DTYPES:
        raise OutputError(f"out_dtype {out_dtype!r} must be one of {', '.join(OUT_DTYPES)}")
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    opts = dict(
        driver="COG",
        compress=COMPRESS,
        level=COMPRESS_LEVEL,
        blocksize=BLOCK,
        overviews="FORCE_USE_EXISTING",
        bigtiff="IF_SAFER",
        predictor=3 if out_dtype == "float32" else 2,
        num_threads="ALL_CPUS",
    )
    with tempfile.TemporaryDirectory(prefix="sam2unext-vrt-") as tmp:
        vrt = write_store_vrt(
            store,
            Path(tmp),
            height=height,
            width=width,
            transform=transform,
            crs=crs,
            dtype=out_dtype,
            masked=masked and out_dtype == "uint8",
            tags=tags,
        )
        if path.exists() and not overwrite:
            raise OutputError(f"output {path} appeared while running; pass {option('overwrite')} to replace it")

        def copy(target: Path) -> None:
            with (
                warnings.catch_warnings(),
                full_disk_as_output_error(folder, need=_most_bytes(height, width, out_dtype)),
                rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
            ):
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                rasterio.shutil.copy(vrt, target, **opts)
                _check_complete(target, height, width)

        partial = temp_name(path, "cog")
        try:
            write_atomically(path, copy, tmp=partial)
        finally:
            remove_quietly(partial)  # GDAL's side-cars of a failed copy (write_atomically removes the file)
    return path
