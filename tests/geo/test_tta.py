"""Test-time augmentation (geo/running/tta.py): views, exact averaging, determinism, the pipeline."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import rasterio
import torch

from sam2unext.errors import InputError
from sam2unext.geo import predict_raster
from sam2unext.geo.demo.stand_ins import PixelModel, PixelModelFactory
from sam2unext.geo.running.tta import (
    TTA_VIEWS,
    TTAFactory,
    TTAModel,
    apply_view,
    check_tta,
    forward_passes,
    invert_view,
    with_tta,
)


class FirstRowModel:
    """Not equivariant: the probability is the image's first row (red band), broadcast down."""

    input_size, low_res_size = 8, None

    def predict(self, images, low_res=None):
        return images[:, :1, :1, :].expand(-1, 1, images.shape[-2], -1).clone()


class Recorder:
    """Records the pairs it sees; returns the red band (equivariant)."""

    input_size, low_res_size = 6, 3

    def __init__(self):
        self.seen = []

    def predict(self, images, low_res=None):
        self.seen.append((images.clone(), low_res.clone()))
        return images[:, :1].clone()


def test_views_are_d4_and_invert():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    images = {tuple(apply_view(x, v).flatten().tolist()) for v in TTA_VIEWS["d4"]}
    assert len(images) == 8  # eight distinct transforms of an asymmetric tile
    for v in TTA_VIEWS["d4"]:
        assert torch.equal(invert_view(apply_view(x, v), v), x)
    assert [forward_passes(m) for m in ("none", "flip", "d4")] == [1, 2, 8]
    with pytest.raises(InputError, match="tta"):
        check_tta("d8")


def test_equivariant_model_output_unchanged_bit_for_bit():
    rng = np.random.default_rng(0)
    tiles = torch.from_numpy(rng.random((3, 3, 32, 32), dtype=np.float32))
    low = torch.nn.functional.interpolate(tiles, size=(14, 14), mode="bilinear", align_corners=False)
    base = PixelModel(32, 14).predict(tiles, low)
    for mode in ("flip", "d4"):
        out = TTAModel(PixelModel(32, 14), mode).predict(tiles, low)
        assert out.dtype == torch.float32 and out.shape == base.shape
        assert torch.equal(out, base), mode


def test_views_transform_the_low_res_view_with_the_tile():
    rec = Recorder()
    tiles = torch.rand(2, 3, 6, 6)
    low = torch.rand(2, 3, 3, 3)
    TTAModel(rec, "d4").predict(tiles, low)
    assert len(rec.seen) == 8
    for (img, lr), view in zip(rec.seen, TTA_VIEWS["d4"]):
        assert torch.equal(img, apply_view(tiles, view))
        assert torch.equal(lr, apply_view(low, view))


def test_mean_of_views_of_a_non_equivariant_model():
    tiles = torch.rand(2, 3, 8, 8)
    out = TTAModel(FirstRowModel(), "d4").predict(tiles)
    views = [invert_view(FirstRowModel().predict(apply_view(tiles, v)), v).double() for v in TTA_VIEWS["d4"]]
    expected = (sum(views[1:], views[0]) / 8).float()
    assert torch.equal(out, expected)
    assert not torch.equal(out, FirstRowModel().predict(tiles))


def test_wrapper_keeps_the_model_contract_and_pickles():
    model = PixelModel(48, 21)
    assert with_tta(model, "none") is model
    wrapped = with_tta(model, "flip")
    assert (wrapped.input_size, wrapped.low_res_size) == (48, 21)
    assert wrapped.fingerprint()["tta"] == "flip"
    clone = pickle.loads(pickle.dumps(wrapped))
    assert clone.mode == "flip" and clone.input_size == 48
    built = pickle.loads(pickle.dumps(TTAFactory(PixelModelFactory(40, None), "d4")))()
    assert isinstance(built, TTAModel) and built.input_size == 40 and built.low_res_size is None


def read_all(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


class ConvModel:
    """A small real torch model that is not equivariant: two random 3x3 convolutions and a sigmoid."""

    input_size, low_res_size = 64, None

    def __init__(self):
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3, padding=1)
        ).eval()

    def predict(self, images, low_res=None):
        with torch.inference_mode():
            return torch.sigmoid(self.net(images))


