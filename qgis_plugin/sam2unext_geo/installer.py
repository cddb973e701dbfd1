"""One-click environment: a virtualenv in the QGIS profile folder with torch and the bundled wheel.

Pure Python (no Qt): the install dialog runs :func:`install` (or :func:`repair`) in a background
task and shows its log lines and progress. :func:`install`:

1. find a Python >= 3.10 (:func:`find_python`);
2. ``python -m venv <profile>/sam2unext-geo/venv``;
3. install the pinned pair ``torch==TORCH_VERSION`` and ``torchvision==TORCHVISION_VERSION``
   (:func:`install_torch`): from PyTorch's own index of the build the driver supports (``cu126``
   … when ``nvidia-smi`` reports a GPU, else ``cpu``) when that index answers within
   ``index_timeout`` seconds, else from PyPI (whose Linux build is the CUDA one; it runs on a CPU
   too). Both packages always come from the same index, pinned with the index's local label
   (``torch==2.14.1+cpu``), so pip cannot pair a torchvision with another build of torch;
4. ``pip install <the sam2unext-geo wheel carried in the plugin zip>`` (its other dependencies
   from PyPI) under a constraints file holding the pair, so no dependency can swap torch;
5. check the command: ``sam2unext-geo --version`` matches the wheel;
6. check torch, torchvision and a prediction (:data:`CHECK_CODE`, one process of the new
   environment's Python): they import, torchvision's ``nms`` operator runs, which GPU torch
   sees, and the demo weights predict a generated 256 px scene through ``predict_raster``.

A failed check says what failed and offers :func:`repair`: reinstall the pinned pair (same
fallback), then the same checks.

For tests and offline machines: ``pip_options`` are added to every pip call; ``pypi_options``
say what "PyPI" is (e.g. ``["--no-index", "--find-links", DIR]``); ``torch_index`` replaces
PyTorch's index URL; ``reuse_site_packages`` makes the new environment see the packages of an
existing one (a ``.pth`` file; the venv is then made without its own pip, setuptools or torch,
which come from that environment, and pip runs with ``--no-deps``), so nothing is downloaded;
the wheel itself is still installed into the new environment.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .environment import EXECUTABLE_NAME, TORCH_PROBE, gpu_text, popen_kwargs

MIN_PYTHON = (3, 10)
WHEEL_DIR = Path(__file__).resolve().parent / "wheels"
TORCH_INDEX = "https://download.pytorch.org/whl/"
#: The torch and torchvision releases installed together (the pair the README's install line pins).
TORCH_VERSION, TORCHVISION_VERSION = "2.14.1", "0.29.1"
#: Seconds PyTorch's index has to answer before PyPI's wheels are used instead.
INDEX_TIMEOUT = 5.0
#: pip's own socket timeout and retries against PyTorch's index (PyPI keeps pip's defaults).
INDEX_PIP_OPTIONS = ("--timeout", "15", "--retries", "1")
#: CUDA builds of torch, newest first: (minimum driver CUDA version, index suffix).
CUDA_BUILDS = (((12, 6), "cu126"), ((12, 4), "cu124"), ((12, 1), "cu121"), ((11, 8), "cu118"))
#: Side of the generated scene of the prediction check.
CHECK_SCENE_SIZE = 256
#: The final check, run by the new environment's Python with a scratch folder as its argument:
#: :data:`environment.TORCH_PROBE` (torch, torchvision's ``nms``, the GPU; exit 3 when torch or
#: torchvision does not import), then a real prediction through the public API: the demo weights
#: on a generated georeferenced scene, on the GPU when torch found one. Its last line is JSON.
CHECK_CODE = (
    TORCH_PROBE + "if 'torch_error' in info or 'torchvision_error' in info:\n"
    "    sys.exit(3)\n"
    "import os, time\n"
    "import numpy as np, rasterio\n"
    "from rasterio.transform import from_origin\n"
    "from sam2unext import load_model\n"
    "from sam2unext.geo import predict_raster\n"
    f"size = {CHECK_SCENE_SIZE}\n"
    "yy, xx = np.mgrid[0:size, 0:size]\n"
    "disc = (xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 4) ** 2\n"
    "rgb = np.stack([np.where(disc, hi, lo + (xx + yy) % 23) for lo, hi in ((60, 200), (80, 190), (40, 150))])\n"
    "scene = os.path.join(sys.argv[1], 'check_scene.tif')\n"
    "profile = dict(driver='GTiff', width=size, height=size, count=3, dtype='uint8', crs='EPSG:32633',\n"
    "               transform=from_origin(500000.0, 5000000.0, 0.5, 0.5))\n"
    "with rasterio.open(scene, 'w', **profile) as dst:\n"
    "    dst.write(rgb.astype('uint8'))\n"
    "device = 'cuda' if info['gpu'] else 'cpu'\n"
    "t0 = time.monotonic()\n"
    "model = load_model('demo', device=device)\n"
    "res = predict_raster(scene, os.path.join(sys.argv[1], 'check_prob.tif'), model=model, progress='none')\n"
    "with rasterio.open(res.probability) as src:\n"
    "    valid = int((src.read_masks(1) > 0).sum())\n"
    "print(json.dumps({'tiles_run': res.tiles_run, 'device': device, 'valid_pixels': valid,\n"
    "                  'seconds': round(time.monotonic() - t0, 2)}))\n"
)

Log = Callable[[str], None]


class InstallError(RuntimeError):
    """An install step failed; the message says which and what to do.

    ``repairable``: the environment exists and :func:`repair` is the action that fixes it.
    """

    def __init__(self, message: str, repairable: bool = False):
        super().__init__(message)
        self.repairable = repairable


class InstallCancelled(InstallError):
    """The user cancelled; nothing falls back or retries after this."""


@dataclass
class Gpu:
    """What ``nvidia-smi`` reports: GPU name and the driver's CUDA version."""

    name: str
    cuda: Optional[tuple] = None


