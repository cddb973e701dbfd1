"""Per-invocation state shared by the commands and the error handler in :mod:`sam2unext.cli.main`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class CliState:
    """``debug``: show tracebacks. ``reporter``: the progress reporter of a running command, so
    that an error is also sent as a JSON ``error`` event when ``--progress json`` is on."""

    debug: bool = False
    reporter: Any = None


STATE = CliState()
