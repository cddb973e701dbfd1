"""The plugin's command building, environment checks and subprocess runner (pure Python: no QGIS needed)."""

from __future__ import annotations

import json
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "qgis_plugin"))
from sam2unext_geo import commands, environment, runner  # noqa: E402 - pure Python, no QGIS


def make_exe(folder: Path, body: str, name: str = "sam2unext-geo") -> str:
    """An executable Python script (this interpreter) named like the command."""
    exe = folder / name
    exe.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return str(exe)


def test_predict_args_is_a_list_with_every_option():
    opts = commands.PredictOptions(scene="/d/a b.tif", out_dir="/o", checkpoint="demo", tile_size=512,
                                 overlap=0.3, batch_size=8, device="cuda", bands="3, 2,1",
                                 threshold=0.4, vector=False, overwrite=True)
    args = commands.predict_args("/env/bin/sam2unext-geo", opts)
    assert args[:5] == ["/env/bin/sam2unext-geo", "predict", "/d/a b.tif", "-o", "/o"]
    for flag, value in (("--checkpoint", "demo"), ("--tile-size", "512"), ("--overlap", "0.3"),
                        ("--batch-size", "8"), ("--device", "cuda"), ("--bands", "3,2,1"),
                        ("--threshold", "0.4"), ("--progress", "json"), ("--format", "gpkg")):
        assert args[args.index(flag) + 1] == value
    assert "--no-vector" in args and "--overwrite" in args and "--preset" not in args


def test_vectorize_args():
    args = commands.vectorize_args("sam2unext-geo", "/o/s_prob.tif", "/o/p.gpkg", 0.6, overwrite=True)
    assert args == ["sam2unext-geo", "vectorize", "/o/s_prob.tif", "--threshold", "0.6", "-o", "/o/p.gpkg",
                    "--overwrite"]


def test_predict_args_needs_weights_and_valid_bands():
    with pytest.raises(ValueError, match="preset or a checkpoint"):
        commands.predict_args("x", commands.PredictOptions(scene="s", out_dir="o"))
    with pytest.raises(ValueError, match="band numbers"):
        commands.normalize_bands("3,x,1")


def test_parse_event_and_progress():
    assert commands.parse_event("not json") is None
    assert commands.parse_event('{"no_event": 1}') is None
    ev = commands.parse_event('{"event": "progress", "stage": "predict", "done": 5, "total": 10}\n')
    assert commands.progress_percent(ev) == pytest.approx(42.5)
    assert commands.progress_percent({"event": "progress", "stage": "vectorize", "done": 1, "total": 2}) == 96.0
    assert commands.progress_percent({"event": "progress", "stage": "unknown", "done": 1, "total": 2}) is None
    assert commands.progress_percent({"event": "start"}) is None


def test_preset_names_from_models_table():
    table = """preset                    family      input
------------------------  ----------  -----
sam2unext-large           SAM2-UNeXT  1024
sam2unet-test             SAM2-UNet   256
demo (--checkpoint demo)  SAM2-UNeXT  256

Predicting needs a trained checkpoint (--checkpoint); the SAM2/DINOv2 files initialise training.
"""
    assert environment.preset_names(table) == ["sam2unext-large", "sam2unet-test", "demo"]


def test_environment_python_next_to_or_from_shebang(tmp_path):
    exe = make_exe(tmp_path, "print('x')\n")
    assert environment.environment_python(exe) == sys.executable


def test_find_executable_messages_and_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(environment.EnvironmentProblem, match="pip install"):
        environment.find_executable(None)
    with pytest.raises(environment.EnvironmentProblem, match="does not exist"):
        environment.find_executable(str(tmp_path / "missing"))
    (tmp_path / "env" / "bin").mkdir(parents=True)
    exe = make_exe(tmp_path / "env" / "bin", "print('x')\n")
    assert environment.find_executable(str(tmp_path / "env")) == exe
    monkeypatch.setenv("PATH", str(tmp_path / "env" / "bin"))
    assert environment.find_executable(None) == exe


def test_subprocess_env_drops_qgis_python_variables(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/usr/share/qgis/python")
    monkeypatch.setenv("PROJ_LIB", "/qgis/proj")
    env = environment.subprocess_env()
    assert "PYTHONPATH" not in env and "PROJ_LIB" not in env and env["PYTHONUNBUFFERED"] == "1"


def test_run_command_streams_events(tmp_path, monkeypatch):
    out = tmp_path / "out"
    exe = make_exe(tmp_path, f"""
        import json, os, sys
        os.makedirs({str(out)!r}, exist_ok=True)
        open(os.path.join({str(out)!r}, "p.tif"), "w").close()
        print("warning: noise on stdout is ignored")
        for i in range(3):
            print(json.dumps({{"event": "progress", "stage": "predict", "done": i + 1, "total": 3}}), flush=True)
        print(json.dumps({{"event": "done", "scene": "s", "probability": "out/p.tif", "vector": None}}), flush=True)
    """)
    seen = []
    monkeypatch.chdir(tmp_path)
    result = runner.run_command([exe], on_event=seen.append, out_dir=str(out))
    assert [e["done"] for e in seen if e["event"] == "progress"] == [1, 2, 3]
    assert result.done[0]["probability"] == str(out / "p.tif") and (out / "p.tif").exists()


def test_run_command_failure_reports_error_and_cleans(tmp_path):
    out = tmp_path / "out"
    exe = make_exe(tmp_path, f"""
        import json, os, sys
        open(os.path.join({str(out)!r}, "partial.tif"), "w").close()
        print(json.dumps({{"event": "error", "message": "InputError: scene.tif is not a raster", "exit_code": 2}}))
        sys.exit(2)
    """)
    with pytest.raises(runner.CommandFailed, match="not a raster") as info:
        runner.run_command([exe], out_dir=str(out))
    assert info.value.exit_code == 2 and not out.exists()


def test_broken_environment_failure_names_the_install_command(tmp_path):
    exe = make_exe(tmp_path, """
        import sys
        sys.stderr.write("Traceback ...\\nModuleNotFoundError: No module named 'torch'\\n")
        sys.exit(1)
    """)
    with pytest.raises(runner.CommandFailed, match="pip install") as info:
        runner.run_command([exe])
    assert "No module named 'torch'" in str(info.value)


def test_cancel_terminates_and_removes_new_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("was here before")
    exe = make_exe(tmp_path, f"""
        import json, os, signal, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)   # worst case: ignores SIGTERM
        open(os.path.join({str(out)!r}, "scene_prob.tif.tmp"), "w").close()
        print(json.dumps({{"event": "start", "scene": "s", "tiles": 9, "width": 1, "height": 1}}), flush=True)
        time.sleep(60)
    """)
    events, t0 = [], time.monotonic()
    with pytest.raises(runner.CancelledRun):
        runner.run_command([exe], on_event=events.append, is_cancelled=lambda: bool(events),
                           out_dir=str(out), grace_seconds=0.5)
    assert time.monotonic() - t0 < 10
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_remove_new_entries_removes_new_folders_and_files(tmp_path):
    (tmp_path / "keep.txt").write_text("was here before")
    before = runner.snapshot(str(tmp_path))
    (tmp_path / "new.tif").write_text("x")
    (tmp_path / "tiles").mkdir()
    (tmp_path / "tiles" / "t0.tif").write_text("x")
    removed = runner.remove_new_entries(str(tmp_path), before, created_folder=False)
    assert sorted(removed) == [str(tmp_path / "new.tif"), str(tmp_path / "tiles")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
