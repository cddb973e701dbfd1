"""Fine-tuning on a generated GeoTIFF + GeoPackage through torchgeo improves IoU on the scene."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2unext import load_model
from sam2unext.errors import DatasetError, InputError
from sam2unext.geo.finetune import GeoTileDataset, LabeledScene, finetune, pair_scenes, scene_iou, tile_from_sample
from sam2unext.geo.reading.plan import make_plan
from sam2unext.geo.reading.windows import TileReader
from sam2unext.train import TrainConfig, make_training_model

from training_synth import make_geo_scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    raster, labels = make_geo_scene(tmp_path_factory.mktemp("geo"), size=512)
    return LabeledScene(raster, labels)


def test_tiles_see_the_same_pixels_as_prediction(scene):
    """A sampled tile equals the geo processor's read of the same window, and labels align."""
    import rasterio
    from rasterio.windows import from_bounds

    ds = GeoTileDataset([scene], 256, tiles_per_scene=2, seed=5)
    rgb, mask = ds.sample(0)
    _, query = ds.queries[0]
    plan = make_plan(scene.raster)
    assert plan.stretch is not None  # uint16 scene: the automatic percentile stretch applies
    with rasterio.open(scene.raster) as src:
        window = from_bounds(query[0].start, query[1].start, query[0].stop, query[1].stop, src.transform)
    window = window.round_offsets().round_lengths()
    reader = TileReader(plan, 256)
    try:
        expected = reader.read(window)
    finally:
        reader.close()
    assert torch.equal(rgb, torch.from_numpy(expected).float() / 255)
    # labeled squares are the bright ones: red is higher inside the mask than outside
    inside, outside = rgb[0][mask[0] > 0], rgb[0][mask[0] == 0]
    assert inside.numel() > 0 and inside.mean() > outside.mean() + 0.2


@pytest.mark.slow
def test_finetune_improves_scene_iou(scene, tmp_path):
    before = scene_iou(make_training_model("sam2unext-test", seed=0), scene)
    result = finetune(
        [scene.raster],
        [scene.labels],
        tmp_path / "run",
        preset="sam2unext-test",
        config=TrainConfig(epochs=2, lr=1e-3, snapshot_every=10, seed=0),
        tiles_per_scene=4,
        progress=False,
        log=None,
    )
    assert [p.name for p in result.snapshots] == ["epoch_002.safetensors"]
    after = scene_iou(load_model(result.last_snapshot, device="cpu"), scene)
    assert after > before + 0.2 and after > 0.5


def test_scene_pairs_are_checked(scene):
    with pytest.raises(InputError, match="one labels file per raster"):
        pair_scenes([scene.raster, scene.raster], [scene.labels])
    with pytest.raises(InputError, match="not found"):
        pair_scenes([scene.raster.with_name("missing.tif")], [scene.labels])


def test_tile_from_sample_crops_and_mirrors_like_prediction(scene):
    """Pixels past the scene edge are mirrored, as prediction pads its edge tiles (not zeros)."""
    from sam2unext.geo.reading.bands import apply_stretch
    from sam2unext.geo.running.tiling import pad_to_tile

    plan = make_plan(scene.raster)
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 60000, (3, 250, 260)).astype(np.float32)
    out = tile_from_sample(torch.from_numpy(raw), plan, 256)  # a sample shorter than the tile
    expected = pad_to_tile(apply_stretch(raw, plan.stretch)[:, :256, :256], 256)
    assert out.shape == (3, 256, 256) and torch.equal(out, torch.from_numpy(expected).float() / 255)
    # an evaluation tile whose scene part is its bottom-right 200 x 180 px (torchgeo fills the rest with 0)
    raw = np.zeros((3, 256, 256), np.float32)
    raw[:, 56:, 76:] = rng.integers(1, 60000, (3, 200, 180))
    inside = np.zeros((256, 256), bool)
    inside[56:, 76:] = True
    out = tile_from_sample(torch.from_numpy(raw), plan, 256, inside)
    part = apply_stretch(raw[:, 56:, 76:], plan.stretch)
    expected = np.pad(part, [(0, 0), (56, 0), (76, 0)], mode="reflect")
    assert torch.equal(out, torch.from_numpy(expected).float() / 255)


def test_labels_smaller_than_a_tile_are_refused_by_name(scene, tmp_path):
    """Tiles are drawn where raster and labels' extent overlap: a 40 px labeled patch cannot hold a
    256 px tile (torchgeo's sampler would fail with an internal error)."""
    import geopandas as gpd
    import rasterio
    from shapely.geometry import box

    with rasterio.open(scene.raster) as src:
        left, top, res, crs = src.bounds.left, src.bounds.top, src.res[0], src.crs
    small = tmp_path / "small.gpkg"
    patch = box(left + 100 * res, top - 140 * res, left + 140 * res, top - 100 * res)
    gpd.GeoDataFrame(geometry=[patch], crs=crs).to_file(small)
    with pytest.raises(DatasetError, match=r"small.gpkg span 40x40 px of .*less than one 256-px training tile"):
        GeoTileDataset([LabeledScene(scene.raster, small)], 256, tiles_per_scene=2, seed=5)
