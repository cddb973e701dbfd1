"""``predict --resume`` as a user drives it, in-process: refusals name the flags, resume finishes the job."""

from __future__ import annotations

import json

import pytest
import rasterio

from sam2unext.cli.main import main
from sam2unext.geo.running import chunk_task

from cli_helpers import write_small_scene

ARGS = [
    "--checkpoint",
    "demo",
    "--tile-size",
    "64",
    "--chunk-size",
    "128",
    "--batch-size",
    "4",
    "--no-vector",
    "--progress",
    "json",
]


def interrupted_run(scene, monkeypatch, capsys, after: int = 6) -> None:
    """A predict run whose model fails after ``after`` batches: the finished chunks stay in the store."""
    real = chunk_task.run_model
    calls = [0]

    def failing(*args, **kwargs):
        calls[0] += 1
        if calls[0] > after:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(chunk_task, "run_model", failing)
    assert main(["predict", str(scene), *ARGS]) == 130
    monkeypatch.setattr(chunk_task, "run_model", real)
    captured = capsys.readouterr()
    assert "rerun with --resume to continue, or --overwrite to start over" in captured.err
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert {"event": "warning"}.items() <= next(e for e in events if e["event"] == "warning").items()


def test_resume_refusals_and_finish(scene, monkeypatch, capsys):
    store = scene.with_name("scene_prob.tif.partial")
    interrupted_run(scene, monkeypatch, capsys)
    assert store.is_dir() and not scene.with_name("scene_prob.tif").exists()

    assert main(["predict", str(scene), *ARGS]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "pass --resume to continue it or --overwrite to discard it" in errors[0]

    # a refused resume names the option as the user wrote it, with the value that continues the run
    for flag, was, now in [("--overlap", "16px", "0.5"), ("--tile-size", "64", "128"), ("--chunk-size", "128", "256")]:
        args = (
            [*ARGS, flag, now]
            if flag == "--overlap"
            else [now if a == was and ARGS[i - 1] == flag else a for i, a in enumerate(ARGS)]
        )
        assert main(["predict", str(scene), *args, "--resume"]) == 2
        err = capsys.readouterr().err
        shown = "32px" if flag == "--overlap" else now
        assert (
            f"it was started with {flag} {was}, this run has {flag} {shown}; rerun with --resume {flag} {was} to "
            f"continue it, or rerun with --overwrite instead of --resume to start over"
        ) in err, err
        assert "rerun with --resume to continue" not in err and "chunks of" not in err  # no promise after a refusal

    assert main(["predict", str(scene), *ARGS, "--resume"]) == 0
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    start = next(e for e in events if e["event"] == "start")
    assert 0 < start["resumed_chunks"] < start["chunks"] == 4
    assert not store.exists()
    with rasterio.open(scene.with_name("scene_prob.tif")) as out:
        assert out.shape == (256, 256)

    assert main(["predict", str(scene), *ARGS, "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_resume_several_scenes_skips_finished_ones(small_scenes, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    alpha, beta = tmp_path / "alpha.tif", tmp_path / "beta.tif"
    alpha.write_bytes((small_scenes / "alpha.tif").read_bytes())
    beta.write_bytes((small_scenes / "beta.tif").read_bytes())
    assert main(["predict", str(beta), "-o", str(out), *ARGS]) == 0
    beta_bytes = (out / "beta_prob.tif").read_bytes()
    capsys.readouterr()
    real = chunk_task.run_model
    calls = [0]

    def failing(*args, **kwargs):
        calls[0] += 1
        if calls[0] > 6:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(chunk_task, "run_model", failing)
    assert main(["predict", str(alpha), "-o", str(out), *ARGS]) == 130
    monkeypatch.setattr(chunk_task, "run_model", real)
    capsys.readouterr()
    assert main(["predict", str(alpha), str(beta), "-o", str(out), *ARGS, "--resume"]) == 0
    captured = capsys.readouterr()
    assert f"{beta}: already complete, skipped" in captured.err
    assert [e["scene"] for e in map(json.loads, captured.out.splitlines()) if e["event"] == "done"] == ["alpha.tif"]
    assert (out / "beta_prob.tif").read_bytes() == beta_bytes
    assert sorted(p.name for p in out.iterdir()) == ["alpha_prob.tif", "beta_prob.tif"]
    assert main(["predict", str(alpha), str(beta), "-o", str(out), *ARGS, "--resume"]) == 2
    assert "none of the 2 scenes has an unfinished run" in capsys.readouterr().err


@pytest.fixture(scope="module")
def small_scenes(tmp_path_factory):
    """Two 256 px scenes: 4 chunks of 128 px, 9 tiles and 3 batches each (12 batches per run)."""
    folder = tmp_path_factory.mktemp("resume_scenes")
    write_small_scene(folder / "alpha.tif", size=256, seed=11)
    write_small_scene(folder / "beta.tif", size=256, seed=12)
    return folder


@pytest.fixture
def scene(small_scenes, tmp_path):
    import shutil

    target = tmp_path / "scene.tif"
    shutil.copy(small_scenes / "alpha.tif", target)
    return target


@pytest.mark.timeout(120)
def test_a_scheduler_without_workers_is_said_and_stops_with_exit_2(scene, capsys):
    """Issue 23 (8): no worker connected is a warning at once (stderr, JSON), exit 2 after --worker-timeout."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        code = main(["predict", str(scene), *ARGS, "--scheduler", cluster.scheduler_address, "--worker-timeout", "1"])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    events = [json.loads(line) for line in captured.out.splitlines()]
    warning = next(e for e in events if e["event"] == "warning")
    assert (
        "no worker is connected to the scheduler" in warning["message"] and "--worker-timeout 1.0" in warning["message"]
    )
    assert f"warning: {warning['message']}" in captured.err
    error = events[-1]
    assert error["event"] == "error" and error["exit_code"] == 2 and "resume" in error["options"]
    assert "start workers, then rerun with --resume" in error["message"]
    assert scene.with_name("scene_prob.tif.partial").is_dir()  # kept for the promised resume
    assert main(["predict", str(scene), *ARGS, "--worker-timeout", "0"]) == 2
    assert "worker_timeout 0.0 must be a positive number of seconds" in capsys.readouterr().err
