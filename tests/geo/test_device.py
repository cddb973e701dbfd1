"""Device feed and automatic batch size, every branch run on CPU tensors (no GPU needed)."""

import numpy as np
import pytest
import rasterio
import torch

import sam2unext
from sam2unext import precision as models
from sam2unext.errors import UserError, cli_words
from sam2unext.geo import predict_raster
from sam2unext.geo.demo.stand_ins import PixelModel
from sam2unext.geo.running.device import (
    CPU_BATCH,
    DeviceFeed,
    auto_batch_size,
    batch_for_memory,
    choose_batch_size,
    feed_for,
    model_device,
    unit_float_table,
)
from sam2unext.geo.running.forward import run_model, single_thread_forward
from sam2unext.loader import ModelLoader
from sam2unext.precision import resolve_dtype
from sam2unext.transforms import to_unit_float

from geo_helpers import smooth_rgb, write_raster


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return sam2unext.load_model(preset="sam2unext-test", device="cpu")


def tiles(n, size, seed=0):
    rng = np.random.default_rng(seed)
    return list(rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8))


def test_unit_float_table_equals_the_cpu_conversion():
    every = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16).repeat(3, axis=1)
    expected = to_unit_float(every)
    feed = DeviceFeed("cpu")
    assert torch.equal(feed.to_unit_float(feed.upload(list(every))), expected)
    assert torch.equal(unit_float_table()[torch.arange(256)], expected[0, 0].reshape(-1))


def test_cpu_feed_has_no_pinned_memory_and_no_streams():
    feed = DeviceFeed("cpu")
    assert (feed.pinned, feed.streams, feed.copy_stream()) == (False, False, None)
    staged = feed.upload(tiles(2, 8))
    assert staged.event is None and not staged.tensor.is_pinned()
    np.testing.assert_array_equal(staged.tensor.numpy(), np.stack(tiles(2, 8)))
    with pytest.raises(ValueError, match="CUDA"):
        DeviceFeed("cpu", pinned=True)
    with pytest.raises(ValueError, match="CUDA"):
        DeviceFeed("cpu", streams=True)
    with pytest.raises(ValueError, match="one tile"):
        feed.upload([])


def test_feed_equals_the_cpu_path_bit_for_bit(tiny):
    """The GPU path's steps (upload, table to-float, forward kept on device, download) on CPU tensors."""
    batch = tiles(3, 64, seed=1)
    with single_thread_forward():
        expected = run_model(tiny, batch, 64)
        lock_used = []

        class Lock:
            def __enter__(self):
                lock_used.append(True)

            def __exit__(self, *exc):
                return False

        got = DeviceFeed("cpu").run(tiny, batch, 64, Lock())
    assert got.dtype == np.float32 and got.shape == (3, 64, 64)
    np.testing.assert_array_equal(got, expected)
    assert lock_used == [True]


def test_feed_runs_plain_contract_models():
    model = PixelModel(32, None)
    batch = tiles(2, 32, seed=2)
    np.testing.assert_array_equal(DeviceFeed("cpu").run(model, batch, 32), run_model(model, batch, 32))
    assert model.calls == 2


def test_predict_can_keep_the_result_on_the_device(tiny):
    x = torch.from_numpy(np.stack(tiles(1, 64)))
    with single_thread_forward():
        a = tiny.predict(x)
        b = tiny.predict(x, to_cpu=False)
    assert torch.equal(a, b)


def test_model_device_and_feed_cache(tiny):
    assert model_device(tiny).type == "cpu"
    assert model_device(PixelModel()).type == "cpu"
    assert feed_for(torch.device("cpu")) is feed_for(torch.device("cpu"))


