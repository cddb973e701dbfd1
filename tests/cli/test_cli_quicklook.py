"""``predict --quicklook``: a PNG next to the outputs, checked before any work."""

from __future__ import annotations

import pytest

from cli_helpers import files_in, run_cli


@pytest.mark.slow
def test_predict_quicklook_writes_a_png_next_to_the_outputs(scene, tmp_path):
    out = tmp_path / "out"
    res = run_cli("predict", scene, "-o", out, "--checkpoint", "demo", "--quicklook", "--progress", "none")
    assert res.returncode == 0, res.stderr
    assert files_in(out) == {"scene_prob.tif", "scene_prob_polygons.gpkg", "scene_quicklook.png"}
    with open(out / "scene_quicklook.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert f"quick-look:  {out / 'scene_quicklook.png'}" in res.stdout
    assert "Warning" not in res.stderr, res.stderr  # no library warnings reach the user


def test_existing_quicklook_stops_before_running(scene, tmp_path):
    (tmp_path / "scene_quicklook.png").write_bytes(b"old")
    res = run_cli("predict", scene, "--checkpoint", "demo", "--quicklook", "--progress", "none")
    assert res.returncode == 2
    assert "scene_quicklook.png already exists" in res.stderr and "--overwrite" in res.stderr
    assert not (tmp_path / "scene_prob.tif").exists()
