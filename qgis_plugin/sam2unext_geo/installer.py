"""One-click environment: a virtualenv in the QGIS profile folder with torch and the bundled wheel.

Pure Python (no Qt): the install dialog runs :func:`install` in a background task and shows its
log lines and progress. Steps:

1. find a Python >= 3.10 (:func:`find_python`);
2. ``python -m venv <profile>/sam2unext-geo/venv``;
3. ``pip install torch torchvision`` from the PyTorch index of the CUDA build the driver
   supports when ``nvidia-smi`` reports a GPU, else from the CPU index (:func:`torch_index`);
4. ``pip install <the sam2unext-geo wheel carried in the plugin zip>`` (its other dependencies
   from PyPI);
5. check that torch and ``sam2unext.geo`` import in the new environment;
6. check that ``<venv>/bin/sam2unext-geo --version`` runs and matches the wheel.

For tests and offline machines, ``pip_options`` are added to every pip call (e.g.
``["--no-index", "--find-links", DIR]``) and ``reuse_site_packages`` makes the new environment
see the packages of an existing one (a ``.pth`` file; the venv is then made without its own pip,
setuptools or torch, which come from that environment, and pip runs with ``--no-deps``), so
nothing is downloaded; the wheel itself is still installed into the new environment.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .environment import EXECUTABLE_NAME, popen_kwargs

MIN_PYTHON = (3, 10)
WHEEL_DIR = Path(__file__).resolve().parent / "wheels"
TORCH_INDEX = "https://download.pytorch.org/whl/"
#: CUDA builds of torch, newest first: (minimum driver CUDA version, index suffix).
CUDA_BUILDS = (((12, 6), "cu126"), ((12, 4), "cu124"), ((12, 1), "cu121"), ((11, 8), "cu118"))

Log = Callable[[str], None]


class InstallError(RuntimeError):
    """An install step failed; the message says which and what to do."""


@dataclass
class Gpu:
    """What ``nvidia-smi`` reports: GPU name and the driver's CUDA version."""

    name: str
    cuda: Optional[tuple] = None


@dataclass
class InstallPlan:
    """Everything :func:`install` does, decided before it starts (shown in the dialog)."""

    python: str
    python_version: str
    venv: Path
    wheel: Path
    torch_build: str  # "cpu" or "cu126", "cu124", ...
    gpu: Optional[Gpu] = None
    pip_options: list = field(default_factory=list)
    reuse_site_packages: Optional[list] = None  # site-packages folders of an existing environment

    @property
    def executable(self) -> Path:
        """The ``sam2unext-geo`` command the environment will have."""
        sub = "Scripts" if os.name == "nt" else "bin"
        return self.venv / sub / (EXECUTABLE_NAME + (".exe" if os.name == "nt" else ""))

    @property
    def venv_python(self) -> Path:
        return self.venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

    def describe(self) -> str:
        """A few lines for the dialog: what will be installed where."""
        gpu = f"{self.gpu.name} (driver CUDA {'.'.join(map(str, self.gpu.cuda or ()))})" if self.gpu else "none found"
        lines = [
            f"Python: {self.python} ({self.python_version})",
            f"Environment: {self.venv}",
            f"sam2unext-geo wheel: {self.wheel.name}",
            f"GPU (nvidia-smi): {gpu}",
            f"torch build: {'CPU' if self.torch_build == 'cpu' else 'CUDA ' + self.torch_build}",
        ]
        if self.reuse_site_packages:
            lines.append("Reusing installed packages from: " + ", ".join(map(str, self.reuse_site_packages)))
        if self.pip_options:
            lines.append("Extra pip options: " + " ".join(self.pip_options))
        return "\n".join(lines)


def python_version(python: str, timeout: float = 30.0) -> Optional[tuple]:
    """``(major, minor, micro)`` of an interpreter that can make venvs, else None."""
    code = "import sys, venv; print('%d.%d.%d' % sys.version_info[:3])"
    try:
        proc = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=timeout, env=popen_kwargs()["env"]
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", proc.stdout.strip()) if proc.returncode == 0 else None
    return tuple(int(g) for g in match.groups()) if match else None


def python_candidates() -> list[str]:
    """Interpreters to try, newest first: ``python3.13`` … ``python3.10``, ``python3``, QGIS's own."""
    names = [f"python3.{m}" for m in range(14, MIN_PYTHON[1] - 1, -1)] + ["python3", "python"]
    found = [shutil.which(n) for n in names]
    if os.name == "nt":
        found.append(os.path.join(sys.exec_prefix, "python.exe"))  # QGIS's own Python (OSGeo4W)
        found.append(shutil.which("py"))
    else:
        found.append(os.path.join(sys.exec_prefix, "bin", "python3"))
    seen, out = set(), []
    for path in found:
        if path and os.path.isfile(path) and os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            out.append(path)
    return out


