"""Helpers for the command tests: run ``sam2unext-geo`` (in this process, or as a real
subprocess where the process itself is under test), write small scenes."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sam2unext.geo.demo.demo_scene import generate_scene, write_scene

#: The console script next to this interpreter (a user's command), else ``python -m``.
_SCRIPT = Path(sys.executable).with_name("sam2unext-geo")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "sam2unext.cli"]


@dataclass
class CliResult:
    """What one run of the command produced (the fields of ``subprocess.CompletedProcess``)."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str | Path, cwd: Path | None = None) -> CliResult:
    """Run ``sam2unext-geo ARGS`` in this process through ``sam2unext.cli.main.main``.

    The same function the console script calls, so the exit code, the error mapping and
    the output streams are the command's; only the interpreter start-up (torch import) is
    saved. Never raises on a non-zero exit.
    """
    from sam2unext.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:  # SIGTERM's handler; not expected in these runs
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(previous)
    return CliResult(code, out.getvalue(), err.getvalue())


def _process_env() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))


def run_cli_process(*args: str | Path, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real console script in a subprocess (for exit statuses of the process itself)."""
    return subprocess.run(
        [*COMMAND, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=_process_env()
    )


@dataclass
class Interrupted:
    """How a signalled ``predict`` process ended: exit status, every JSON event, stderr."""

    returncode: int
    events: list[dict]
    stderr: str


def interrupt_predict(scene: Path, out: Path, sig: int, *, timeout: float = 120) -> Interrupted:
    """Run ``predict SCENE -o OUT --progress json`` as the real console script, send ``sig`` once
    tiles are being predicted (a ``predict`` progress event with ``done > 0``), wait for the end."""
    args = [*COMMAND, "predict", str(scene), "-o", str(out), "--preset", "sam2unext-test"]
    args += ["--progress", "json", "--batch-size", "1"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_process_env())
    events: list[dict] = []
    try:
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1].get("stage") == "predict" and events[-1]["done"] > 0:
                break
            assert time.monotonic() < deadline, "no progress event"
        proc.send_signal(sig)
        rest, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return Interrupted(proc.returncode, events + json_events(rest), stderr)


def json_events(stdout: str) -> list[dict]:
    """Parse every stdout line as JSON (fails the test on any other line)."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def write_small_scene(path: Path, *, size: int, seed: int, truth: Path | None = None) -> Path:
    """Write a small procedural scene (and optionally its truth mask)."""
    write_scene(generate_scene(size, seed=seed), path, truth)
    return path


def files_in(folder: Path) -> set[str]:
    """Names of all files under ``folder`` (hidden temporary files included)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
