"""Find the ``sam2unext-geo`` command of its own Python environment and check that it works.

Pure Python (no Qt): the command must never be imported into QGIS's Python; it is only run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

EXECUTABLE_NAME = "sam2unext-geo"
INSTALL_HINT = (
    "Click Install… in the plugin's Environment box: it makes its own Python environment with the "
    "sam2unext-geo wheel the plugin carries (sam2unext-geo is not on PyPI). Or, from a source checkout: "
    "`python3 -m venv ~/sam2unext-env && ~/sam2unext-env/bin/pip install /path/to/sam2unext-geo`, then "
    "set ~/sam2unext-env/bin/sam2unext-geo once in the Environment box."
)
# Variables QGIS sets for its own Python/GDAL/PROJ that would break a separate environment.
_ENV_VARS_TO_DROP = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "GDAL_DATA",
    "GDAL_DRIVER_PATH",
    "PROJ_LIB",
    "PROJ_DATA",
    "QGIS_PREFIX_PATH",
)


class EnvironmentProblem(RuntimeError):
    """The ``sam2unext-geo`` command is missing or does not run; the message says how to fix it."""


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
            f"executable. {INSTALL_HINT}"
        )
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


def popen_kwargs() -> dict:
    """Keyword arguments for Popen: pipes, text, cleaned environment, no console window."""
    kwargs = dict(
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(),
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
    )
    if sys.platform == "win32":
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    return kwargs


def low_priority(argv: list) -> list:
    """``argv`` under ``nice -n 10`` where ``nice`` exists: the checks (torch imports, seconds of
    CPU) must not take the CPU from QGIS's own GUI thread on a busy machine."""
    nice = shutil.which("nice") if os.name != "nt" else None
    return [nice, "-n", "10"] + list(argv) if nice else list(argv)


