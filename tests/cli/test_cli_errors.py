"""Every documented user error: exit 2, one ``error:`` line naming the problem, no partial file.

The cases run the command in this process (``cli_helpers.run_cli``); the real console script
runs as a subprocess only where the process is the point: its exit statuses. SIGTERM and SIGINT
(exit 143 and 130, one line, a JSON error event, nothing written) are in test_cli_refusals.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from cli_helpers import files_in, json_events, run_cli, run_cli_process


def assert_user_error(res, message: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), res.stderr
    assert message in lines[-1], res.stderr
    assert "Traceback" not in res.stderr


@pytest.fixture(scope="module")
def unext_checkpoint(tmp_path_factory):
    """A checkpoint saved for sam2unext-test (random weights)."""
    from sam2unext import build_model, save_checkpoint

    return save_checkpoint(build_model("sam2unext-test"), tmp_path_factory.mktemp("ckpt") / "unext.safetensors")


@pytest.fixture
def work(scenes_dir, unext_checkpoint, tmp_path):
    """A folder holding one scene, a text file posing as a raster and a sam2unext-test checkpoint."""
    shutil.copy(scenes_dir / "beta.tif", tmp_path / "scene.tif")
    (tmp_path / "notes.tif").write_text("not a raster\n")
    shutil.copy(unext_checkpoint, tmp_path / "unext.safetensors")
    return tmp_path


CASES = {
    "missing file": (["predict", "missing.tif", "--preset", "sam2unext-test"], "missing.tif does not exist"),
    "not a raster": (["predict", "notes.tif", "--preset", "sam2unext-test"], "not a raster"),
    "bad band": (["predict", "scene.tif", "--preset", "sam2unext-test", "--bands", "5"], "band 5 is out of range"),
    "no weights": (["predict", "scene.tif"], "no weights given"),
    "checkpoint/preset mismatch": (
        ["predict", "scene.tif", "--checkpoint", "unext.safetensors", "--preset", "sam2unet-test"],
        "was saved for preset 'sam2unext-test'",
    ),
    "unknown preset": (["predict", "scene.tif", "--preset", "sam2unext-huge"], "unknown preset 'sam2unext-huge'"),
    "missing checkpoint": (["predict", "scene.tif", "--checkpoint", "nope.safetensors"], "checkpoint not found"),
    "unwritable folder": (
        ["predict", "scene.tif", "--checkpoint", "demo", "-o", "notes.tif/out"],
        "cannot create output folder notes.tif/out",
    ),
    "unknown option": (["predict", "scene.tif", "--tile", "9"], "No such option: --tile"),
    "bad choice": (["predict", "scene.tif", "--progress", "loud"], "'loud' is not one of"),
    "vectorize missing": (["vectorize", "missing_prob.tif"], "missing_prob.tif does not exist"),
    "info not a raster": (["info", "notes.tif"], "not a raster"),
    "demo into a file": (["demo", "-o", "notes.tif"], "is a file, not a folder"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_user_error_exits_2_with_one_line_and_leaves_no_file(work, case):
    args, message = CASES[case]
    before = files_in(work)
    res = run_cli(*args, cwd=work)
    assert_user_error(res, message)
    assert files_in(work) == before


def test_existing_output_needs_overwrite(work):
    (work / "scene_prob.tif").write_bytes(b"keep me")
    before = files_in(work)
    res = run_cli("predict", "scene.tif", "--checkpoint", "demo", cwd=work)
    assert_user_error(res, "scene_prob.tif already exists")
    assert files_in(work) == before and (work / "scene_prob.tif").read_bytes() == b"keep me"

    again = run_cli("predict", "scene.tif", "--checkpoint", "demo", "--overwrite", "--progress", "none", cwd=work)
    assert again.returncode == 0, again.stderr
    assert (work / "scene_prob.tif").stat().st_size > 1000


def test_json_mode_reports_the_error_as_the_only_stdout_line(work):
    res = run_cli("predict", "missing.tif", "--preset", "sam2unext-test", "--progress", "json", cwd=work)
    assert_user_error(res, "does not exist")
    events = json_events(res.stdout)
    assert len(events) == 1 and events[0]["event"] == "error" and events[0]["exit_code"] == 2
    assert "missing.tif does not exist" in events[0]["message"]


def test_debug_shows_the_traceback(work):
    res = run_cli("predict", "missing.tif", "--preset", "sam2unext-test", "--debug", cwd=work)
    assert res.returncode == 2 and "Traceback" in res.stderr and "InputError" in res.stderr


def test_console_script_exit_statuses(work):
    """The installed entry point exits with main()'s codes: 2 for a user error, 0 for --version."""
    res = run_cli_process("predict", "missing.tif", "--preset", "sam2unext-test", cwd=work)
    assert_user_error(res, "missing.tif does not exist")
    version = run_cli_process("--version")
    assert version.returncode == 0 and version.stdout.startswith("sam2unext-geo ")
    # the script ends with os._exit after flushing: the whole output reaches the pipe
    listed = run_cli_process("models", "--json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) >= 10, listed.stderr


def test_a_missing_scene_is_refused_before_torch_loads(work):
    """Argument checks come before the heavy imports: a typo in a path fails in well under a second."""
    code = (
        "import sys\n"
        "from sam2unext.cli.main import main\n"
        "code = main(['predict', 'missing.tif', '--preset', 'sam2unext-test'])\n"
        "print(code, 'torch' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=work)
    assert res.stdout.split() == ["2", "False"], res.stdout + res.stderr
    assert "missing.tif does not exist" in res.stderr
