"""Helpers for the command tests: run ``sam2unext-geo`` in a subprocess, write small scenes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sam2unext.geo.demo import generate_scene, write_scene

#: The console script next to this interpreter (a user's command), else ``python -m``.
_SCRIPT = Path(sys.executable).with_name("sam2unext-geo")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "sam2unext.cli"]


def run_cli(*args: str | Path, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``sam2unext-geo ARGS`` and capture its output (never raises on a non-zero exit)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    return subprocess.run([*COMMAND, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=env)


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