@dataclass
class TorchSource:
    """Where torch and torchvision come from: PyTorch's index of one build, or PyPI."""

    name: str  # "PyTorch's index (cpu)" or "PyPI"
    index: Optional[str]  # the PyTorch index URL; None for PyPI
    pins: list  # ["torch==2.14.1+cpu", "torchvision==0.29.1+cpu"]
    pip_args: list  # index options for pip


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
    pypi_options: list = field(default_factory=list)  # what "PyPI" is: [] = pip's configured index
    torch_index: str = TORCH_INDEX  # base URL of PyTorch's indexes (the build is appended)
    index_timeout: float = INDEX_TIMEOUT

    @property
    def executable(self) -> Path:
        """The ``sam2unext-geo`` command the environment will have."""
        sub = "Scripts" if os.name == "nt" else "bin"
        return self.venv / sub / (EXECUTABLE_NAME + (".exe" if os.name == "nt" else ""))

    @property
    def venv_python(self) -> Path:
        return self.venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

    @property
    def constraints(self) -> Path:
        """The constraints file holding the installed torch pair (next to the environment)."""
        return self.venv.parent / "torch-constraints.txt"

    def exists(self) -> bool:
        """Whether an environment is already there (then it can be repaired)."""
        return self.venv_python.exists()

    def describe(self) -> str:
        """A few lines for the dialog: what will be installed where."""
        gpu = f"{self.gpu.name} (driver CUDA {'.'.join(map(str, self.gpu.cuda or ()))})" if self.gpu else "none found"
        sources = " else ".join(s.name for s in torch_sources(self))
        lines = [
            f"Python: {self.python} ({self.python_version})",
            f"Environment: {self.venv}" + (" (exists: Repair can fix it)" if self.exists() else ""),
            f"sam2unext-geo wheel: {self.wheel.name}",
            f"GPU (nvidia-smi): {gpu}",
            f"torch {TORCH_VERSION} + torchvision {TORCHVISION_VERSION} from: {sources}",
        ]
        if self.reuse_site_packages:
            lines.append("Reusing installed packages from: " + ", ".join(map(str, self.reuse_site_packages)))
        if self.pip_options:
            lines.append("Extra pip options: " + " ".join(self.pip_options))
        return "\n".join(lines)


@dataclass
class InstallResult:
    """What a finished install or repair proved."""

    executable: str
    source: TorchSource
    torch: dict  # the TORCH_PROBE result: torch, torchvision, cuda, gpu, gpu_name
    prediction: dict  # tiles_run, device, valid_pixels, seconds

    def summary(self) -> str:
        """The environment line of the dialog: torch pair and source, GPU, the prediction check."""
        check = (
            f"demo prediction OK ({CHECK_SCENE_SIZE} px scene on {self.prediction.get('device')}, "
            f"{self.prediction.get('seconds', 0):.1f} s)"
        )
        return (
            f"torch {self.torch.get('torch')} + torchvision {self.torch.get('torchvision')} from "
            f"{self.source.name} — {gpu_text(self.torch)} — {check}"
        )


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