def check_environment(executable: str, timeout: float = 120.0, full: bool = True) -> dict:
    """Run ``sam2unext-geo --version`` and (``full``) ``sam2unext-geo models``.

    Both are quick (neither imports torch); ``models`` is only needed by the dialog's Check
    button, not before every run.

    Returns:
        ``{"executable", "version", "models"}`` (``models`` is the command's text output).

    Raises:
        EnvironmentProblem: either command fails or times out; the message includes its error
            and the install command.
    """
    info = {"executable": executable}
    commands = (("version", ["--version"]), ("models", ["models"]))
    for key, extra in commands[: 2 if full else 1]:
        kwargs = popen_kwargs()
        kwargs.pop("bufsize")
        kwargs.pop("stdin")
        try:
            proc = subprocess.run(
                low_priority([executable] + extra), stdin=subprocess.DEVNULL, timeout=timeout, **kwargs
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EnvironmentProblem(f"`{executable} {' '.join(extra)}` could not run ({exc}). {INSTALL_HINT}") from exc
        if proc.returncode != 0:
            tail = last_line(proc.stderr) or last_line(proc.stdout) or f"exit code {proc.returncode}"
            raise EnvironmentProblem(
                f"`{executable} {' '.join(extra)}` failed: {tail}. The sam2unext-geo environment "
                f"looks broken. {INSTALL_HINT}"
            )
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


#: torch, torchvision and the GPU in the command's environment, as one JSON line. torchvision is
#: imported and its ``nms`` operator called: a torchvision built for another torch imports with
#: "operator torchvision::nms does not exist", which a torch import alone never shows.
TORCH_PROBE = (
    "import json, sys\n"
    "info = {'python': sys.version.split()[0]}\n"
    "try:\n"
    "    import torch\n"
    "    info.update(torch=torch.__version__, cuda=torch.version.cuda, gpu=torch.cuda.is_available())\n"
    "    info['gpu_name'] = torch.cuda.get_device_name(0) if info['gpu'] else None\n"
    "except Exception as exc:\n"
    "    info['torch_error'] = f'{type(exc).__name__}: {exc}'\n"
    "else:\n"
    "    try:\n"
    "        import torchvision\n"
    "        from torchvision.ops import nms\n"
    "        nms(torch.zeros((1, 4)), torch.zeros(1), 0.5)\n"
    "        info['torchvision'] = torchvision.__version__\n"
    "    except Exception as exc:\n"
    "        info['torchvision_error'] = f'{type(exc).__name__}: {exc}'\n"
    "print(json.dumps(info))\n"
)
#: What to do when torch or torchvision does not import (the installer's dialog has the button).
REPAIR_HINT = (
    "torch and torchvision do not work together: open Install… (Raster ▸ SAM2-UNeXT Geo) and click "
    "Repair; it reinstalls a matching torch and torchvision."
)


def gpu_text(info: dict) -> str:
    """Whether the environment's torch found a GPU, and which: for the dialogs' environment lines."""
    if info.get("gpu") is True:
        cuda = f", CUDA {info['cuda']}" if info.get("cuda") else ""
        return f"GPU found: {info.get('gpu_name') or 'name unknown'}{cuda}"
    if info.get("gpu") is False:
        return "no GPU found: runs on the CPU"
    return "GPU: unknown (torch could not be asked)"


def torch_problem(info: dict) -> Optional[str]:
    """One line when torch or torchvision does not import in the environment (with the fix), else None."""
    error = info.get("torch_error") or info.get("torchvision_error")
    if not error:
        return None
    which = "torch" if info.get("torch_error") else "torchvision"
    return f"{which} does not import ({error}); {REPAIR_HINT}"


def torch_info(executable: str, timeout: float = 120.0) -> dict:
    """Python, torch, CUDA versions and GPU of the command's environment (one subprocess).

    Returns:
        ``{"python", "torch", "cuda", "gpu": bool, "gpu_name", "torchvision"}``; ``{}`` when it
        cannot tell; ``torch_error`` or ``torchvision_error`` (see :func:`torch_problem`) when
        they do not import.
    """
    python = environment_python(executable)
    if python is None:
        return {}
    kwargs = popen_kwargs()
    for key in ("bufsize", "stdin"):
        kwargs.pop(key)
    try:
        proc = subprocess.run(
            low_priority([python, "-c", TORCH_PROBE]), stdin=subprocess.DEVNULL, timeout=timeout, **kwargs
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    try:
        return json.loads(last_line(proc.stdout)) if proc.returncode == 0 else {}
    except ValueError:
        return {}


def gpu_available(executable: str, timeout: float = 120.0) -> Optional[bool]:
    """Whether torch in the command's environment sees a CUDA GPU (``None``: could not tell)."""
    return torch_info(executable, timeout).get("gpu")


_PROBE_CACHE: dict = {}


def probe_environment(executable: str, *, use_cache: bool = True) -> dict:
    """Everything the dialog shows about an environment: :func:`check_environment` (version, models)
    plus :func:`torch_info`. Slow (seconds: the torch probe imports torch): call it off the GUI thread.

    The result is cached per executable path and modification time, so a second Check, or the
    check when the dialog opens again, is instant until the environment is reinstalled.

    Raises:
        EnvironmentProblem: as :func:`check_environment`.
    """
    key = _cache_key(executable)
    if use_cache and key in _PROBE_CACHE:
        return dict(_PROBE_CACHE[key], cached=True)
    info = check_environment(executable)
    info.update(torch_info(executable))
    info["presets"] = preset_names(info.get("models", ""))
    _PROBE_CACHE[key] = info
    return dict(info, cached=False)


def cached_probe(executable: str) -> Optional[dict]:
    """The cached :func:`probe_environment` result for ``executable``, or None."""
    hit = _PROBE_CACHE.get(_cache_key(executable))
    return dict(hit, cached=True) if hit is not None else None


def forget_probes() -> None:
    """Drop the cache (after an install)."""
    _PROBE_CACHE.clear()


def _cache_key(executable: str) -> tuple:
    path = os.path.realpath(executable)
    try:
        return path, os.stat(path).st_mtime_ns
    except OSError:
        return path, None


def last_line(text: Optional[str]) -> str:
    """The last non-empty line of ``text`` ('' if none)."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""
