"""The one-click installer's plan, pins and fallback (pure Python: no QGIS, no pip run here).

The install itself, with real pip, an unreachable PyTorch index, a broken torchvision and the
Repair button, runs inside QGIS: ``inside_qgis.py::check_installer``.
"""

from __future__ import annotations

import re
import socket
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "qgis_plugin"))
from sam2unext_geo import environment, installer  # noqa: E402 - pure Python, no QGIS
from test_runner import make_exe  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def closed_port_url() -> str:
    """``http://127.0.0.1:<port>/`` where nothing listens (the port was bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def plan(tmp_path) -> installer.InstallPlan:
    wheel = tmp_path / "sam2unext_geo-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    return installer.make_plan(
        str(tmp_path / "profile"),
        python=sys.executable,
        wheel=wheel,
        detect=False,
        pypi_options=["--no-index", "--find-links", str(tmp_path / "pypi")],
    )


class RecordingSteps(installer._Steps):
    """The installer's step runner with pip replaced: records argv; ``fail`` decides which fail."""

    def __init__(self, plan, fail=lambda argv: False):
        self.lines: list = []
        super().__init__(plan, ["step"], self.lines.append, lambda p: None, lambda: False)
        self.commands: list = []
        self.fail = fail

    def run(self, argv, shown=None):
        self.commands.append(argv)
        if self.fail(argv):
            tail = "ERROR: No matching distribution found for torch==2.14.1+cpu"
            raise installer.StepFailed(f"pip failed: {tail}", tail)
        return ""


def test_plan_commands(plan, tmp_path):
    wheel = plan.wheel
    assert installer.bundled_wheel(tmp_path) == wheel and installer.wheel_version(wheel) == "0.1.0"
    with pytest.raises(installer.InstallError, match="build_zip.py"):
        installer.bundled_wheel(tmp_path / "none")
    assert plan.venv == tmp_path / "profile" / "sam2unext-geo" / "venv" and plan.torch_build == "cpu"
    assert installer.venv_command(plan) == [sys.executable, "-m", "venv", "--clear", str(plan.venv)]
    wheel_cmd = installer.wheel_command(plan)
    assert wheel_cmd[:4] == [str(plan.venv_python), "-m", "pip", "install"] and str(wheel) in wheel_cmd
    assert wheel_cmd[wheel_cmd.index("-c") + 1] == str(plan.constraints) and "--no-deps" not in wheel_cmd
    assert "torch" in plan.describe() and "PyTorch's index (cpu) else PyPI" in plan.describe()
    python, version = installer.find_python([str(tmp_path / "nope"), sys.executable])
    assert python == sys.executable and tuple(map(int, version.split(".")))[:2] >= (3, 10)
    with pytest.raises(installer.InstallError, match="Python >= 3.10"):
        installer.find_python([str(tmp_path / "nope")])
    reuse = installer.make_plan(
        str(tmp_path), python=sys.executable, wheel=wheel, detect=False, reuse_site_packages=[tmp_path / "site"]
    )
    assert "--without-pip" in installer.venv_command(reuse) and "--no-deps" in installer.wheel_command(reuse)
    assert installer.torch_build(None) == "cpu"
    assert installer.torch_build(installer.Gpu("H200", (12, 8))) == "cu126"
    assert installer.torch_build(installer.Gpu("T4", (12, 2))) == "cu121"
    assert installer.torch_build(installer.Gpu("old", (11, 4))) == "cpu"


def test_the_pair_is_pinned_and_comes_from_one_index(plan):
    """torch and torchvision always together, at the README's versions; from PyTorch's index with its
    local label (no other index has ``+cpu`` wheels), so pip cannot take torchvision from elsewhere."""
    index, pypi = installer.torch_sources(plan, platform="linux")
    assert index.index == "https://download.pytorch.org/whl/cpu" and index.pins == [
        f"torch=={installer.TORCH_VERSION}+cpu",
        f"torchvision=={installer.TORCHVISION_VERSION}+cpu",
    ]
    assert index.pip_args[:2] == ["--index-url", index.index] and "--retries" in index.pip_args
    assert pypi.index is None and pypi.pins == [
        f"torch=={installer.TORCH_VERSION}",
        f"torchvision=={installer.TORCHVISION_VERSION}",
    ]
    assert [s.name for s in installer.torch_sources(plan, platform="darwin")] == ["PyPI"]
    gpu = installer.InstallPlan(**{**plan.__dict__, "torch_build": "cu126"})
    assert installer.torch_sources(gpu, platform="win32")[0].pins[0].endswith("+cu126")
    forced, plain = installer.torch_commands(plan, pypi, reinstall=True)
    assert forced.index("--force-reinstall") and "--no-deps" in forced and "--force-reinstall" not in plain
    assert set(pypi.pins) <= set(forced) and set(pypi.pins) <= set(plain)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pinned = re.findall(r"torch==(\S+) torchvision==(\S+)", readme)
    assert pinned and set(pinned) == {(installer.TORCH_VERSION, installer.TORCHVISION_VERSION)}, pinned


