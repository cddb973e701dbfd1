"""Blending on the model's device equals the CPU blend bit for bit (run here on CPU tensors)."""

import numpy as np
import pytest
import rasterio
import torch

from sam2unext.geo import predict_raster
from sam2unext.geo.demo.stand_ins import PixelModel
from sam2unext.geo.running import chunk_task
from sam2unext.geo.running.tiling import make_grid
from sam2unext.geo.writing.quantize import finish_sums, quantize_probability

from geo_helpers import stitch_sums


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_device_stitcher_equals_the_cpu_stitcher(overlap):
    rng = np.random.default_rng(2)
    grid = make_grid(150, 173, 32, overlap)
    probs = list(rng.random((len(grid), 32, 32), dtype=np.float32))
    probs[5] = None  # a skipped tile
    for size in (16, 64, 256):
        cpu = stitch_sums(grid, probs, size)
        dev = stitch_sums(grid, probs, size, device="cpu")
        np.testing.assert_array_equal(dev.view(np.uint64), cpu.view(np.uint64))
        for out_dtype in ("uint8", "float32"):  # the one quantizer, on tensors and on arrays
            on_device = finish_sums(torch.from_numpy(cpu), out_dtype).numpy()
            np.testing.assert_array_equal(on_device, finish_sums(cpu, out_dtype))


def test_quantize_on_device_equals_quantize_probability():
    edges = (np.arange(256, dtype=np.float32) + 0.5) / np.float32(255.0)  # the rounding boundaries
    values = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, 1), [-0.1, 0.0, 1.0, 1.5]])
    values = np.concatenate([values, np.random.default_rng(0).random(10000, dtype=np.float32)]).astype(np.float32)
    np.testing.assert_array_equal(quantize_probability(torch.from_numpy(values)).numpy(), quantize_probability(values))


@pytest.mark.parametrize("out_dtype", ["uint8", "float32"])
def test_runs_blending_on_the_device_equal_cpu_runs(nodata_raster, tmp_path, monkeypatch, out_dtype):
    def run(name):
        res = predict_raster(
            nodata_raster,
            tmp_path / name,
            model=PixelModel(32, None),
            tile_size=32,
            chunk_size=32,
            out_dtype=out_dtype,
            vector=False,
            progress="none",
        )
        with rasterio.open(res.probability) as src:
            return src.read(1), src.read_masks(1), res

    cpu_values, cpu_mask, cpu_res = run("cpu.tif")
    monkeypatch.setattr(chunk_task, "blend_on_device", lambda model: True)  # the GPU path, on CPU tensors
    dev_values, dev_mask, dev_res = run("dev.tif")
    assert cpu_res.chunks > 1 and 0 < dev_res.tiles_skipped == cpu_res.tiles_skipped
    np.testing.assert_array_equal(dev_mask, cpu_mask)
    np.testing.assert_array_equal(dev_values.view(np.uint8), cpu_values.view(np.uint8))
