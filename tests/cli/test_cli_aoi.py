"""``predict --bbox/--bbox-crs/--aoi`` reach ``SceneOptions(aoi=, aoi_crs=)`` (parsing only)."""

from __future__ import annotations

import pytest

import sam2unext.geo.api as geo_api
from sam2unext.cli.main import main


@pytest.fixture
def captured(monkeypatch, tmp_path):
    """Replace predict_raster by a recorder; returns (calls, scene path)."""
    calls: list[dict] = []

    class Result:
        """Stands in for PredictResult: paths, and zero for every count the summary may read."""

        probability = tmp_path / "s_prob.tif"
        vector = None

        def __getattr__(self, name):
            return 0

    def fake(source, output, options, models, reporter, plan=None):
        calls.append(vars(options))
        return Result()

    monkeypatch.setattr(geo_api, "run_scene", fake)  # what predict_scenes calls per scene
    monkeypatch.setattr(geo_api, "_preflight", lambda *args, **kw: None)  # the scene file is a stand-in
    scene = tmp_path / "s.tif"
    scene.write_bytes(b"")
    return calls, scene


def run(scene, *extra) -> int:
    return main(["predict", str(scene), "--preset", "sam2unext-test", "--progress", "none", *extra])


def test_bbox_with_crs(captured):
    calls, scene = captured
    assert run(scene, "--bbox", "13.4", "52.5", "13.42", "52.52", "--bbox-crs", "EPSG:4326") == 0
    assert calls[0]["aoi"] == (13.4, 52.5, 13.42, 52.52) and calls[0]["aoi_crs"] == "EPSG:4326"


def test_aoi_file_and_no_aoi(captured, tmp_path):
    calls, scene = captured
    assert run(scene, "--aoi", str(tmp_path / "fields.gpkg")) == 0
    assert calls[0]["aoi"] == str(tmp_path / "fields.gpkg") and calls[0]["aoi_crs"] is None
    assert run(scene) == 0
    assert calls[1]["aoi"] is None


def test_bbox_and_aoi_together_is_a_usage_error(captured, capsys):
    calls, scene = captured
    assert run(scene, "--bbox", "0", "0", "1", "1", "--aoi", "x.gpkg") == 2
    assert "cannot be combined" in capsys.readouterr().err and not calls
    assert run(scene, "--bbox-crs", "EPSG:4326") == 2