def test_batch_for_memory():
    gib = 2**30
    assert batch_for_memory(10 * gib, 2 * gib, gib // 2) == 12  # (0.8 * 10 - 2) / 0.5
    assert batch_for_memory(10 * gib, 2 * gib, gib // 2, cap=8) == 8
    assert batch_for_memory(gib, 2 * gib, gib) == 1  # never below one
    assert batch_for_memory(gib, 0, 0) == 32


def test_choose_batch_size_from_trial_batches():
    gib = 2**30
    calls = []

    def linear(batch):
        calls.append(batch)
        return gib + batch * gib // 4

    assert choose_batch_size(linear, 8 * gib, what="w", where="cuda:0") == 21  # (6.4 - 1) / 0.25
    assert calls == [1, 2]

    def two_do_not_fit(batch):
        if batch > 1:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return gib

    assert choose_batch_size(two_do_not_fit, 8 * gib, what="w", where="cuda:0") == 1


def test_not_even_one_tile_fits_is_one_user_error_line():
    def oom(batch):
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(UserError) as info:
        choose_batch_size(oom, 3 * 2**30, what="1024x1024 tile of sam2unext-large", where="cuda:0")
    message = str(info.value)
    assert "\n" not in message
    assert "1024x1024 tile of sam2unext-large" in message and "3.0 GiB free on cuda:0" in message
    assert "tile_size=512" in message and "device='cpu'" in message
    assert info.value.render(cli_words).endswith("use a smaller --tile-size 512, --device cpu, or free the GPU")


def test_auto_batch_size_on_cpu_is_the_default(tiny):
    assert auto_batch_size(tiny, 64) == CPU_BATCH
    assert auto_batch_size(PixelModel(), 64) == CPU_BATCH


def test_auto_precision(monkeypatch):
    monkeypatch.setattr(models, "cpu_native_bf16", lambda: None)  # a CPU without native bfloat16
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    with pytest.raises(UserError, match="auto"):
        resolve_dtype("half", torch.device("cpu"))


def test_auto_precision_keeps_cpu_fingerprints(monkeypatch):
    """A resume of a run made with the old float32 default still matches on any CPU; were ``auto`` to
    take bfloat16 on a CPU with it, the fingerprint would name bfloat16 (the pixels differ)."""
    monkeypatch.setattr(models, "cpu_native_bf16", lambda: None)
    auto = ModelLoader(checkpoint="demo", device="cpu").fingerprint()
    old = ModelLoader(checkpoint="demo", device="cpu", dtype="float32").fingerprint()
    assert auto == old
    assert ModelLoader(checkpoint="demo", device="cpu", compile=True).fingerprint()["compile"] == "True"
    monkeypatch.setattr(models, "cpu_native_bf16", lambda: "avx512_bf16")
    assert ModelLoader(checkpoint="demo", device="cpu").fingerprint() == old  # auto stays float32 there too
    monkeypatch.setattr(models, "CPU_AUTO_BFLOAT16", True)
    assert ModelLoader(checkpoint="demo", device="cpu").fingerprint()["dtype"] == "bfloat16"
    assert ModelLoader(checkpoint="demo", device="cpu", dtype="float32").fingerprint() == old


def test_compile_wraps_the_forward_pass(monkeypatch):
    monkeypatch.setattr(models, "cpu_native_bf16", lambda: None)
    model = sam2unext.load_model(preset="sam2unext-test", device="cpu", compile=True)
    assert hasattr(model.forward, "_torchdynamo_orig_callable")  # compiled lazily, at its first call
    assert model.inference_dtype == torch.float32


def test_default_batch_size_gives_the_same_output(tmp_path):
    path = write_raster(tmp_path / "s.tif", smooth_rgb(150, 170, seed=3))
    model = PixelModel(64, None)
    a = predict_raster(path, tmp_path / "a.tif", model=model, vector=False, progress="none")
    b = predict_raster(path, tmp_path / "b.tif", model=model, batch_size=3, vector=False, progress="none")
    with rasterio.open(a.probability) as fa, rasterio.open(b.probability) as fb:
        np.testing.assert_array_equal(fa.read(), fb.read())


def test_reused_input_buffer_never_leaks_into_results():
    """A one-band identity model returns its input buffer; the next batch must not overwrite the result."""

    class Identity:
        input_size, low_res_size = 8, None

        def predict(self, images, low_res=None):
            return images

    model = Identity()
    first = run_model(model, [np.full((1, 8, 8), 51, np.uint8)], 8)
    run_model(model, [np.full((1, 8, 8), 102, np.uint8)], 8)
    assert np.all(first == np.float32(51) / np.float32(255))
