"""Files: writing so that a reader never sees a half-written one, and fingerprinting big ones cheaply."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_atomically(path: Path, write: Callable[[Path], Any], tmp: Path | None = None) -> None:
    """Call ``write(tmp)`` then rename ``tmp`` to ``path``; on any failure or interrupt the
    temporary file is removed and ``path`` is left as it was.

    Args:
        path: Final file.
        write: Writes the content to the path it is given.
        tmp: Temporary name in the same folder (default ``<name>.tmp``); give one with the
            final suffix where the writer picks its format from the suffix.
    """
    tmp = tmp or path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: Bytes hashed at each sampled position of a file.
SAMPLE_BYTES = 64 * 1024
#: Sampled positions: the start (header), evenly spread blocks and the end.
SAMPLES = 8


def sampled_hash(size: int, read: Callable[[int, int], bytes]) -> str:
    """A hash of ``SAMPLES`` spread-out ranges of ``SAMPLE_BYTES`` (start, evenly spread blocks, end).

    Args:
        size: the file's size in bytes.
        read: ``read(offset, length)`` returns those bytes (a local file, a range request).
    """
    digest = hashlib.blake2b(digest_size=16)
    span = max(0, size - SAMPLE_BYTES)
    for k in range(SAMPLES):
        offset = span * k // (SAMPLES - 1)
        digest.update(read(offset, min(SAMPLE_BYTES, size - offset)))
    return digest.hexdigest()


def file_fingerprint(path: str | Path) -> dict[str, Any]:
    """What identifies a local file's content: its size and a hash of sampled bytes (GDAL paths: the path).

    Neither the path nor the modification time is part of it, so a file moved, copied or
    mounted elsewhere keeps its fingerprint (and a run folder beside it stays resumable).
    """
    text = str(path)
    if text.startswith(("/vsi", "http://", "https://")) or not Path(text).is_file():
        return {"path": text}
    size = Path(text).stat().st_size
    with open(text, "rb") as f:

        def read(offset: int, length: int) -> bytes:
            f.seek(offset)
            return f.read(length)

        return {"size": size, "sample_hash": sampled_hash(size, read)}
