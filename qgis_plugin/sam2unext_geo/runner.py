"""Run the ``sam2unext-geo`` command as a subprocess and follow its JSON-lines progress stream.

Pure Python (no Qt, no QGIS, no torch): the plugin's dialog task and its Processing
algorithms both drive the core through this module, and it is tested on its own.
The command is always started with an argument list, never through a shell.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

EXECUTABLE_NAME = "sam2unext-geo"
INSTALL_HINT = (
    "Install it into its own Python environment, e.g. "
    "`python3 -m venv ~/sam2unext-env && ~/sam2unext-env/bin/pip install sam2unext-geo` "
    "(or `pip install -e .` from a source checkout), then set the path of "
    "~/sam2unext-env/bin/sam2unext-geo once in the plugin's Environment settings."
)
# Variables QGIS sets for its own Python/GDAL/PROJ that would break a separate environment.
_ENV_VARS_TO_DROP = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "GDAL_DATA", "GDAL_DRIVER_PATH",
                     "PROJ_LIB", "PROJ_DATA", "QGIS_PREFIX_PATH")
DEFAULT_GRACE_SECONDS = 5.0
_BROKEN_MARKERS = ("ModuleNotFoundError", "ImportError", "DLL load failed", "No module named")


class EnvironmentProblem(RuntimeError):
    """The ``sam2unext-geo`` command is missing or does not run; the message says how to fix it."""


class CancelledRun(RuntimeError):
    """The user cancelled the run; the subprocess was stopped and its new files removed."""


class CommandFailed(RuntimeError):
    """The command exited with a non-zero code; the message is its one-line error."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class PredictOptions:
    """Everything ``sam2unext-geo predict`` needs; mirrors the dialog and the Processing algorithm."""

    scene: str
    out_dir: str
    preset: Optional[str] = None
    checkpoint: Optional[str] = None
    tile_size: Optional[int] = None
    overlap: float = 0.25
    batch_size: int = 4
    device: str = "auto"
    bands: Optional[str] = None
    threshold: float = 0.5
    vector: bool = True
    overwrite: bool = False


@dataclass
class RunResult:
    """What a finished run reported: the ``done`` events (one per scene) and all events seen."""

    done: list = field(default_factory=list)
    events: list = field(default_factory=list)
    seconds: float = 0.0


def predict_args(executable: str, options: PredictOptions) -> list[str]:
    """Build the argument list of a ``predict`` run with the JSON progress stream.

    Args:
        executable: path of ``sam2unext-geo``.
        options: run options; ``checkpoint`` wins over ``preset`` when both are set, except that
            a preset is still passed along (upstream ``.pth`` files need it).

    Returns:
        The argument list for :class:`subprocess.Popen` (no shell).

    Raises:
        ValueError: neither a preset nor a checkpoint is given.
    """
    if not options.preset and not options.checkpoint:
        raise ValueError("Choose a preset or a checkpoint file for the weights.")
    args = [executable, "predict", os.path.abspath(options.scene), "-o", os.path.abspath(options.out_dir)]
    if options.checkpoint:
        args += ["--checkpoint", str(options.checkpoint)]
    if options.preset:
        args += ["--preset", options.preset]
    if options.tile_size:
        args += ["--tile-size", str(int(options.tile_size))]
    args += ["--overlap", _num(options.overlap), "--batch-size", str(int(options.batch_size)),
             "--device", options.device, "--threshold", _num(options.threshold)]
    if options.bands:
        args += ["--bands", normalize_bands(options.bands)]
    args += ["--vector" if options.vector else "--no-vector", "--format", "gpkg"]
    if options.overwrite:
        args.append("--overwrite")
    args += ["--progress", "json"]
    return args


def vectorize_args(executable: str, probability: str, output: Optional[str], threshold: float,
                   overwrite: bool = False) -> list[str]:
    """Build the argument list of a ``vectorize`` run (probability raster → polygons).

    ``vectorize`` prints a text summary (no progress stream): the caller knows ``output``.
    """
    args = [executable, "vectorize", str(probability), "--threshold", _num(threshold)]
    if output:
        args += ["-o", str(output)]
    if overwrite:
        args.append("--overwrite")
    return args


