"""Run the ``sam2unext-geo`` command as a subprocess and follow its JSON-lines progress stream.

Pure Python (no Qt, no QGIS, no torch): the plugin's dialog task and its Processing
algorithms both drive the core through :func:`run_command`. The command is always started with
an argument list, never through a shell. Cancel = SIGTERM, SIGKILL after a grace period, then
the files of *this* run are removed: its own outputs' temporary names
(``.<final name>.<8 hex>.<tag>.tif`` and the like) that were not there before it started, and on
cancel its probability output's resumable store ``<output name>.partial/`` (kept after a failure,
for *Resume an interrupted run*). Nothing else in the folder is touched: other runs write there
side by side.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Optional

from .commands import OPTION_LABELS, parse_event, plugin_words
from .environment import INSTALL_HINT, REPAIR_HINT, EnvironmentProblem, last_line, popen_kwargs

DEFAULT_GRACE_SECONDS = 5.0
_BROKEN_MARKERS = ("ModuleNotFoundError", "ImportError", "DLL load failed", "No module named")
#: What a torchvision built for another torch says (at import, or at its first operator).
_MISMATCH_MARKERS = ("torchvision::", "torchvision._C")


class CancelledRun(RuntimeError):
    """The user cancelled the run; the subprocess was stopped and its new files removed."""


class CommandFailed(RuntimeError):
    """The command exited with a non-zero code; the message is its one-line error."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class RunResult:
    """What a finished run reported: the ``done`` events (one per scene) and all events seen."""

    done: list = field(default_factory=list)
    events: list = field(default_factory=list)
    seconds: float = 0.0


def snapshot(folder: str) -> set:
    """Names directly inside ``folder`` (empty set if it does not exist)."""
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()


def partial_name(final: str) -> str:
    """The resumable store the command keeps next to an output on failure or cancel."""
    return final + ".partial"


def is_own_entry(name: str, finals: Iterable[str]) -> bool:
    """Whether ``name`` is one of ``finals``, a temporary name of one (``.<final>.*`` or
    ``<final>.tmp``, as ``sam2unext.files.write_atomically`` names them), or its ``.partial`` store."""
    return any(name in (f, f + ".tmp", partial_name(f)) or name.startswith(f".{f}.") for f in finals)


