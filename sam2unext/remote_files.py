"""Checkpoints at a URL (``s3://``, ``gs://``, ``https://``): a local copy per machine, fetched once.

Reached through fsspec (s3fs, gcsfs, HTTP) with the standard credentials and endpoints
(``AWS_PROFILE``/``AWS_ACCESS_KEY_ID``..., ``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``).
The copy lives in ``$SAM2UNEXT_CACHE`` (default ``<temp dir>/sam2unext-geo-cache``) under a name
derived from the URL and the object's version tag, so each machine (each cluster worker)
downloads a checkpoint once and a changed object is fetched again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from sam2unext.errors import CheckpointError

REMOTE_PREFIXES = ("s3://", "gs://", "gcs://", "http://", "https://")
HELP = (
    "check the URL and the credentials (AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, "
    "GOOGLE_APPLICATION_CREDENTIALS)"
)


def is_remote(x: object) -> bool:
    """True for an ``s3://``, ``gs://``/``gcs://`` or ``http(s)://`` URL string."""
    return isinstance(x, str) and x.lower().startswith(REMOTE_PREFIXES)


def _reason(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 120 else text[:117].rsplit(" ", 1)[0] + "..."


def _fs_and_key(url: str) -> tuple[Any, str]:
    import fsspec

    fs, key = fsspec.core.url_to_fs(url)
    return fs, key


def remote_info(url: str) -> dict[str, Any]:
    """Size and version tag of the object at ``url`` (one HEAD request).

    Raises:
        CheckpointError: missing object, no credentials, access denied, unreachable store.
    """
    try:
        fs, key = _fs_and_key(url)
        info = fs.info(key)
    except Exception as exc:  # noqa: BLE001 (fsspec backends raise their own kinds)
        raise CheckpointError(f"cannot read checkpoint {url} ({_reason(exc)}); {HELP}") from None
    tag = info.get("ETag") or info.get("etag") or info.get("generation") or info.get("LastModified")
    return {"url": url, "size": int(info.get("size") or 0), "etag": str(tag).strip('"') if tag is not None else None}


def cache_folder() -> Path:
    """Where URL checkpoints are kept on this machine."""
    return Path(os.environ.get("SAM2UNEXT_CACHE") or Path(tempfile.gettempdir()) / "sam2unext-geo-cache")


def cached_copy(url: str) -> Path:
    """A local file holding the object at ``url``; downloaded on first use on this machine.

    Raises:
        CheckpointError: the object cannot be read (see :func:`remote_info`).
    """
    info = remote_info(url)
    digest = hashlib.blake2b(json.dumps(info, sort_keys=True).encode(), digest_size=10).hexdigest()
    name = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "checkpoint"
    target = cache_folder() / digest / name
    if target.is_file() and target.stat().st_size == info["size"]:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{name}.{os.getpid()}.part")
    try:
        fs, key = _fs_and_key(url)
        fs.get_file(key, str(tmp))
        os.replace(tmp, target)  # a concurrent download of the same object writes the same bytes
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"cannot download checkpoint {url} ({_reason(exc)}); {HELP}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def safetensors_metadata(url: str) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` object, from its header alone (two range reads).

    Raises:
        CheckpointError: unreadable object or header.
    """
    try:
        fs, key = _fs_and_key(url)
        with fs.open(key, "rb", block_size=1 << 16) as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size < 100_000_000:
                raise ValueError(f"header size {size}")
            header = json.loads(f.read(size))
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"cannot read safetensors header of {url} ({_reason(exc)}); {HELP}") from None
    return dict(header.get("__metadata__") or {})