def normalize_bands(text: str) -> str:
    """Turn ``"3, 2,1"`` into ``"3,2,1"``.

    Raises:
        ValueError: a band is not a positive integer.
    """
    parts = [p.strip() for p in str(text).replace(" ", ",").split(",") if p.strip()]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"Bands {text!r} must be 1-based band numbers separated by commas, e.g. 3,2,1.")
    return ",".join(parts)


def _num(value: float) -> str:
    return repr(float(value))


def find_executable(configured: Optional[str] = None) -> str:
    """Locate ``sam2unext-geo``: the configured path (file, or an environment/bin folder), else PATH.

    Raises:
        EnvironmentProblem: not found; the message carries the install command.
    """
    if configured:
        path = Path(os.path.expanduser(str(configured)))
        candidates = [path]
        if path.is_dir():
            names = [EXECUTABLE_NAME, EXECUTABLE_NAME + ".exe"]
            candidates = [path / sub / n for sub in ("", "bin", "Scripts") for n in names]
        for cand in candidates:
            if cand.is_file() and os.access(str(cand), os.X_OK):
                return str(cand)
        raise EnvironmentProblem(
            f"The configured sam2unext-geo command {str(configured)!r} does not exist or is not "
            f"executable. {INSTALL_HINT}")
    found = shutil.which(EXECUTABLE_NAME)
    if found:
        return found
    raise EnvironmentProblem(f"The sam2unext-geo command was not found on PATH. {INSTALL_HINT}")


def subprocess_env() -> dict:
    """The environment for the subprocess: QGIS's Python/GDAL/PROJ variables removed."""
    env = {k: v for k, v in os.environ.items() if k not in _ENV_VARS_TO_DROP}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _popen_kwargs() -> dict:
    kwargs = dict(stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                  env=subprocess_env(), text=True, encoding="utf-8", errors="replace", bufsize=1)
    if sys.platform == "win32":
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    return kwargs


def check_environment(executable: str, timeout: float = 120.0, full: bool = True) -> dict:
    """Run ``sam2unext-geo --version`` and (``full``) ``sam2unext-geo models``.

    ``--version`` is quick; ``models`` imports the whole core (torch) and takes seconds, so it is
    run by the dialog's Check button, not before every run.

    Returns:
        ``{"executable", "version", "models"}`` (``models`` is the command's text output).

    Raises:
        EnvironmentProblem: either command fails or times out; the message includes its error
            and the install command.
    """
    info = {"executable": executable}
    commands = (("version", ["--version"]), ("models", ["models"]))
    for key, extra in commands[:2 if full else 1]:
        kwargs = _popen_kwargs()
        kwargs.pop("bufsize")
        kwargs.pop("stdin")
        try:
            proc = subprocess.run([executable] + extra, stdin=subprocess.DEVNULL,
                                  timeout=timeout, **kwargs)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EnvironmentProblem(
                f"`{executable} {' '.join(extra)}` could not run ({exc}). {INSTALL_HINT}") from exc
        if proc.returncode != 0:
            tail = _last_line(proc.stderr) or _last_line(proc.stdout) or f"exit code {proc.returncode}"
            raise EnvironmentProblem(
                f"`{executable} {' '.join(extra)}` failed: {tail}. The sam2unext-geo environment "
                f"looks broken. {INSTALL_HINT}")
        info[key] = proc.stdout.strip()
    return info


def preset_names(models_output: str) -> list[str]:
    """Preset names from the table printed by ``sam2unext-geo models`` (first column)."""
    names = []
    for line in models_output.splitlines():
        words = line.split()
        if words and (words[0] == "demo" or re.fullmatch(r"[A-Za-z0-9][\w.]*-[\w.-]*\w", words[0])):
            names.append(words[0])
    return names


def environment_python(executable: str) -> Optional[str]:
    """The Python of the command's environment: from its ``#!`` line, else next to it (symlinks resolved)."""
    try:
        with open(executable, "rb") as f:
            first = f.readline(512).decode("utf-8", "replace")
    except OSError:
        first = ""
    if first.startswith("#!"):
        interpreter = first[2:].strip().split(" ")[0]
        if os.path.isfile(interpreter):
            return interpreter
    folder = Path(executable).resolve().parent
    for name in ("python.exe", "python", "python3"):
        if (folder / name).is_file():
            return str(folder / name)
    return None


