"""Issue 23 (8): faults found by killing, terminating and filling the disk at every stage of a run."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import rasterio
from affine import Affine

from sam2unext.geo import predict_raster
from sam2unext.geo.demo.stand_ins import FailingPixelModel, PixelModel
from sam2unext.geo.running.fingerprint import scene_fingerprint
from sam2unext.geo.writing.store import RunStore, store_path_for

from geo_helpers import NORTH_UP, smooth_rgb, write_raster

RUN = {"tile_size": 32, "chunk_size": 32, "batch_size": 2, "progress": "none", "vector": False}


def read_all(path):
    with rasterio.open(path) as src:
        return src.read(1), src.read_masks(1)


# -- (f) the fingerprint is the scene's content, not its path --------------------------------------------
def test_scene_fingerprint_is_the_content_not_the_path_or_time(tmp_path):
    scene = write_raster(tmp_path / "s.tif", smooth_rgb(60, 70, seed=3))
    copy = tmp_path / "elsewhere" / "renamed.tif"
    copy.parent.mkdir()
    shutil.copyfile(scene, copy)
    os.utime(copy, ns=(1, 1))  # a copy has a new time; a mount may show another
    fingerprint = scene_fingerprint(scene)
    assert scene_fingerprint(copy) == fingerprint
    assert str(tmp_path) not in repr(fingerprint)
    assert fingerprint["header"]["width"] == 70 and fingerprint["header"]["count"] == 3
    # another pixel, or the same pixels placed elsewhere, is another scene
    changed = smooth_rgb(60, 70, seed=3)
    changed[0, 30, 30] ^= 1
    assert scene_fingerprint(write_raster(tmp_path / "px.tif", changed)) != fingerprint
    moved = write_raster(tmp_path / "t.tif", smooth_rgb(60, 70, seed=3), transform=NORTH_UP * Affine.translation(1, 0))
    assert scene_fingerprint(moved)["header"] != fingerprint["header"]


def test_a_run_folder_moved_elsewhere_is_resumed(tmp_path):
    first = tmp_path / "first"
    first.mkdir()
    scene = write_raster(first / "s.tif", smooth_rgb(100, 100, seed=1))
    with pytest.raises(RuntimeError, match="stand-in failure"):
        predict_raster(scene, first / "o.tif", model=FailingPixelModel(32, fail_after=8), **RUN)
    kept = len(RunStore(store_path_for(first / "o.tif")).finished())
    assert kept > 0
    moved = tmp_path / "mounted" / "elsewhere"
    shutil.copytree(first, moved)  # new paths, new modification times
    shutil.rmtree(first)
    res = predict_raster(moved / "s.tif", moved / "o.tif", model=PixelModel(32, None), resume=True, **RUN)
    assert res.chunks_resumed == kept
    ref = predict_raster(moved / "s.tif", tmp_path / "ref.tif", model=PixelModel(32, None), **RUN)
    for a, b in zip(read_all(ref.probability), read_all(res.probability)):
        np.testing.assert_array_equal(a, b)
