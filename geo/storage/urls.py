"""URLs of object storage: which strings are URLs, and joining, splitting and naming them.

A URL stays a ``str`` everywhere: ``Path("s3://b/k")`` would turn it into ``s3:/b/k``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

#: Schemes read and written through fsspec (and GDAL's /vsis3/, /vsigs/, /vsicurl/).
SCHEMES = ("s3", "gs", "gcs", "http", "https")
#: Schemes that can take writes (an https server is read-only to us).
WRITABLE = ("s3", "gs", "gcs")


def is_url(x: object) -> bool:
    """True for an ``s3://``, ``gs://``/``gcs://`` or ``http(s)://`` URL string."""
    return isinstance(x, str) and scheme_of(x) in SCHEMES


def scheme_of(url: str) -> str | None:
    """The scheme of ``url`` (lower case), or None when it has none."""
    head, sep, _ = url.partition("://")
    return head.lower() if sep and head.isalnum() else None


def join(base: str | Path, name: str) -> str | Path:
    """``base/name`` for a folder path or a URL prefix."""
    if isinstance(base, Path) or not is_url(base):
        return Path(base) / name
    return base.rstrip("/") + "/" + name


def name_of(target: str | Path) -> str:
    """The last part of a path or URL (``s3://b/k/s.tif`` -> ``s.tif``)."""
    if is_url(target):
        return PurePosixPath(str(target).split("://", 1)[1].split("?", 1)[0].rstrip("/")).name
    return Path(target).name


def parent_of(target: str | Path) -> str | Path:
    """The folder or prefix that holds a path or URL."""
    if is_url(target):
        text = str(target).rstrip("/")
        scheme, rest = text.split("://", 1)
        head = rest.rsplit("/", 1)[0] if "/" in rest else rest
        return f"{scheme}://{head}"
    return Path(target).parent


def with_name(target: str | Path, name: str) -> str | Path:
    """``target`` with its last part replaced by ``name``."""
    return join(parent_of(target), name)


def stem_of(target: str | Path) -> str:
    """The last part of a path or URL without its suffix."""
    return PurePosixPath(name_of(target)).stem


def as_target(target: str | Path) -> str | Path:
    """A URL string as given, anything else as a :class:`Path`."""
    return target if is_url(target) else Path(target)


#: GDAL's virtual file system of each scheme.
VSI_PREFIX = {"s3": "/vsis3/", "gs": "/vsigs/", "gcs": "/vsigs/"}


def gdal_path(target: str | Path) -> str:
    """The name GDAL opens for a path or URL: ``s3://b/k`` -> ``/vsis3/b/k``, ``https://...`` -> ``/vsicurl/https://...``."""
    if not is_url(target):
        return str(target)
    text = str(target)
    scheme = scheme_of(text)
    if scheme in VSI_PREFIX:
        return VSI_PREFIX[scheme] + text.split("://", 1)[1]
    return "/vsicurl/" + text