def torch_index(build: str, base: str = TORCH_INDEX) -> str:
    """The PyTorch wheel index of a build (``cpu``, ``cu126`` …) under ``base``."""
    return base.rstrip("/") + "/" + build


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
    pypi_options: Optional[list] = None,
    torch_index: str = TORCH_INDEX,
    index_timeout: float = INDEX_TIMEOUT,
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
        pypi_options=list(pypi_options or []),
        torch_index=torch_index,
        index_timeout=index_timeout,
    )


# commands ----------------------------------------------------------------------------------
def torch_pins(build: Optional[str] = None) -> list:
    """``torch==X`` and ``torchvision==Y``; with the local label of a PyTorch index build
    (``+cpu``, ``+cu126``), which no wheel of another index carries."""
    label = f"+{build}" if build else ""
    return [f"torch=={TORCH_VERSION}{label}", f"torchvision=={TORCHVISION_VERSION}{label}"]


def torch_sources(plan: InstallPlan, platform: str = sys.platform) -> list:
    """Where to take the pair from, in order: PyTorch's index of the plan's build, then PyPI.

    On macOS PyPI's wheels are the ones PyTorch's index has (without a local label): PyPI only.
    """
    sources = []
    if platform != "darwin":
        url = torch_index(plan.torch_build, plan.torch_index)
        sources.append(
            TorchSource(
                f"PyTorch's index ({plan.torch_build})",
                url,
                torch_pins(plan.torch_build),
                ["--index-url", url, *INDEX_PIP_OPTIONS],
            )
        )
    sources.append(TorchSource("PyPI", None, torch_pins(), list(plan.pypi_options)))
    return sources


def venv_command(plan: InstallPlan) -> list:
    """``python -m venv --clear VENV`` (``--without-pip`` when packages are reused)."""
    argv = [plan.python, "-m", "venv", "--clear"]
    if plan.reuse_site_packages:
        argv.append("--without-pip")  # pip, setuptools and torch come from the reused environment
    return argv + [str(plan.venv)]


def pip_command(plan: InstallPlan, *args: str) -> list:
    """``<venv python> -m pip install ARGS`` plus ``pip_options`` (and ``--no-deps`` when reusing:
    the dependencies are those of the reused environment, whose resolution pip cannot redo offline)."""
    argv = [str(plan.venv_python), "-m", "pip", "install", "--disable-pip-version-check", *args, *plan.pip_options]
    return argv + (["--no-deps"] if plan.reuse_site_packages else [])


def torch_commands(plan: InstallPlan, source: TorchSource, reinstall: bool = False) -> list:
    """The pip calls that install the pair from ``source``.

    ``reinstall`` (repair): ``--force-reinstall --no-deps`` of the two packages, then a plain
    install of the pair for any dependency the new build needs and the old one did not.
    """
    plain = pip_command(plan, *source.pins, *source.pip_args)
    if not reinstall:
        return [plain]
    forced = pip_command(plan, "--force-reinstall", "--no-deps", *source.pins, *source.pip_args)
    return [forced] if plan.reuse_site_packages else [forced, plain]


def wheel_command(plan: InstallPlan) -> list:
    """pip install of the bundled wheel; its dependencies from PyPI, torch held by the constraints file."""
    return pip_command(plan, str(plan.wheel), "-c", str(plan.constraints), *plan.pypi_options)