def gpu_available(executable: str, timeout: float = 120.0) -> Optional[bool]:
    """Whether torch in the command's environment sees a CUDA GPU (``None``: could not tell)."""
    python = environment_python(executable)
    if python is None:
        return None
    kwargs = _popen_kwargs()
    for key in ("bufsize", "stdin"):
        kwargs.pop(key)
    try:
        proc = subprocess.run([python, "-c", "import torch; print(torch.cuda.is_available())"],
                              stdin=subprocess.DEVNULL, timeout=timeout, **kwargs)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = proc.stdout.strip()
    return {"True": True, "False": False}.get(out) if proc.returncode == 0 else None


def _last_line(text: Optional[str]) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def parse_event(line: str) -> Optional[dict]:
    """Parse one line of the progress stream; ``None`` for anything that is not a JSON event."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


STAGES = {"predict": (0.0, 85.0), "write": (85.0, 92.0), "vectorize": (92.0, 100.0)}


def progress_percent(event: dict, stage_weights: Optional[dict] = None) -> Optional[float]:
    """Map an event to an overall percentage (see ``STAGES``; ``done`` → 100 %; other stages → None)."""
    weights = stage_weights or STAGES
    kind = event.get("event")
    if kind in ("done", "complete"):
        return 100.0
    if kind != "progress":
        return None
    total = max(int(event.get("total") or 0), 1)
    frac = min(max(float(event.get("done") or 0) / total, 0.0), 1.0)
    if event.get("stage") not in weights:
        return None
    lo, hi = weights[event.get("stage")]
    return lo + (hi - lo) * frac


def snapshot(folder: str) -> set:
    """Names directly inside ``folder`` (empty set if it does not exist)."""
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()


def remove_new_entries(folder: str, before: set, created_folder: bool) -> list[str]:
    """Remove what appeared in ``folder`` since ``before`` (and the folder if this run made it).

    Returns:
        The paths removed.
    """
    removed = []
    for name in sorted(snapshot(folder) - before):
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
            os.rmdir(folder)
            removed.append(folder)
        except OSError:
            pass
    return removed


def run_command(args: list[str], *, on_event: Callable[[dict], None] = lambda e: None,
                is_cancelled: Callable[[], bool] = lambda: False, out_dir: Optional[str] = None,
                grace_seconds: float = DEFAULT_GRACE_SECONDS, poll_seconds: float = 0.1,
                on_started: Callable[[subprocess.Popen], None] = lambda p: None) -> RunResult:
    """Run the command, feeding each JSON event to ``on_event`` until it exits.

    Cancellation (``is_cancelled()`` true) sends SIGTERM (the CLI exits 143 and removes its
    temporary files), kills after ``grace_seconds``, then removes whatever appeared in
    ``out_dir`` during the run, so nothing partial is left.

    Args:
        args: argument list from :func:`predict_args` / :func:`vectorize_args`.
        on_event: called in this thread for every parsed event.
        is_cancelled: polled every ``poll_seconds``.
        out_dir: output folder cleaned on cancel or failure (``None``: no cleanup).
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
    created = bool(out_dir) and not os.path.isdir(out_dir)
    if created:
        try:
            os.makedirs(out_dir)
        except OSError as exc:
            raise CommandFailed(f"Cannot create the output folder {out_dir}: {exc}", 2) from exc
    start = time.monotonic()
    try:
        proc = subprocess.Popen(list(args), cwd=cwd, **_popen_kwargs())
    except OSError as exc:
        if out_dir:
            remove_new_entries(out_dir, before, created)
        raise EnvironmentProblem(f"Could not start {args[0]!r}: {exc}. {INSTALL_HINT}") from exc
    on_started(proc)
    lines: "queue.Queue[Optional[str]]" = queue.Queue()
    stderr_tail: list[str] = []
    threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True).start()
    err_thread = threading.Thread(target=_pump, args=(proc.stderr, lambda s: _keep_tail(stderr_tail, s)),
                                  daemon=True)
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
        if out_dir:
            remove_new_entries(out_dir, before, created)
        raise CancelledRun("Cancelled; no outputs were kept.")
    if proc.returncode != 0:
        if out_dir:
            remove_new_entries(out_dir, before, created)
        stderr_text = "\n".join(stderr_tail)
        message = (error_event or {}).get("message") or _last_line(stderr_text) \
            or f"sam2unext-geo exited with code {proc.returncode}"
        if any(marker in stderr_text for marker in _BROKEN_MARKERS):
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
