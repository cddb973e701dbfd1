"""The plugin's command building, environment checks and subprocess runner (pure Python: no QGIS needed)."""

from __future__ import annotations

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
    opts = commands.PredictOptions(
        scene="/d/a b.tif",
        out_dir="/o",
        checkpoint="demo",
        tile_size=512,
        overlap=0.3,
        batch_size=8,
        device="cuda",
        bands="3, 2,1",
        threshold=0.4,
        vector=False,
        overwrite=True,
    )
    args = commands.predict_args("/env/bin/sam2unext-geo", opts)
    assert args[:5] == ["/env/bin/sam2unext-geo", "predict", "/d/a b.tif", "-o", "/o"]
    for flag, value in (
        ("--checkpoint", "demo"),
        ("--tile-size", "512"),
        ("--overlap", "0.3"),
        ("--batch-size", "8"),
        ("--device", "cuda"),
        ("--bands", "3,2,1"),
        ("--threshold", "0.4"),
        ("--progress", "json"),
        ("--format", "gpkg"),
    ):
        assert args[args.index(flag) + 1] == value
    assert "--no-vector" in args and "--overwrite" in args and "--preset" not in args and "--resume" not in args
    opts.resume = True
    assert "--resume" in commands.predict_args("x", opts)


def test_vectorize_args():
    args = commands.vectorize_args("sam2unext-geo", "/o/s_prob.tif", "/o/p.gpkg", 0.6, overwrite=True)
    assert args == [
        "sam2unext-geo",
        "vectorize",
        "/o/s_prob.tif",
        "--threshold",
        "0.6",
        "-o",
        "/o/p.gpkg",
        "--overwrite",
    ]


def test_predict_args_needs_weights_and_valid_bands():
    with pytest.raises(ValueError, match="preset or a checkpoint"):
        commands.predict_args("x", commands.PredictOptions(scene="s", out_dir="o"))
    with pytest.raises(ValueError, match="band numbers"):
        commands.normalize_bands("3,x,1")


def test_parse_event_and_progress():
    assert commands.parse_event("not json") is None
    assert commands.parse_event('{"no_event": 1}') is None
    ev = commands.parse_event('{"event": "progress", "stage": "predict", "done": 5, "total": 10}\n')
    assert commands.progress_percent(ev) == pytest.approx(45.0)
    load = {"event": "progress", "stage": "load", "done": 0, "total": 1}
    assert commands.progress_percent(load) == 0.0 and commands.stage_label(load) == "loading model…"
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
    with pytest.raises(environment.EnvironmentProblem, match="Install…") as info:
        environment.find_executable(None)
    assert "pip install sam2unext-geo" not in str(info.value)  # not on PyPI: that hint cannot work
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
    exe = make_exe(
        tmp_path,
        f"""
        import json, os, sys
        os.makedirs({str(out)!r}, exist_ok=True)
        open(os.path.join({str(out)!r}, "p.tif"), "w").close()
        print("warning: noise on stdout is ignored")
        for i in range(3):
            print(json.dumps({{"event": "progress", "stage": "predict", "done": i + 1, "total": 3}}), flush=True)
        print(json.dumps({{"event": "done", "scene": "s", "probability": "out/p.tif", "vector": None}}), flush=True)
    """,
    )
    seen = []
    monkeypatch.chdir(tmp_path)
    result = runner.run_command([exe], on_event=seen.append, out_dir=str(out))
    assert [e["done"] for e in seen if e["event"] == "progress"] == [1, 2, 3]
    assert result.done[0]["probability"] == str(out / "p.tif") and (out / "p.tif").exists()


def test_run_command_failure_reports_error_and_cleans(tmp_path):
    out = tmp_path / "out"
    exe = make_exe(
        tmp_path,
        f"""
        import json, os, sys
        open(os.path.join({str(out)!r}, ".s_prob.tif.0123abcd.strips.tif"), "w").close()
        print(json.dumps({{"event": "error", "message": "InputError: scene.tif is not a raster", "exit_code": 2}}))
        sys.exit(2)
    """,
    )
    with pytest.raises(runner.CommandFailed, match="not a raster") as info:
        runner.run_command([exe], out_dir=str(out), outputs=["s_prob.tif"])
    assert info.value.exit_code == 2 and not out.exists()


