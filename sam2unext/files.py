"""Writing files so that a reader never sees a half-written one."""

from __future__ import annotations

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
