"""Outputs at a URL: checked before any work, written locally, published atomically.

GDAL's COG driver and the vector drivers write local files; an ``s3://``/``gs://`` output is
built in a scratch folder and uploaded in one PUT or multipart upload
(:meth:`Location.upload_file`), which object stores show only once complete: a reader never
sees a half-written object, and a failed run leaves none.
"""

from __future__ import annotations

from pathlib import Path

from sam2unext.errors import OutputError, option
from sam2unext.geo.storage.location import Location
from sam2unext.geo.storage.urls import WRITABLE, is_url, name_of, parent_of, scheme_of


def folder_of(target: str) -> Location:
    """The location holding an output URL."""
    return Location(parent_of(target), output=True)


def check_remote_output(target: str, overwrite: bool) -> str:
    """Refuse an output URL that exists (without ``overwrite``), is read-only, or whose bucket is missing.

    Raises:
        OutputError: one line naming the URL and what to do.
    """
    if scheme_of(target) not in WRITABLE:
        raise OutputError(f"output {target} cannot be written: use an s3:// or gs:// URL, or a local path")
    if target.endswith("/"):
        raise OutputError(f"output {target} is a prefix; give an object name ending in .tif")
    folder = folder_of(target)
    folder.make()  # the bucket exists and the credentials reach it
    if folder.is_file(name_of(target)) and not overwrite:
        raise OutputError(f"output {target} already exists; pass {option('overwrite')} to replace it")
    return target


def output_exists(target: str | Path) -> bool:
    """True when the output file or object exists."""
    if is_url(target):
        return folder_of(str(target)).is_file(name_of(target))
    return Path(target).exists()


def staging_path(target: str | Path, scratch: Path) -> Path:
    """Where an output is written first: itself on disk, a file in ``scratch`` for a URL."""
    return scratch / name_of(target) if is_url(target) else Path(target)


def publish(local: Path, target: str | Path) -> None:
    """Make a finished local output visible at ``target`` (upload for a URL; nothing on disk)."""
    if is_url(target):
        folder_of(str(target)).upload_file(local, name_of(target))
        local.unlink(missing_ok=True)


def remove_output(target: str | Path) -> None:
    """Delete an output file or object (nothing when missing)."""
    if is_url(target):
        folder_of(str(target)).remove(name_of(target))
    else:
        Path(target).unlink(missing_ok=True)