def test_pipeline_tta_same_bits_on_any_chunking_and_every_run(tmp_path):
    from geo_helpers import smooth_rgb, write_raster

    model = TTAModel(ConvModel(), "d4")
    path = write_raster(tmp_path / "s.tif", smooth_rgb(150, 140, seed=5))
    args = dict(model=model, vector=False, progress="none")
    a = predict_raster(path, tmp_path / "a.tif", batch_size=4, **args)
    b = predict_raster(path, tmp_path / "b.tif", chunk_size=64, batch_size=3, **args)
    c = predict_raster(path, tmp_path / "c.tif", batch_size=4, **args)
    assert b.chunks == 9
    first = read_all(a.probability)
    np.testing.assert_array_equal(first, read_all(b.probability))
    np.testing.assert_array_equal(first, read_all(c.probability))
    plain = predict_raster(path, tmp_path / "p.tif", model=model.model, vector=False, progress="none")
    assert not np.array_equal(first, read_all(plain.probability))  # the views do change this model's output


def test_pipeline_with_an_equivariant_model_is_unchanged(rgb_raster, tmp_path):
    base = predict_raster(rgb_raster, tmp_path / "a.tif", model=PixelModel(32, 14), vector=False, progress="none")
    tta = predict_raster(
        rgb_raster, tmp_path / "b.tif", model=TTAModel(PixelModel(32, 14), "d4"), vector=False, progress="none"
    )
    with rasterio.open(base.probability) as a, rasterio.open(tta.probability) as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))


def test_predict_raster_tta_option_counts_passes_and_refuses_a_resume_with_another_mode(rgb_raster, tmp_path):
    import io
    import json

    from sam2unext.errors import OutputError
    from sam2unext.geo import describe_raster
    from sam2unext.geo.progress import JsonProgress

    stream = io.StringIO()
    out = tmp_path / "a.tif"
    res = predict_raster(
        rgb_raster, out, model=ConvModel(), tta="d4", vector=False, progress=JsonProgress(stream), tile_size=64
    )
    start = next(e for e in map(json.loads, stream.getvalue().splitlines()) if e["event"] == "start")
    assert start["forward_passes"] == 8 * start["computations"]
    base = predict_raster(rgb_raster, tmp_path / "b.tif", model=ConvModel(), vector=False, progress="none")
    wrapped = predict_raster(
        rgb_raster, tmp_path / "c.tif", model=TTAModel(ConvModel(), "d4"), vector=False, progress="none"
    )
    np.testing.assert_array_equal(read_all(res.probability), read_all(wrapped.probability))
    assert not np.array_equal(read_all(res.probability), read_all(base.probability))
    facts = describe_raster(rgb_raster, tile_size=64, tta="flip")
    assert facts["forward_passes"] == 2 * facts["computations"] and facts["tta"] == "flip"
    with pytest.raises(InputError, match="tta"):
        predict_raster(rgb_raster, tmp_path / "d.tif", model=ConvModel(), tta="d8")
    # a store of a d4 run does not resume as a run without TTA
    from sam2unext.geo.demo.stand_ins import FailingPixelModel

    with pytest.raises(RuntimeError):
        predict_raster(
            rgb_raster,
            tmp_path / "e.tif",
            model=FailingPixelModel(32, fail_after=40),
            tile_size=32,
            chunk_size=32,
            tta="flip",
            vector=False,
            progress="none",
        )
    with pytest.raises(OutputError, match="tta|weights"):
        predict_raster(
            rgb_raster,
            tmp_path / "e.tif",
            model=PixelModel(32, None),
            tile_size=32,
            chunk_size=32,
            resume=True,
            vector=False,
            progress="none",
        )


class OnDevice:
    """A model of our own contract: ``predict(..., to_cpu=)`` (as ``SegmentationModel``); records the flag."""

    input_size, low_res_size = 8, None

    def __init__(self):
        self.flags = []

    def predict(self, images, low_res=None, *, to_cpu=True):
        self.flags.append(to_cpu)
        return images[:, :1, :1, :].expand(-1, 1, images.shape[-2], -1).clone()


def test_to_cpu_reaches_a_model_that_takes_it_and_the_result_stays_a_tensor():
    import inspect

    from sam2unext.geo.running.device import _keeps_on_device

    model = OnDevice()
    wrapped = TTAModel(model, "flip")
    assert _keeps_on_device(wrapped) and "to_cpu" in inspect.signature(wrapped.predict).parameters
    out = wrapped.predict(torch.rand(2, 3, 8, 8), None, to_cpu=False)
    assert model.flags == [False, False] and isinstance(out, torch.Tensor) and out.dtype == torch.float32
    plain = TTAModel(FirstRowModel(), "flip").predict(torch.rand(1, 3, 8, 8), None, to_cpu=False)
    assert isinstance(plain, torch.Tensor)  # a plain-contract model's result, moved to the tiles' device
