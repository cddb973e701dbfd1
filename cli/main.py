"""The ``sam2unext-geo`` command.

Commands are plain typer functions in their own modules (``predict``, ``describe``, ``demo``,
``training``); this module registers them and maps errors to exit codes in ONE place:

* ``sam2unext.errors.UserError`` (a mistake the user can fix) → its one-line message on
  stderr, exit 2;
* usage errors (unknown option, bad value) → one line on stderr, exit 2;
* anything else → ``error: internal error: ...`` on stderr, exit 1;
* SIGTERM and SIGINT (Ctrl-C) → :class:`Cancelled` (a ``SystemExit``), so that temporary
  outputs are cleaned up, then one line ``cancelled; nothing written`` on stderr (and a JSON
  ``error`` event with the exit code), exit 143 / 130.

Tracebacks, and GDAL's own error lines on stderr, are shown only with ``--debug``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import traceback
from typing import Annotated, NoReturn

import typer

from sam2unext.errors import UserError, cli_words

from . import demo, describe, predict
from .state import STATE

PROG = "sam2unext-geo"

app = typer.Typer(
    name=PROG,
    help="SAM2-UNeXT / SAM2-UNet segmentation of large georeferenced scenes: tiles, batched "
    "inference, seamless probability COGs and polygons.",
    epilog="Try it without any weights: 'sam2unext-geo demo'. Details: 'sam2unext-geo COMMAND --help'.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from sam2unext import __version__

        typer.echo(f"{PROG} {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    STATE.debug = STATE.debug or debug  # main() strips --debug from anywhere on the line


app.command(epilog=predict.PREDICT_EPILOG)(predict.predict)
app.command(epilog=predict.VECTORIZE_EPILOG)(predict.vectorize)
app.command(epilog=describe.INFO_EPILOG)(describe.info)
app.command(epilog=describe.MODELS_EPILOG)(describe.models)
app.command(epilog=demo.DEMO_EPILOG)(demo.demo)

try:  # train / test / evaluate live with the training code
    from . import training
except ImportError as _exc:  # pragma: no cover - only while cli/training.py is missing
    if getattr(_exc, "name", None) not in (f"{__package__}.training", "training"):
        raise
else:
    for _name in ("train", "test", "evaluate"):
        _fn = getattr(training, _name, None)
        if _fn is not None:
            app.command(epilog=getattr(training, f"{_name.upper()}_EPILOG", None))(_fn)


def _click_classes() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """Usage-error and abort classes of typer (recent typer vendors click) and of click."""
    errors: list[type] = [getattr(typer, "TyperException", None)]
    aborts: list[type] = [typer.Abort]
    try:
        import click

        errors.append(click.exceptions.ClickException)
        aborts.append(click.exceptions.Abort)
    except ImportError:  # pragma: no cover
        pass
    return tuple(c for c in errors if c is not None), tuple(dict.fromkeys(aborts))


_CLICK_ERRORS, _ABORTS = _click_classes()


#: What a cancelled run prints (temporary outputs are removed on the way out).
CANCELLED = "cancelled; nothing written"


class Cancelled(SystemExit):
    """SIGTERM (code 143) or SIGINT (130): a ``SystemExit`` so cleanup code runs and click lets it through."""


def _on_signal(signum, frame) -> None:  # noqa: ARG001
    raise Cancelled(143 if signum == signal.SIGTERM else 130)


def _quiet_gdal(debug: bool) -> None:
    """Send GDAL's own error lines (``ERROR 1: ...``) to the null device unless ``debug``.

    The read errors they describe come back as one-line messages of ours; ``--debug`` keeps them.
    """
    import logging
    import os

    if not debug:
        os.environ.setdefault("CPL_LOG", os.devnull)
    logging.getLogger("rasterio").setLevel(logging.DEBUG if debug else logging.CRITICAL)


def _report(message: str, exit_code: int, options: list[str] | None = None, prefix: str = "error: ") -> int:
    """Send an error to the JSON stream (when on) and to stderr; return the exit code.

    ``options``: the API names of the options the message tells the user to set (the JSON
    event carries them so that the QGIS plugin can name its own widgets instead).
    """
    if STATE.reporter is not None:
        STATE.reporter.error(message, exit_code, options)
    print(f"{prefix}{message}", file=sys.stderr, flush=True)
    return exit_code


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit code (the console script exits with it).

    Args:
        argv: arguments without the program name (default ``sys.argv[1:]``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted anywhere on the line, not only before the command.
    head = args[: args.index("--")] if "--" in args else args
    STATE.debug = "--debug" in head
    args = [a for i, a in enumerate(args) if not (a == "--debug" and i < len(head))]
    _quiet_gdal(STATE.debug)
    previous = {}
    if threading_main():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _on_signal)
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name=PROG, standalone_mode=False)
        return result if isinstance(result, int) else 0
    except UserError as exc:
        if STATE.debug:
            traceback.print_exc()
        return _report(_one_line(exc.render(cli_words)), exc.exit_code, exc.options)
    except _CLICK_ERRORS as exc:  # usage errors: unknown option, bad value, missing argument
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.format_message(), file=sys.stderr, flush=True)
            return 2
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        return _report(f"{_one_line(exc.format_message())}{hint}", 2)
    except Cancelled as exc:
        return _report(CANCELLED, int(exc.code), prefix="")
    except (KeyboardInterrupt, *_ABORTS):
        return _report(CANCELLED, 130, prefix="")
    except SystemExit:
        raise
    except Exception as exc:  # anything else is our bug, not the user's
        if STATE.debug:
            traceback.print_exc()
            hint = ""
        else:
            hint = " (rerun with --debug for the traceback)"
        return _report(f"internal error: {type(exc).__name__}: {_one_line(exc)}{hint}", 1)
    finally:
        STATE.reporter = None
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run() -> NoReturn:
    """The ``sam2unext-geo`` console script: :func:`main`, then a quick exit with its code.

    Once the command has returned, every output is closed and committed. Python's own shutdown
    would then spend about 1.3 s unloading torch's native libraries (measured after importing
    torch, timm and the pipeline); the ``atexit`` handlers still run and the streams are
    flushed, but that teardown is skipped. A ``SystemExit`` leaves the usual way.
    """
    code = main()
    atexit._run_exitfuncs()  # what interpreter shutdown would run first (logging, dask, ...)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe must not change the exit code
            stream.flush()
    os._exit(code)


def threading_main() -> bool:
    """True in the main thread (signal handlers can only be installed there)."""
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    run()
