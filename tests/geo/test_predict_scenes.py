"""Several scenes through the API: checked before any runs, one model, resume skips finished scenes."""

import pytest

from sam2unext.errors import InputError, OutputError
from sam2unext.geo import default_output, predict_scenes
from sam2unext.geo.demo.stand_ins import FailingPixelModel, PixelModel
from sam2unext.geo.writing.store import store_path_for

from geo_helpers import smooth_rgb, write_raster

KW = dict(tile_size=32, vector=False, progress="none")


def scenes(tmp_path, n=2):
    return [write_raster(tmp_path / f"s{i}.tif", smooth_rgb(70, 60, seed=i)) for i in range(n)]


def test_a_bad_scene_is_refused_before_any_scene_runs(tmp_path):
    good = scenes(tmp_path, 1)[0]
    model = PixelModel(32, None)
    with pytest.raises(InputError, match="missing.tif"):
        predict_scenes([good, tmp_path / "missing.tif"], model=model, **KW)
    assert model.calls == 0 and not default_output(good).exists()


def test_results_in_order_and_resume_skips_finished_scenes(tmp_path):
    paths = scenes(tmp_path, 3)
    seen = []
    results = predict_scenes(paths, model=PixelModel(32, None), on_result=lambda s, r: seen.append(s), **KW)
    assert [r.probability for r in results] == [default_output(p) for p in paths] and seen == paths
    with pytest.raises(OutputError, match="nothing to resume.*resume=True"):
        predict_scenes(paths, model=PixelModel(32, None), resume=True, **KW)
    # the second scene's run fails half-way and keeps its finished chunks
    with pytest.raises(RuntimeError, match="stand-in failure"):
        predict_scenes(paths[1:2], model=FailingPixelModel(32, fail_after=3), overwrite=True, chunk_size=32, **KW)
    assert store_path_for(default_output(paths[1])).is_dir()  # the earlier output stays until a run succeeds
    model = PixelModel(32, None)
    resumed = predict_scenes(paths, model=model, resume=True, chunk_size=32, **KW)
    assert len(resumed) == 1 and resumed[0].probability == default_output(paths[1])
    assert 0 < resumed[0].chunks_resumed < resumed[0].chunks and default_output(paths[1]).exists()


def test_one_output_per_scene(tmp_path):
    with pytest.raises(InputError, match="1 outputs for 2 scenes"):
        predict_scenes(scenes(tmp_path), [tmp_path / "o.tif"], model=PixelModel(32, None), **KW)
