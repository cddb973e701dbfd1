"""User-facing error types.

Every mistake a user can fix (a bad path, a wrong preset, a mismatched checkpoint, an
unreadable raster) raises a subclass of :class:`UserError` with a one-line message that
names the file or value and says what to do. The CLI maps ``UserError`` to exit code 2 in
one place; anything else is an internal error (exit code 1).
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; its message is one line, shown without a traceback."""

    exit_code = 2


class PresetError(UserError):
    """Unknown preset name, or a preset that does not fit the given weights."""


class CheckpointError(UserError):
    """A weights file that is missing, unreadable, unsafe, or does not fit the model."""


class InputError(UserError):
    """An input file (raster, image, vector) that is missing, corrupt or unsupported."""


class OutputError(UserError):
    """An output that cannot be written: existing file without overwrite, unwritable folder."""


class DatasetError(UserError):
    """A training/evaluation dataset that is malformed (unmatched names, empty folders)."""
