"""User-facing error types, and the one place where an error names an option.

Every mistake a user can fix (a bad path, a wrong preset, a mismatched checkpoint, an
unreadable raster) raises a subclass of :class:`UserError` with a one-line message that
names the file or value and says what to do. The CLI maps ``UserError`` to exit code 2 in
one place; anything else is an internal error (exit code 1).

A message that tells the user to set an option writes it with :func:`option`, never as a
literal ``--flag`` or ``name=True``: each surface then speaks its own words. ``str(error)``
is the Python API's wording (``overwrite=True``); the command renders the same error with
:meth:`UserError.render` and :func:`cli_words` (``--overwrite``); the QGIS plugin maps the
option names of the command's JSON ``error`` event to its widget labels.
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: ``option("overwrite")`` → ``⟨overwrite=True⟩`` inside a message template.
_TOKEN = re.compile(r"\u27e8([a-z_][a-z0-9_]*)=(.*?)\u27e9")

#: Renders one option (name, value as written by ``repr``) in a surface's words.
Words = Callable[[str, str], str]


def option(name: str, value: object = True) -> str:
    """A placeholder for the option ``name`` (an API parameter name) set to ``value``.

    Example: ``OutputError(f"{path} exists; pass {option('overwrite')} to replace it")``.
    """
    return f"\u27e8{name}={value!r}\u27e9"


def api_words(name: str, value: str) -> str:
    """The Python API's words: ``overwrite=True``."""
    return f"{name}={value}"


def cli_words(name: str, value: str) -> str:
    """The command's words: ``--overwrite``, ``--batch-size 2``, ``--no-vector``."""
    flag = "--" + name.replace("_", "-")
    if value == "True":
        return flag
    if value == "False":
        return "--no-" + name.replace("_", "-")
    return f"{flag} {value.strip(chr(39))}"


def render_options(text: str, words: Words = api_words) -> str:
    """``text`` with its :func:`option` placeholders in the words of one surface."""
    return _TOKEN.sub(lambda m: words(m.group(1), m.group(2)), text)


class UserError(Exception):
    """A mistake the user can fix; its message is one line, shown without a traceback."""

    exit_code = 2

    def render(self, words: Words = api_words) -> str:
        """The message with its options in the words of one surface."""
        return render_options(super().__str__(), words)

    @property
    def options(self) -> list[str]:
        """Names of the options the message tells the user to set (API parameter names)."""
        return [m.group(1) for m in _TOKEN.finditer(super().__str__())]

    def __str__(self) -> str:
        return self.render(api_words)


class PresetError(UserError):
    """Unknown preset name, or a preset that does not fit the given weights."""


class CheckpointError(UserError):
    """A weights file that is missing, unreadable, unsafe, or does not fit the model."""


class InputError(UserError):
    """An input file (raster, image, vector) that is missing, corrupt or unsupported."""


class OutputError(UserError):
    """An output that cannot be written: existing file without overwrite, unwritable folder."""


class ClusterError(UserError):
    """A ``dask.distributed`` cluster that cannot run the work (no worker connected for too long)."""


class DatasetError(UserError):
    """A training/evaluation dataset that is malformed (unmatched names, empty folders)."""