def test_unreachable_index_falls_back_to_pypi(plan):
    """A real request to a closed port: refused at once; PyPI's pins are installed, and said so."""
    plan.torch_index = closed_port_url()
    t0 = time.monotonic()
    problem = installer.index_problem(installer.torch_index("cpu", plan.torch_index), timeout=5.0)
    assert problem and time.monotonic() - t0 < 5.0, problem
    steps = RecordingSteps(plan)
    plan.venv.parent.mkdir(parents=True)
    source = installer.install_torch(plan, steps)
    assert source.name == "PyPI" and len(steps.commands) == 1
    assert set(source.pins) <= set(steps.commands[0]) and "--index-url" not in steps.commands[0]
    assert steps.commands[0][-3:] == ["--no-index", "--find-links", plan.pypi_options[-1]]
    assert any("did not answer within 5 s" in line and "using PyPI" in line for line in steps.lines), steps.lines
    assert plan.constraints.read_text().split() == source.pins  # the wheel step cannot swap them
    # a server that accepts and never answers is given up after the timeout, not pip's minutes of retries
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        t0 = time.monotonic()
        problem = installer.index_problem(f"http://127.0.0.1:{silent.getsockname()[1]}/cpu", timeout=0.5)
        assert "timed out" in problem or "no answer within 0.5 s" in problem, problem
        assert time.monotonic() - t0 < 1.5


def test_pip_failing_on_the_index_falls_back_to_pypi(plan, monkeypatch):
    monkeypatch.setattr(installer, "index_problem", lambda url, timeout: None)  # the index answers
    plan.venv.parent.mkdir(parents=True)
    steps = RecordingSteps(plan, fail=lambda argv: "--index-url" in argv)
    source = installer.install_torch(plan, steps)
    assert source.name == "PyPI" and [("--index-url" in c) for c in steps.commands] == [True, False]
    assert any("failed" in line and "using PyPI" in line for line in steps.lines)
    steps = RecordingSteps(plan, fail=lambda argv: True)
    with pytest.raises(installer.InstallError, match="No matching distribution"):
        installer.install_torch(plan, steps)


def test_repair_needs_an_environment(plan):
    with pytest.raises(installer.InstallError, match="no environment .* click Install"):
        installer.repair(plan, log=lambda line: None)


def test_detect_gpu_reads_nvidia_smi(tmp_path, monkeypatch):
    """A stand-in nvidia-smi (the real one is not on the test machines): name and driver CUDA version."""
    make_exe(
        tmp_path,
        """
        import sys
        if any(a.startswith("--query-gpu") for a in sys.argv):
            print("NVIDIA H200")
        else:
            print("| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: 12.4     |")
    """,
        name="nvidia-smi",
    )
    monkeypatch.setenv("PATH", str(tmp_path))
    gpu = installer.detect_gpu()
    assert gpu == installer.Gpu("NVIDIA H200", (12, 4)) and installer.torch_build(gpu) == "cu124"
    monkeypatch.setenv("PATH", str(tmp_path / "none"))
    assert installer.detect_gpu() is None


def test_environment_lines_say_which_gpu_and_what_to_do():
    assert environment.gpu_text({"gpu": True, "gpu_name": "NVIDIA H200", "cuda": "12.6"}) == (
        "GPU found: NVIDIA H200, CUDA 12.6"
    )
    assert environment.gpu_text({"gpu": False}) == "no GPU found: runs on the CPU"
    assert environment.torch_problem({"torch": "2.14.1"}) is None
    broken = environment.torch_problem({"torchvision_error": "RuntimeError: operator torchvision::nms does not exist"})
    assert broken.startswith("torchvision does not import (RuntimeError") and "click Repair" in broken


def test_summary_line(plan):
    source = installer.torch_sources(plan)[-1]
    result = installer.InstallResult(
        "/env/bin/sam2unext-geo",
        source,
        {"torch": "2.14.1", "torchvision": "0.29.1", "gpu": True, "gpu_name": "NVIDIA H200", "cuda": "12.6"},
        {"tiles_run": 1, "device": "cuda", "valid_pixels": 65536, "seconds": 0.4},
    )
    assert result.summary() == textwrap.dedent(
        """\
        torch 2.14.1 + torchvision 0.29.1 from PyPI — GPU found: NVIDIA H200, CUDA 12.6 — demo prediction OK \
(256 px scene on cuda, 0.4 s)"""
    )