def test_broken_environment_failure_names_the_install_command(tmp_path):
    exe = make_exe(
        tmp_path,
        """
        import sys
        sys.stderr.write("Traceback ...\\nModuleNotFoundError: No module named 'torch'\\n")
        sys.exit(1)
    """,
    )
    with pytest.raises(runner.CommandFailed, match="Install…") as info:
        runner.run_command([exe])
    assert "No module named 'torch'" in str(info.value)


def test_mismatched_torchvision_names_repair(tmp_path):
    """The failure of issue 22: the command's internal error, and the one action that fixes it."""
    message = "internal error: RuntimeError: operator torchvision::nms does not exist (rerun with --debug)"
    exe = make_exe(
        tmp_path,
        f"""
        import json, sys
        print(json.dumps({{"event": "error", "message": {message!r}, "exit_code": 1}}))
        sys.stderr.write("error: " + {message!r} + "\\n")
        sys.exit(1)
    """,
    )
    with pytest.raises(runner.CommandFailed) as info:
        runner.run_command([exe])
    assert str(info.value).startswith(message) and "click Repair" in str(info.value), str(info.value)
    assert "Install…" in str(info.value) and str(info.value).count("torchvision::nms") == 1


def test_cancel_terminates_and_removes_only_its_own_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("was here before")
    exe = make_exe(
        tmp_path,
        f"""
        import json, os, signal, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)   # worst case: ignores SIGTERM, killed later
        open(os.path.join({str(out)!r}, ".s_prob.tif.0123abcd.strips.tif"), "w").close()
        os.makedirs(os.path.join({str(out)!r}, "s_prob.tif.partial", "done"))
        print(json.dumps({{"event": "start", "scene": "s", "tiles": 9, "width": 1, "height": 1}}), flush=True)
        time.sleep(60)
    """,
    )
    events, t0 = [], time.monotonic()
    with pytest.raises(runner.CancelledRun):
        runner.run_command(
            [exe],
            on_event=events.append,
            is_cancelled=lambda: bool(events),
            out_dir=str(out),
            outputs=["s_prob.tif", "s_prob_polygons.gpkg"],
            grace_seconds=0.5,
        )
    assert time.monotonic() - t0 < 10
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def file_bytes(folder: Path) -> dict:
    """Every file under ``folder`` (hidden ones too) → its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_cancelling_one_run_keeps_another_runs_files_byte_identical(tmp_path):
    """Issue 11 item 1: run A (finished, plus one still writing) and run B share a folder; B is cancelled."""
    folder = tmp_path / "shared"
    folder.mkdir()
    # run A finished before B started: its outputs are on the map
    (folder / "a_prob.tif").write_bytes(b"A probability")
    (folder / "a_prob_polygons.gpkg").write_bytes(b"A polygons")
    # run C is still writing while B runs: its temporary file and resumable store
    (folder / ".c_prob.tif.89abcdef.cog.tif").write_bytes(b"C temp")
    (folder / "c_prob.tif.partial").mkdir()
    (folder / "c_prob.tif.partial" / "manifest.json").write_text("{}")
    exe = make_exe(
        tmp_path,
        f"""
        import json, os, sys, time
        d = {str(folder)!r}
        open(os.path.join(d, ".b_prob.tif.0123abcd.strips.tif"), "w").write("B temp")
        os.makedirs(os.path.join(d, "b_prob.tif.partial", "done"))
        open(os.path.join(d, "b_prob.tif.partial", "manifest.json"), "w").write("{{}}")
        print(json.dumps({{"event": "start", "scene": "b", "tiles": 9, "width": 1, "height": 1}}), flush=True)
        time.sleep(60)
    """,
    )
    before_b = file_bytes(folder)

    def cancel_after_others_write():
        # while B runs, run A' finishes a second scene and C writes on: not B's files
        if any(e["event"] == "start" for e in seen) and not (folder / "a2_prob.tif").exists():
            (folder / "a2_prob.tif").write_bytes(b"A2 probability, finished during B")
            (folder / ".c_prob.tif.89abcdef.cog.tif").write_bytes(b"C temp, grown")
        return (folder / "a2_prob.tif").exists()

    seen: list = []
    with pytest.raises(runner.CancelledRun):
        runner.run_command(
            [exe],
            on_event=seen.append,
            is_cancelled=cancel_after_others_write,
            out_dir=str(folder),
            outputs=["b_prob.tif", "b_prob_polygons.gpkg"],
            grace_seconds=2,
        )
    after = file_bytes(folder)
    expected = {k: v for k, v in before_b.items()}
    expected["a2_prob.tif"] = b"A2 probability, finished during B"
    expected[".c_prob.tif.89abcdef.cog.tif"] = b"C temp, grown"
    assert after == expected, sorted(after)
    assert not (folder / "b_prob.tif.partial").exists()


def test_failure_keeps_final_names_and_the_stores(tmp_path):
    """A failed run removes its new temporary files only: .partial stores stay (resume)."""
    folder = tmp_path / "o"
    folder.mkdir()
    (folder / "s_prob.tif.partial").mkdir()
    exe = make_exe(
        tmp_path,
        f"""
        import json, os, sys
        d = {str(folder)!r}
        open(os.path.join(d, ".s_prob.tif.0123abcd.strips.tif"), "w").close()
        print(json.dumps({{"event": "error", "message": "output s_prob.tif.partial exists; pass --resume or "
                           "--overwrite", "exit_code": 2, "options": ["resume", "overwrite"]}}))
        sys.exit(2)
    """,
    )
    with pytest.raises(runner.CommandFailed) as info:
        runner.run_command([exe], out_dir=str(folder), outputs=["s_prob.tif"])
    assert sorted(p.name for p in folder.iterdir()) == ["s_prob.tif.partial"]
    assert str(info.value) == (
        "output s_prob.tif.partial exists; tick “Resume an interrupted run” or “Overwrite existing outputs”"
    )
    assert "--" not in str(info.value)
    new_store = make_exe(
        tmp_path,
        f"""
        import os, sys
        os.makedirs(os.path.join({str(folder)!r}, "t_prob.tif.partial"))
        sys.exit(1)
    """,
        name="fails",
    )
    with pytest.raises(runner.CommandFailed):
        runner.run_command([new_store], out_dir=str(folder), outputs=["t_prob.tif"])
    assert (folder / "t_prob.tif.partial").is_dir()  # resumable after a failure


def test_plugin_words_name_the_widgets():
    msg = "output /o/s_prob.tif already exists; pass --overwrite to replace it"
    assert (
        commands.plugin_words(msg, ["overwrite"])
        == "output /o/s_prob.tif already exists; tick “Overwrite existing outputs” to replace it"
    )
    assert commands.plugin_words("drop --overwrite", ["overwrite"]) == "untick “Overwrite existing outputs”"
    assert commands.plugin_words("set --batch-size 2", ["batch_size"]) == "set “Batch size” 2"
    assert commands.plugin_words(msg, None) == msg  # no options listed: unchanged
    assert commands.plugin_words("use --chunk-size 512", ["chunk_size"]) == "use --chunk-size 512"  # no widget
    assert commands.plugin_words("pass --overwrite-all", ["overwrite"]) == "pass --overwrite-all"
    # the output folder is always passed as -o: named by its widget whether or not the event lists it
    for core, plugin in (
        (
            "output folder /ro/out is not writable; choose another with -o",
            "output folder /ro/out is not writable; choose another “Output folder”",
        ),
        (
            "cannot create output folder /x/y (Permission denied); choose another with -o",
            "cannot create output folder /x/y (Permission denied); choose another “Output folder”",
        ),
        (
            "output /o is a file, not a folder; choose a folder with -o",
            "output /o is a file, not a folder; choose a folder in “Output folder”",
        ),
    ):
        assert commands.plugin_words(core) == plugin
    assert commands.plugin_words("keep -o2 and x-o as they are") == "keep -o2 and x-o as they are"


def test_output_folder_is_checked_before_the_run(tmp_path, monkeypatch):
    commands.check_output_folder(str(tmp_path / "new" / "deeper"))  # created by the command
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="“Output folder” .*file is a file"):
        commands.check_output_folder(str(tmp_path / "file"))
    with pytest.raises(ValueError, match="Choose an “Output folder”"):
        commands.check_output_folder("")
    read_only = str(tmp_path / "ro")
    monkeypatch.setattr(commands.os, "access", lambda path, mode: not str(path).startswith(read_only))
    (tmp_path / "ro").mkdir()
    with pytest.raises(ValueError) as info:
        commands.check_output_folder(read_only)
    assert str(info.value) == f"“Output folder” {read_only} is not writable; choose another “Output folder”."
    with pytest.raises(ValueError, match="its parent .*ro is read-only"):
        commands.check_output_folder(read_only + "/sub")


def test_events_are_described_in_words():
    start = {"event": "start", "scene": "/d/s.tif", "tiles": 9, "width": 512, "height": 400, "bands": [1, 2, 3]}
    assert commands.describe_event(start) == "s.tif: 512 x 400 px, 9 tiles, bands 1,2,3"
    done = {
        "event": "done",
        "scene": "s.tif",
        "probability": "/o/s_prob.tif",
        "vector": None,
        "tiles_run": 9,
        "seconds": 2.04,
    }
    assert commands.describe_event(done) == "s.tif: 9 tiles in 2.0 s → /o/s_prob.tif"
    assert commands.describe_event({"event": "warning", "message": "overlap 0"}) == "warning: overlap 0"
    assert commands.describe_event({"event": "error", "message": "x", "exit_code": 2}) is None
    assert commands.describe_event({"event": "progress", "stage": "predict", "done": 1, "total": 2}) is None


def test_output_names_and_aoi_args():
    opts = commands.PredictOptions(scene="/d/scene.v2.tif", out_dir="/o", checkpoint="demo")
    assert commands.output_names(opts) == ["scene.v2_prob.tif", "scene.v2_prob_polygons.gpkg"]
    opts.vector = False
    assert commands.output_names(opts) == ["scene.v2_prob.tif"]
    opts.bbox, opts.bbox_crs = (1, 2, 3, 4), "EPSG:3857"
    args = commands.predict_args("x", opts)
    i = args.index("--bbox")
    assert args[i + 1 : i + 5] == ["1.0", "2.0", "3.0", "4.0"] and args[args.index("--bbox-crs") + 1] == "EPSG:3857"
    opts.bbox, opts.aoi = None, "/tmp/sam2unext_aoi_x.gpkg"
    assert commands.predict_args("x", opts)[commands.predict_args("x", opts).index("--aoi") + 1] == opts.aoi
    opts.bbox = (1, 2, 3, 4)
    with pytest.raises(ValueError, match="not both"):
        commands.predict_args("x", opts)
    opts.aoi, opts.bbox = None, (3, 2, 1, 4)
    with pytest.raises(ValueError, match="empty"):
        commands.predict_args("x", opts)


def test_probe_is_cached_until_the_command_changes(tmp_path, monkeypatch):
    torch_probes = []
    monkeypatch.setattr(environment, "torch_info", lambda exe: torch_probes.append(exe) or {"torch": "2.x"})
    counter = tmp_path / "calls"
    exe = make_exe(
        tmp_path,
        f"""
        import sys
        open({str(counter)!r}, "a").write("x")
        print("sam2unext-geo 0.1.0" if sys.argv[1:] == ["--version"] else "sam2unext-test  SAM2-UNeXT  256")
    """,
    )
    environment.forget_probes()
    first = environment.probe_environment(exe)
    assert not first["cached"] and first["presets"] == ["sam2unext-test"] and first["version"] == "sam2unext-geo 0.1.0"
    assert environment.probe_environment(exe)["cached"] and counter.read_text() == "xx"
    time.sleep(0.01)
    Path(exe).write_text(Path(exe).read_text())  # reinstalled: new mtime
    assert not environment.probe_environment(exe)["cached"] and counter.read_text() == "xxxx"
    assert len(torch_probes) == 2


def test_remove_own_entries_only_touches_this_runs_names(tmp_path):
    (tmp_path / "keep.txt").write_text("was here before")
    (tmp_path / ".s_prob.tif.11111111.cog.tif").write_text("older run's temp")
    before = runner.snapshot(str(tmp_path))
    (tmp_path / "other_prob.tif").write_text("another run")
    (tmp_path / ".s_prob.tif.22222222.cog.tif").write_text("x")
    (tmp_path / ".s_prob_polygons.gpkg.123.tmp.gpkg-wal").write_text("x")
    (tmp_path / "s_prob.tif.tmp").write_text("x")
    (tmp_path / "other_prob.tif.tmp").write_text("another run's")
    (tmp_path / "s_prob.tif.partial").mkdir()
    removed = runner.remove_own_entries(str(tmp_path), ["s_prob.tif", "s_prob_polygons.gpkg"], before, cancelled=True)
    assert sorted(removed) == sorted(
        str(tmp_path / n)
        for n in (
            ".s_prob.tif.22222222.cog.tif",
            ".s_prob_polygons.gpkg.123.tmp.gpkg-wal",
            "s_prob.tif.tmp",
            "s_prob.tif.partial",
        )
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".s_prob.tif.11111111.cog.tif",
        "keep.txt",
        "other_prob.tif",
        "other_prob.tif.tmp",
    ]


def _flag_value(args: list, flag: str):
    return args[args.index(flag) + 1] if flag in args else None


def test_tta_widget_values_become_the_tta_flag():
    base = dict(scene="/d/s.tif", out_dir="/o", checkpoint="demo")
    assert "--tta" not in commands.predict_args("x", commands.PredictOptions(**base))  # default: one pass
    assert list(commands.TTA_MODES) == ["none", "flip", "d4"]  # the dialog combo / Processing enum order
    for mode in ("none", "flip", "d4"):
        args = commands.predict_args("x", commands.PredictOptions(**base, tta=mode))
        assert _flag_value(args, "--tta") == (None if mode == "none" else mode), args
        assert args.count("--tta") == (mode != "none")
    with pytest.raises(ValueError, match="“Test-time augmentation” 'd8' must be one of: none, flip, d4"):
        commands.predict_args("x", commands.PredictOptions(**base, tta="d8"))


def test_regularize_widgets_become_the_regularize_flags():
    base = dict(scene="/d/s.tif", out_dir="/o", checkpoint="demo")
    off = commands.predict_args("x", commands.PredictOptions(**base, regularize_tolerance=2.0))
    assert "--regularize" not in off and "--regularize-tolerance" not in off  # unticked: tolerance unused
    on = commands.predict_args("x", commands.PredictOptions(**base, regularize=True))
    assert "--regularize" in on and "--regularize-tolerance" not in on  # 0/None: the command's default
    for tolerance in (0.0, None):
        args = commands.predict_args(
            "x", commands.PredictOptions(**base, regularize=True, regularize_tolerance=tolerance)
        )
        assert "--regularize-tolerance" not in args
    args = commands.predict_args("x", commands.PredictOptions(**base, regularize=True, regularize_tolerance=1.5))
    assert "--regularize" in args and _flag_value(args, "--regularize-tolerance") == "1.5"
    assert args.index("--regularize") < args.index("--progress")
    with pytest.raises(ValueError, match="“Square building outlines” needs “Vectorize to polygons”; tick it"):
        commands.predict_args("x", commands.PredictOptions(**base, regularize=True, vector=False))
    with pytest.raises(ValueError, match="“Outline tolerance” -1.0 m must be 0"):
        commands.predict_args("x", commands.PredictOptions(**base, regularize=True, regularize_tolerance=-1))


def test_new_options_are_named_in_the_plugins_words():
    assert commands.plugin_words("pass --regularize", ["regularize"]) == "tick “Square building outlines”"
    msg = "--regularize-tolerance 0 must be > 0"
    assert commands.plugin_words(msg, ["regularize_tolerance"]) == "“Outline tolerance” 0 must be > 0"
    assert commands.plugin_words(msg, ["regularize"]) == msg  # --regularize does not eat --regularize-tolerance
    assert (
        commands.plugin_words("--tta d4 needs a square tile", ["tta"])
        == "“Test-time augmentation” d4 needs a square tile"
    )