def find_python(candidates: Optional[list] = None) -> tuple[str, str]:
    """The first interpreter >= 3.10 with ``venv``.

    Returns:
        ``(path, "3.x.y")``.

    Raises:
        InstallError: none found; says what to install.
    """
    tried = []
    for python in candidates if candidates is not None else python_candidates():
        version = python_version(python)
        tried.append(f"{python} ({'.'.join(map(str, version)) if version else 'not usable'})")
        if version and version[:2] >= MIN_PYTHON:
            return python, ".".join(map(str, version))
    raise InstallError(
        "No Python >= 3.10 with the venv module was found (tried: "
        + (", ".join(tried) or "none")
        + "). Install Python 3.10 or newer (Debian/Ubuntu: apt install python3 python3-venv; "
        "Windows/macOS: python.org), then click Install again."
    )


def detect_gpu(timeout: float = 20.0) -> Optional[Gpu]:
    """The first NVIDIA GPU ``nvidia-smi`` reports, with the driver's CUDA version; None without one."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        names = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=timeout
        )
        header = subprocess.run([smi], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    name = names.stdout.strip().splitlines()[0].strip() if names.returncode == 0 and names.stdout.strip() else ""
    if not name:
        return None
    match = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", header.stdout)
    return Gpu(name, (int(match.group(1)), int(match.group(2))) if match else None)


def torch_build(gpu: Optional[Gpu]) -> str:
    """``cpu``, or the newest CUDA build (``cu126`` …) the GPU's driver supports."""
    if gpu is None:
        return "cpu"
    if gpu.cuda is None:
        return CUDA_BUILDS[-1][1]
    for minimum, build in CUDA_BUILDS:
        if gpu.cuda >= minimum:
            return build
    return "cpu"


def torch_index(build: str) -> str:
    """The PyTorch wheel index of a build (``cpu``, ``cu126`` …)."""
    return TORCH_INDEX + build


def bundled_wheel(folder: Path = WHEEL_DIR) -> Path:
    """The ``sam2unext_geo-*.whl`` the plugin zip carries (the newest if several).

    Raises:
        InstallError: none bundled (a plugin folder from a source checkout).
    """
    wheels = sorted(glob.glob(str(folder / "sam2unext_geo-*.whl")))
    if not wheels:
        raise InstallError(
            f"No sam2unext-geo wheel in {folder}: install the plugin from the zip made by "
            "qgis_plugin/build_zip.py, or choose a wheel file."
        )
    return Path(wheels[-1])


def wheel_version(wheel: Path) -> str:
    """The version in a wheel's file name (``sam2unext_geo-0.1.0-py3-none-any.whl`` → ``0.1.0``)."""
    return Path(wheel).name.split("-")[1]


def default_venv(profile_folder: str) -> Path:
    """``<QGIS profile folder>/sam2unext-geo/venv``."""
    return Path(profile_folder) / "sam2unext-geo" / "venv"


def make_plan(
    profile_folder: str,
    *,
    python: Optional[str] = None,
    wheel: Optional[Path] = None,
    gpu: Optional[Gpu] = None,
    detect: bool = True,
    pip_options: Optional[list] = None,
    reuse_site_packages: Optional[list] = None,
    venv: Optional[Path] = None,
) -> InstallPlan:
    """Decide what to install (quick: a few subprocesses; run it off the GUI thread all the same).

    Raises:
        InstallError: no suitable Python, or no wheel.
    """
    if python:
        version = python_version(python)
        if not version or version[:2] < MIN_PYTHON:
            raise InstallError(f"{python} is not a Python >= 3.10 with venv; choose another interpreter.")
        python_text = ".".join(map(str, version))
    else:
        python, python_text = find_python()
    gpu = detect_gpu() if (gpu is None and detect) else gpu
    return InstallPlan(
        python=python,
        python_version=python_text,
        venv=Path(venv or default_venv(profile_folder)),
        wheel=Path(wheel) if wheel else bundled_wheel(),
        torch_build=torch_build(gpu),
        gpu=gpu,
        pip_options=list(pip_options or []),
        reuse_site_packages=[str(p) for p in reuse_site_packages] if reuse_site_packages else None,
    )