# steps --------------------------------------------------------------------------------------
def index_problem(url: str, timeout: float) -> Optional[str]:
    """None when ``url`` answers with its ``torch/`` page within ``timeout`` seconds, else why not.

    The request runs in a daemon thread so a slow name lookup (not covered by socket timeouts)
    cannot hold the install longer than ``timeout``.
    """
    answer: list = []

    def ask() -> None:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/torch/", timeout=timeout) as response:
                answer.append(None if response.status < 400 else f"HTTP {response.status}")
        except urllib.error.HTTPError as exc:
            answer.append(f"HTTP {exc.code}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            answer.append(str(getattr(exc, "reason", exc)))

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(timeout)
    return answer[0] if answer else f"no answer within {timeout:g} s"


class _Steps:
    """Runs numbered steps: a header, the commands' output streamed to ``log``, the progress bar."""

    def __init__(self, plan: InstallPlan, titles: list, log: Log, progress, is_cancelled):
        self.plan, self.titles, self.log = plan, titles, log
        self.progress, self.is_cancelled = progress, is_cancelled
        self.index = -1
        self.started = 0.0

    def next(self) -> str:
        if self.index >= 0:
            self.log(f"-- {self.titles[self.index]}: done in {time.monotonic() - self.started:.1f} s")
        self.index += 1
        self.progress(100.0 * self.index / len(self.titles))
        self.started = time.monotonic()
        if self.index < len(self.titles):
            self.log(f"\n== {self.index + 1}/{len(self.titles)} {self.titles[self.index]}")
            return self.titles[self.index]
        return ""

    def run(self, argv: list, shown: Optional[str] = None) -> str:
        """Run ``argv`` (logged as ``shown`` when given: a long ``-c`` program is not printed)."""
        self.log("$ " + (shown or " ".join(argv)))
        return _run_step(argv, self.log, self.is_cancelled, cwd=str(self.plan.venv.parent))


def install_torch(plan: InstallPlan, steps: _Steps, reinstall: bool = False) -> TorchSource:
    """Install the pinned pair from the first source that works (see :func:`torch_sources`).

    PyTorch's index is used only when it answers within ``plan.index_timeout``; if pip then fails
    with it, PyPI is tried. The constraints file is written for the later pip calls.

    Raises:
        InstallError: every source failed (the last failure's message).
    """
    sources = torch_sources(plan)
    for n, source in enumerate(sources):
        last = n == len(sources) - 1
        if source.index:
            problem = index_problem(source.index, plan.index_timeout)
            if problem is not None:
                steps.log(
                    f"PyTorch's index {source.index} did not answer within {plan.index_timeout:g} s "
                    f"({problem}); using PyPI's wheels instead (PyPI's Linux torch is the CUDA build: "
                    "it runs on a CPU too)."
                )
                continue
        try:
            for argv in torch_commands(plan, source, reinstall):
                steps.run(argv)
        except InstallCancelled:
            raise
        except InstallError as exc:
            if last:
                raise
            steps.log(f"Installing from {source.name} failed ({exc}); using PyPI's wheels instead.")
            continue
        plan.constraints.write_text("".join(pin + "\n" for pin in source.pins), encoding="utf-8")
        steps.log(f"torch and torchvision: {' and '.join(source.pins)} from {source.name}")
        return source
    raise InstallError("No source for torch was tried.")  # unreachable: PyPI is always last


def check_command(plan: InstallPlan, steps: _Steps) -> str:
    """``sam2unext-geo --version`` runs and names the wheel's version."""
    try:
        output = steps.run([str(plan.executable), "--version"])
    except StepFailed as exc:
        raise InstallError(repair_advice(f"`sam2unext-geo --version` failed: {exc.tail}."), True) from exc
    expected = wheel_version(plan.wheel)
    if expected not in output:
        raise InstallError(
            f"{plan.executable} reports {output.strip()!r}, not version {expected} of "
            f"{plan.wheel.name}; another sam2unext-geo shadows it."
        )
    return output.strip()


def check_prediction(plan: InstallPlan, steps: _Steps) -> tuple:
    """torch and torchvision import, torchvision's ``nms`` runs, and a real prediction runs with the
    demo weights on a generated scene (:data:`CHECK_CODE`), in the new environment.

    Returns:
        ``(probe, prediction)``: the torch probe (versions, GPU) and ``{"tiles_run", "device",
        "valid_pixels", "seconds"}``.

    Raises:
        InstallError: (repairable) torch or torchvision does not import, or the prediction failed;
            the message quotes the error.
    """
    folder = Path(tempfile.mkdtemp(prefix="check-", dir=str(plan.venv.parent)))
    try:
        output = steps.run([str(plan.venv_python), "-c", CHECK_CODE, str(folder)], shown="python -c CHECK_CODE")
    except StepFailed as exc:
        output = "\n".join(exc.output)
        probe = _json_line(output, "python")
        error = (probe or {}).get("torch_error") or (probe or {}).get("torchvision_error")
        if error:
            which = "torch" if probe.get("torch_error") else "torchvision"
            raise InstallError(
                repair_advice(f"{which} does not import in the new environment: {error}."), True
            ) from exc
        raise InstallError(repair_advice(f"The prediction check failed: {exc.tail}."), True) from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    probe, prediction = _json_line(output, "python"), _json_line(output, "tiles_run")
    if probe is None or prediction is None or not prediction.get("valid_pixels"):
        raise InstallError(repair_advice("The prediction check gave no result (see the log above)."), True)
    steps.log(
        f"torch {probe.get('torch')}, torchvision {probe.get('torchvision')}; {gpu_text(probe)}; "
        f"{prediction['tiles_run']} tile(s) predicted on {prediction['device']} in {prediction['seconds']:.1f} s"
    )
    return probe, prediction


def _json_line(output: str, key: str) -> Optional[dict]:
    """The last JSON object line of ``output`` that has ``key``."""
    for line in reversed(output.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and key in obj:
                return obj
    return None


def repair_advice(message: str) -> str:
    """``message`` and the one action that fixes a broken torch pair."""
    return (
        f"{message} Click Repair: it reinstalls torch {TORCH_VERSION} and torchvision "
        f"{TORCHVISION_VERSION}, a matching pair."
    )


def verify(plan: InstallPlan, steps: _Steps, source: TorchSource) -> InstallResult:
    """The checks (their steps must be next in ``steps``): the command, then torch and a prediction."""
    steps.next()
    check_command(plan, steps)
    steps.next()
    probe, prediction = check_prediction(plan, steps)
    steps.next()
    return InstallResult(str(plan.executable), source, probe, prediction)


CHECK_TITLES = ["Check the command", "Check torch, torchvision and a prediction"]


def install(
    plan: InstallPlan,
    *,
    log: Log = print,
    progress: Callable[[float], None] = lambda p: None,
    is_cancelled: Callable[[], bool] = lambda: False,
) -> InstallResult:
    """Make the environment and prove it works (see the module docstring).

    Raises:
        InstallError: a step failed (message names the step and the command's last line;
            ``repairable`` after a failed check), or the run was cancelled.
    """
    titles = ["Create the environment", "Install torch and torchvision", f"Install {plan.wheel.name}", *CHECK_TITLES]
    steps = _Steps(plan, titles, log, progress, is_cancelled)
    log(plan.describe())
    plan.venv.parent.mkdir(parents=True, exist_ok=True)
    t_all = time.monotonic()
    steps.next()
    steps.run(venv_command(plan))
    if plan.reuse_site_packages:
        _write_reuse_pth(plan)
    steps.next()
    source = install_torch(plan, steps)
    steps.next()
    steps.run(wheel_command(plan))
    result = verify(plan, steps, source)
    log(f"\nInstalled and checked in {time.monotonic() - t_all:.1f} s: {plan.executable}\n{result.summary()}")
    return result


def repair(
    plan: InstallPlan,
    *,
    log: Log = print,
    progress: Callable[[float], None] = lambda p: None,
    is_cancelled: Callable[[], bool] = lambda: False,
) -> InstallResult:
    """Reinstall the pinned torch and torchvision into the existing environment, then the checks.

    Raises:
        InstallError: no environment to repair, a step failed, or the run was cancelled.
    """
    if not plan.exists():
        raise InstallError(f"There is no environment at {plan.venv} to repair; click Install.")
    steps = _Steps(plan, ["Reinstall torch and torchvision", *CHECK_TITLES], log, progress, is_cancelled)
    log(plan.describe())
    t_all = time.monotonic()
    steps.next()
    source = install_torch(plan, steps, reinstall=True)
    result = verify(plan, steps, source)
    log(f"\nRepaired and checked in {time.monotonic() - t_all:.1f} s: {plan.executable}\n{result.summary()}")
    return result


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


class StepFailed(InstallError):
    """A command exited with an error; ``tail`` is its last output line, ``output`` all of them."""

    def __init__(self, message: str, tail: str, output: Optional[list] = None):
        super().__init__(message)
        self.tail = tail
        self.output = output or []


def _run_step(argv: list, log: Log, is_cancelled: Callable[[], bool], cwd: str) -> str:
    """Run one step in ``cwd`` (a neutral folder: a source checkout as the current folder would
    shadow the installed package in ``python -c``), streaming its output lines to ``log``."""
    kwargs = popen_kwargs()
    kwargs["stderr"] = subprocess.STDOUT
    kwargs["cwd"] = cwd
    try:
        proc = subprocess.Popen(argv, **kwargs)
    except OSError as exc:
        raise StepFailed(f"Could not start {argv[0]}: {exc}", str(exc)) from exc
    lines = []
    with proc.stdout:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            log(lines[-1])
            if is_cancelled():
                proc.terminate()
                proc.wait()
                raise InstallCancelled("Install cancelled; the environment is incomplete: click Install again.")
    proc.wait()
    if proc.returncode != 0:
        tail = next((ln for ln in reversed(lines) if ln.strip()), f"exit code {proc.returncode}").strip()
        raise StepFailed(f"`{' '.join(argv[:4])} …` failed: {tail} (see the log above).", tail, lines)
    return "\n".join(lines)
