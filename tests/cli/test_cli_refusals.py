"""Issue 10 through the command: scenes checked up front, overlap words, cancellation."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from sam2unext.cli.main import main

from cli_helpers import files_in, interrupt_predict, write_small_scene


def _err_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_a_bad_third_scene_is_refused_before_anything_is_written(scenes_dir, tmp_path, capsys):
    for name in ("a", "b"):
        shutil.copy(scenes_dir / "beta.tif", tmp_path / f"{name}.tif")
    (tmp_path / "c.tif").write_bytes((scenes_dir / "beta.tif").read_bytes()[:5000])  # truncated
    before = files_in(tmp_path)
    out = tmp_path / "results" / "run1"
    code = main(
        [
            "predict",
            str(tmp_path / "a.tif"),
            str(tmp_path / "b.tif"),
            str(tmp_path / "c.tif"),
            "-o",
            str(out),
            "--checkpoint",
            "demo",
            "--progress",
            "none",
        ]
    )
    assert code == 2
    err = _err_lines(capsys)
    assert err[-1].startswith("error: ") and "c.tif" in err[-1]
    assert files_in(tmp_path) == before and not (tmp_path / "results").exists()


def test_an_existing_output_of_a_later_scene_is_refused_up_front(scenes_dir, tmp_path, capsys):
    for name in ("a", "b"):
        shutil.copy(scenes_dir / "beta.tif", tmp_path / f"{name}.tif")
    (tmp_path / "b_prob.tif").write_bytes(b"keep")
    assert (
        main(
            ["predict", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "--checkpoint", "demo", "--progress", "none"]
        )
        == 2
    )
    assert "b_prob.tif already exists" in _err_lines(capsys)[-1]
    assert not (tmp_path / "a_prob.tif").exists()


@pytest.mark.parametrize("value", ["1.5", "1.0", "64", "-0.1", "quarter"])
def test_ambiguous_overlap_values_exit_2(scenes_dir, tmp_path, capsys, value):
    shutil.copy(scenes_dir / "beta.tif", tmp_path / "s.tif")
    assert (
        main(["predict", str(tmp_path / "s.tif"), "--checkpoint", "demo", "--overlap", value, "--progress", "none"])
        == 2
    )
    assert "64px" in _err_lines(capsys)[-1]
    assert files_in(tmp_path) == {"s.tif"}


def test_overlap_in_pixels_and_the_zero_overlap_warning(scenes_dir, tmp_path, capsys):
    shutil.copy(scenes_dir / "beta.tif", tmp_path / "s.tif")
    assert (
        main(
            [
                "predict",
                str(tmp_path / "s.tif"),
                "--checkpoint",
                "demo",
                "--overlap",
                "64px",
                "--no-vector",
                "--progress",
                "none",
            ]
        )
        == 0
    )
    assert not [line for line in _err_lines(capsys) if "seams" in line]
    assert (
        main(
            [
                "predict",
                str(tmp_path / "s.tif"),
                "--checkpoint",
                "demo",
                "--overlap",
                "0",
                "--overwrite",
                "--no-vector",
                "--progress",
                "none",
            ]
        )
        == 0
    )
    assert [line for line in _err_lines(capsys) if line.startswith("warning: overlap 0")]


def test_a_tiny_scene_exits_2(tmp_path, capsys):
    import numpy as np
    import rasterio

    path = tmp_path / "tiny.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=5,
        height=5,
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=rasterio.Affine(1, 0, 0, 0, -1, 5),
    ) as dst:
        dst.write(np.full((3, 5, 5), 200, np.uint8))
    assert main(["predict", str(path), "--checkpoint", "demo", "--progress", "none"]) == 2
    assert "5x5 pixels" in _err_lines(capsys)[-1]


def _another_runs_files(folder: Path) -> dict[str, bytes]:
    """Files of another run in ``folder``: a finished output, a temporary file, a ``.partial`` store."""
    (folder / "other_prob.tif.partial").mkdir(parents=True)
    (folder / "other_prob.tif.partial" / "manifest.json").write_text("{}")
    (folder / "other_prob.tif").write_bytes(b"another run's finished output")
    (folder / ".other_prob.tif.0badcafe.cog.tif").write_bytes(b"another run's temporary file")
    return _bytes_in(folder)


def _bytes_in(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in files_in(folder)}


@pytest.mark.slow  # a real sam2unext-geo process (torch import, first tiles): 6-8 s each
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_cancel_prints_one_line_and_a_json_error_event(tmp_path, sig, code):
    """A real process stopped mid-predict (as the QGIS plugin's Cancel does with SIGTERM): one line,
    a JSON error event, nothing of its own left, and another run's files in the same folder
    byte-identical."""
    scene = write_small_scene(tmp_path / "big.tif", size=768, seed=21)
    out = tmp_path / "out"
    others = _another_runs_files(out)
    res = interrupt_predict(scene, out, sig)
    assert res.returncode == code, res.stderr
    assert res.events[-1] == {"event": "error", "message": "cancelled; nothing written", "exit_code": code}
    lines = [line for line in res.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert lines == ["cancelled; nothing written"], res.stderr
    assert _bytes_in(out) == others, sorted(files_in(out))