def steps(plan: InstallPlan) -> list[tuple[str, list]]:
    """The commands :func:`install` runs, as ``(title, argv)`` (the venv step first).

    With ``reuse_site_packages`` the pip steps add ``--no-deps``: the dependencies are those of the
    reused environment, whose own resolution pip cannot redo offline.
    """
    venv_cmd = [plan.python, "-m", "venv", "--clear"]
    extra = list(plan.pip_options)
    if plan.reuse_site_packages:
        venv_cmd.append("--without-pip")  # pip, setuptools and torch come from the reused environment
        extra.append("--no-deps")
    venv_cmd.append(str(plan.venv))
    pip = [str(plan.venv_python), "-m", "pip", "install", "--disable-pip-version-check"]
    return [
        ("Create the environment", venv_cmd),
        (
            f"Install torch ({'CPU' if plan.torch_build == 'cpu' else 'CUDA ' + plan.torch_build})",
            pip + ["torch", "torchvision", "--index-url", torch_index(plan.torch_build)] + extra,
        ),
        (f"Install {plan.wheel.name}", pip + [str(plan.wheel)] + extra),
        ("Check torch and the core import", [str(plan.venv_python), "-c", _IMPORT_CHECK]),
        ("Check the command", [str(plan.executable), "--version"]),
    ]


_IMPORT_CHECK = (
    "import torch, sam2unext.geo, sam2unext; "
    "print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'GPU', torch.cuda.is_available(), "
    "'sam2unext from', sam2unext.__file__)"
)


def install(
    plan: InstallPlan,
    *,
    log: Log = print,
    progress: Callable[[float], None] = lambda p: None,
    is_cancelled: Callable[[], bool] = lambda: False,
) -> str:
    """Run the install; returns the path of the new ``sam2unext-geo`` command.

    Raises:
        InstallError: a step failed (message names the step, the command's last line and the log),
            or the run was cancelled.
    """
    todo = steps(plan)
    log(plan.describe())
    plan.venv.parent.mkdir(parents=True, exist_ok=True)
    t_all = time.monotonic()
    for i, (title, argv) in enumerate(todo):
        progress(100.0 * i / len(todo))
        log(f"\n== {i + 1}/{len(todo)} {title}\n$ " + " ".join(argv))
        t0 = time.monotonic()
        output = _run_step(argv, log, is_cancelled, cwd=str(plan.venv.parent))
        log(f"-- {title}: done in {time.monotonic() - t0:.1f} s")
        if i == 0 and plan.reuse_site_packages:
            _write_reuse_pth(plan)
        if title == "Check the command":
            expected = wheel_version(plan.wheel)
            if expected not in output:
                raise InstallError(
                    f"{plan.executable} reports {output.strip()!r}, not version {expected} of "
                    f"{plan.wheel.name}; another sam2unext-geo shadows it."
                )
    progress(100.0)
    log(f"\nInstalled in {time.monotonic() - t_all:.1f} s: {plan.executable}")
    return str(plan.executable)


def _write_reuse_pth(plan: InstallPlan) -> None:
    out = subprocess.run(
        [str(plan.venv_python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        env=popen_kwargs()["env"],
        check=True,
    )
    site = Path(out.stdout.strip())
    site.mkdir(parents=True, exist_ok=True)
    (site / "_sam2unext_reuse.pth").write_text("".join(p + "\n" for p in plan.reuse_site_packages), encoding="utf-8")


def _run_step(argv: list, log: Log, is_cancelled: Callable[[], bool], cwd: str) -> str:
    """Run one step in ``cwd`` (a neutral folder: a source checkout as the current folder would
    shadow the installed package in ``python -c``), streaming its output lines to ``log``."""
    kwargs = popen_kwargs()
    kwargs["stderr"] = subprocess.STDOUT
    kwargs["cwd"] = cwd
    try:
        proc = subprocess.Popen(argv, **kwargs)
    except OSError as exc:
        raise InstallError(f"Could not start {argv[0]}: {exc}") from exc
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        log(lines[-1])
        if is_cancelled():
            proc.terminate()
            proc.wait()
            raise InstallError("Install cancelled; the environment is incomplete: click Install again.")
    proc.wait()
    if proc.returncode != 0:
        tail = next((ln for ln in reversed(lines) if ln.strip()), f"exit code {proc.returncode}")
        raise InstallError(f"`{' '.join(argv[:4])} …` failed: {tail.strip()} (see the log above).")
    return "\n".join(lines)
