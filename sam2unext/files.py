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


def file_fingerprint(path: str | Path) -> dict[str, Any]:
    """Size, modification time and a hash of sampled bytes of a local file (GDAL paths: the path)."""
    text = str(path)
    if text.startswith(("/vsi", "http://", "https://")) or not Path(text).is_file():
        return {"path": text}
    p = Path(text)
    st = p.stat()
    digest = hashlib.blake2b(digest_size=16)
    with open(p, "rb") as f:
        span = max(0, st.st_size - SAMPLE_BYTES)
        for k in range(SAMPLES):
            f.seek(span * k // (SAMPLES - 1))
            digest.update(f.read(SAMPLE_BYTES))
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sample_hash": digest.hexdigest()}