def remove_own_entries(
    folder: str, finals: Iterable[str], before: set, *, cancelled: bool, created_folder: bool = False
) -> list[str]:
    """Remove what this run left in ``folder``, and nothing else.

    Removed: the temporary names (``.<final>.*``) of ``finals`` (the run's output file names)
    that were not in ``before`` (the folder when the run started). On ``cancelled`` also the
    final files that appeared (a command killed after the grace period could not remove them)
    and the ``.partial`` store of each final name, which the command keeps for ``--resume``: a
    cancel keeps nothing. After a failure the store stays, so the run can be resumed. The folder
    itself goes only if this run made it and it is now empty.

    Returns:
        The paths removed.
    """
    finals = list(finals)
    removed = []
    for name in sorted(snapshot(folder)):
        if not is_own_entry(name, finals):
            continue
        own_store = cancelled and name in {partial_name(f) for f in finals}
        if name in before and not own_store:
            continue
        if name in finals and not cancelled:
            continue  # a failed command removes its outputs itself; one that appeared may be another run's
        if name.endswith(".partial") and not cancelled:
            continue  # a failed run's store stays for "Resume an interrupted run" (--resume)
        path = os.path.join(folder, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed.append(path)
        except OSError:
            pass
    if created_folder:
        try:
            os.rmdir(folder)  # only succeeds when empty: never removes anyone else's files
            removed.append(folder)
        except OSError:
            pass
    return removed


def run_command(
    args: list[str],
    *,
    on_event: Callable[[dict], None] = lambda e: None,
    is_cancelled: Callable[[], bool] = lambda: False,
    out_dir: Optional[str] = None,
    outputs: Iterable[str] = (),
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    poll_seconds: float = 0.1,
    on_started: Callable[[subprocess.Popen], None] = lambda p: None,
) -> RunResult:
    """Run the command, feeding each JSON event to ``on_event`` until it exits.

    Cancellation (``is_cancelled()`` true) sends SIGTERM (the CLI exits 143 and removes its
    temporary files), kills after ``grace_seconds``, then removes this run's own leftovers in
    ``out_dir`` (see :func:`remove_own_entries`), so nothing partial is left and nothing of
    another run is touched.

    Args:
        args: argument list from :func:`predict_args` / :func:`vectorize_args`.
        on_event: called in this thread for every parsed event.
        is_cancelled: polled every ``poll_seconds``.
        out_dir: output folder cleaned on cancel or failure (``None``: no cleanup).
        outputs: the file names this run writes in ``out_dir`` (:func:`commands.output_names`).
        grace_seconds: time between SIGTERM and SIGKILL.
        on_started: called with the :class:`subprocess.Popen` once started.

    Returns:
        A :class:`RunResult` with the ``done`` events.

    Raises:
        EnvironmentProblem: the executable cannot be started.
        CancelledRun: cancelled by the user.
        CommandFailed: non-zero exit; message from the ``error`` event or stderr.
    """
    cwd = os.getcwd()
    before = snapshot(out_dir) if out_dir else set()
    outputs = list(outputs)
    created = bool(out_dir) and not os.path.isdir(out_dir)

    def clean(cancelled: bool) -> None:
        if out_dir:
            remove_own_entries(out_dir, outputs, before, cancelled=cancelled, created_folder=created)

    if created:
        try:
            os.makedirs(out_dir)
        except OSError as exc:
            label = OPTION_LABELS["output"]
            raise CommandFailed(
                f"Cannot create the “{label}” {out_dir} ({exc.strerror or exc}); choose another “{label}”.", 2
            ) from exc
    start = time.monotonic()
    try:
        proc = subprocess.Popen(list(args), cwd=cwd, **popen_kwargs())
    except OSError as exc:
        clean(False)
        raise EnvironmentProblem(f"Could not start {args[0]!r}: {exc}. {INSTALL_HINT}") from exc
    on_started(proc)
    lines: queue.Queue[Optional[str]] = queue.Queue()
    stderr_tail: list[str] = []
    threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True).start()
    err_thread = threading.Thread(target=_pump, args=(proc.stderr, lambda s: _keep_tail(stderr_tail, s)), daemon=True)
    err_thread.start()
    result = RunResult()
    error_event: Optional[dict] = None
    cancelled = False
    stdout_open = True
    while stdout_open or proc.poll() is None:
        if is_cancelled():
            cancelled = True
            stop_process(proc, grace_seconds)
            break
        try:
            line = lines.get(timeout=poll_seconds)
        except queue.Empty:
            continue
        if line is None:
            stdout_open = False
            continue
        event = parse_event(line)
        if event is None:
            continue
        result.events.append(event)
        if event["event"] == "done":
            event = absolute_paths(event, cwd)
            result.done.append(event)
        elif event["event"] == "error":
            error_event = event
        on_event(event)
    proc.wait()
    err_thread.join(timeout=2.0)
    for stream in (proc.stdout, proc.stderr):
        try:
            stream.close()
        except OSError:
            pass
    result.seconds = time.monotonic() - start
    if cancelled:
        clean(True)
        raise CancelledRun("Cancelled; no outputs were kept.")
    if proc.returncode != 0:
        clean(False)
        stderr_text = "\n".join(stderr_tail)
        message = (
            (error_event or {}).get("message")
            or last_line(stderr_text)
            or f"sam2unext-geo exited with code {proc.returncode}"
        )
        message = plugin_words(message, (error_event or {}).get("options"))
        if any(marker in message or marker in stderr_text for marker in _MISMATCH_MARKERS):
            message += f" {REPAIR_HINT}"
        elif any(marker in stderr_text for marker in _BROKEN_MARKERS):
            message += f" The sam2unext-geo environment looks broken. {INSTALL_HINT}"
        raise CommandFailed(message, proc.returncode)
    return result


def absolute_paths(event: dict, cwd: str) -> dict:
    """The ``done`` event with ``probability``/``vector`` made absolute (the CLI may print them relative)."""
    event = dict(event)
    for key in ("probability", "vector"):
        if event.get(key):
            event[key] = os.path.normpath(os.path.join(cwd, event[key]))
    return event


def stop_process(proc: subprocess.Popen, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> int:
    """SIGTERM the process, SIGKILL it after ``grace_seconds``; returns its exit code."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM) if sys.platform != "win32" else proc.terminate()
        except OSError:
            pass
        try:
            proc.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _pump(stream: Iterable[str], put: Callable) -> None:
    try:
        for line in stream:
            put(line)
    except (OSError, ValueError):
        pass
    finally:
        put(None)


def _keep_tail(tail: list, line: Optional[str], keep: int = 50) -> None:
    if line is None:
        return
    tail.append(line.rstrip("\n"))
    del tail[:-keep]
