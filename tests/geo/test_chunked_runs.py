"""Chunked execution: exact blending at any chunking, resume after a failure or kill -9, refusals."""

import errno
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from sam2unext.errors import OutputError
from sam2unext.geo import predict_raster
from sam2unext.geo.demo.stand_ins import FailingPixelModel, PixelModel, SlowPixelModelFactory
from sam2unext.geo.running.chunks import make_chunk_grid, tile_computations
from sam2unext.geo.running.tiling import make_grid
from sam2unext.geo.writing.blending import tile_weights
from sam2unext.geo.writing.quantize import quantize_probability
from sam2unext.geo.writing.stitching import SceneWeights
from sam2unext.geo.writing.store import RunStore, store_path_for

from geo_helpers import expected_uint8, smooth_rgb, stitch, stitch_sums, write_raster


def read_all(path):
    with rasterio.open(path) as src:
        return src.read(1), src.read_masks(1)


def test_chunk_stitcher_equals_direct_blend():
    rng = np.random.default_rng(0)
    grid = make_grid(150, 173, 32, 0.25)
    probs = rng.random((len(grid), 32, 32), dtype=np.float32)
    # direct: sum of w * p over all tiles, divided by the sum of weights (float64)
    num = np.zeros((150, 173))
    den = np.zeros((150, 173))
    w = tile_weights(32, grid.overlap_px)
    for i in range(len(grid)):
        win = grid.window(i)
        r0, c0 = int(win.row_off), int(win.col_off)
        h, wd = min(32, 150 - r0), min(32, 173 - c0)
        num[r0 : r0 + h, c0 : c0 + wd] += (w * probs[i])[:h, :wd]
        den[r0 : r0 + h, c0 : c0 + wd] += w[:h, :wd]
    direct = (num / den).astype(np.float32)
    for size in (16, 64, 256):
        out = stitch(grid, list(probs), size)
        np.testing.assert_allclose(out, direct, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_overlap_add_sums_do_not_depend_on_the_chunking(overlap):
    """Each chunk adds only its own tiles; the chunks' bands added together give, bit for bit,
    the fixed-point sums of a plain whole-scene ``acc += rint(p * outer(row, col))``, at any chunk
    size; and the result stays within float32 rounding of the float64 blend of before."""
    rng = np.random.default_rng(1)
    grid = make_grid(150, 173, 32, overlap)  # the last tile row/column overlaps more than the others
    probs = rng.random((len(grid), 32, 32), dtype=np.float32)
    weights = SceneWeights(grid)
    acc = np.zeros((150, 173))
    w2d = tile_weights(32, grid.overlap_px)
    old = np.zeros((150, 173))
    for i in range(len(grid)):
        r, c = divmod(i, len(grid.col_offsets))
        r0, c0 = grid.row_offsets[r], grid.col_offsets[c]
        h, wd = min(32, 150 - r0), min(32, 173 - c0)
        acc[r0 : r0 + h, c0 : c0 + wd] += np.rint(probs[i][:h, :wd] * np.outer(weights.rows[r], weights.cols[c]))
        old[r0 : r0 + h, c0 : c0 + wd] += w2d[:h, :wd] * probs[i][:h, :wd]
    for size in (16, 64, 256):
        np.testing.assert_array_equal(stitch_sums(grid, list(probs), size, weights=weights), acc)
    ones = np.ones(len(grid), np.float32)[:, None, None] * np.ones((32, 32), np.float32)
    total = np.zeros((150, 173))
    for i in range(len(grid)):
        win = grid.window(i)
        r0, c0 = int(win.row_off), int(win.col_off)
        h, wd = min(32, 150 - r0), min(32, 173 - c0)
        total[r0 : r0 + h, c0 : c0 + wd] += w2d[:h, :wd] * ones[i][:h, :wd]
    before = (old / total).astype(np.float32)
    now = stitch(grid, list(probs), 64)
    np.testing.assert_allclose(now, before, rtol=0, atol=1e-7)
    assert (quantize_probability(now) != quantize_probability(before)).mean() < 1e-3


@pytest.mark.parametrize("chunk_size", [16, 32, 64])
def test_any_chunking_gives_the_unchunked_result_bit_for_bit(nodata_raster, tmp_path, chunk_size):
    one = predict_raster(
        nodata_raster,
        tmp_path / "one.tif",
        model=PixelModel(32, None),
        tile_size=32,
        vector=False,
        progress="none",
        out_dtype="float32",
    )
    many = predict_raster(
        nodata_raster,
        tmp_path / "many.tif",
        model=PixelModel(32, None),
        tile_size=32,
        chunk_size=chunk_size,
        vector=False,
        progress="none",
        out_dtype="float32",
    )
    assert one.chunks == 1 and many.chunks > 1
    np.testing.assert_array_equal(read_all(one.probability)[0], read_all(many.probability)[0])
    assert many.tiles_run == one.tiles_run and many.tiles_skipped == one.tiles_skipped
    grid = make_grid(200, 190, 32, 0.25)
    chunks = make_chunk_grid(200, 190, 32, chunk_size)
    # every tile computed once, by the one chunk that owns it, at any chunk size
    assert tile_computations(grid, chunks) == len(grid) == many.tiles_run + many.tiles_skipped
    assert many.tiles_computed == many.tiles_run == one.tiles_computed
    assert not store_path_for(many.probability).exists()


def test_tiny_model_chunked_equals_unchunked(tmp_path):
    import torch

    import sam2unext

    torch.manual_seed(0)
    model = sam2unext.load_model(preset="sam2unext-test", device="cpu")
    path = write_raster(tmp_path / "s.tif", smooth_rgb(300, 280, seed=5))
    a = predict_raster(path, tmp_path / "a.tif", model=model, tile_size=128, vector=False, progress="none")
    b = predict_raster(
        path, tmp_path / "b.tif", model=model, tile_size=128, chunk_size=128, vector=False, progress="none"
    )
    assert b.chunks == 9
    np.testing.assert_array_equal(read_all(a.probability)[0], read_all(b.probability)[0])


def test_failure_keeps_finished_chunks_and_resume_is_bit_identical(nodata_raster, tmp_path, capsys):
    out = tmp_path / "o.tif"
    full = predict_raster(
        nodata_raster,
        tmp_path / "full.tif",
        model=PixelModel(32, None),
        tile_size=32,
        chunk_size=32,
        batch_size=2,
        progress="none",
    )
    with pytest.raises(RuntimeError, match="stand-in failure"):
        predict_raster(
            nodata_raster,
            out,
            model=FailingPixelModel(32, fail_after=20),
            tile_size=32,
            chunk_size=32,
            batch_size=2,
            progress="none",
        )
    store = RunStore(store_path_for(out))
    done = store.summed()  # chunks whose tiles are computed (their first step)
    assert 0 < len(done) < full.chunks
    assert "rerun with resume=True" in capsys.readouterr().err
    assert not out.exists()
    # a rerun without resume names both ways out
    with pytest.raises(OutputError, match="resume=True.*overwrite=True"):
        predict_raster(
            nodata_raster, out, model=PixelModel(32, None), tile_size=32, chunk_size=32, batch_size=2, progress="none"
        )
    res = predict_raster(
        nodata_raster,
        out,
        model=PixelModel(32, None),
        tile_size=32,
        chunk_size=32,
        batch_size=2,
        progress="none",
        resume=True,
    )
    assert res.chunks_resumed == len(done)
    assert res.tiles_computed < full.tiles_computed
    assert (res.tiles_run, res.tiles_skipped) == (full.tiles_run, full.tiles_skipped)
    assert res.tiles_computed + res.tiles_resumed == full.tiles_run and res.tiles_resumed > 0
    for a, b in zip(read_all(full.probability), read_all(res.probability)):
        np.testing.assert_array_equal(a, b)
    assert res.vector.exists() and not store.folder.exists()
    expected, valid = expected_uint8(nodata_raster)
    np.testing.assert_array_equal(read_all(out)[0][valid], expected[valid])


def test_resume_refusals(nodata_raster, tmp_path):
    out = tmp_path / "o.tif"
    with pytest.raises(OutputError, match="nothing to resume"):
        predict_raster(nodata_raster, out, model=PixelModel(32, None), tile_size=32, resume=True, progress="none")
    with pytest.raises(RuntimeError):
        predict_raster(
            nodata_raster,
            out,
            model=FailingPixelModel(32, fail_after=20),
            tile_size=32,
            chunk_size=32,
            batch_size=2,
            progress="none",
        )
    # other parameters, another model, another chunking: refused, nothing changed
    before = sorted(p.name for p in RunStore(store_path_for(out)).done_folder.iterdir())
    for kwargs, started in [
        ({"overlap": 0.5}, "overlap='8px'"),
        ({"chunk_size": 64}, "chunk_size=32"),
        ({"out_dtype": "float32"}, "out_dtype='uint8'"),
    ]:
        args = {"tile_size": 32, "chunk_size": 32, "batch_size": 2, **kwargs}
        with pytest.raises(OutputError, match=f"it was started with {started}, "):
            predict_raster(nodata_raster, out, model=PixelModel(32, None), resume=True, progress="none", **args)

    class Other(PixelModel):
        def fingerprint(self):
            return {"stand-in": "another function"}

    with pytest.raises(OutputError, match="the model's weights or settings differ"):
        predict_raster(
            nodata_raster,
            out,
            model=Other(32, None),
            tile_size=32,
            chunk_size=32,
            batch_size=2,
            resume=True,
            progress="none",
        )
    assert sorted(p.name for p in RunStore(store_path_for(out)).done_folder.iterdir()) == before
    # overwrite discards the unfinished run and starts over
    res = predict_raster(
        nodata_raster,
        out,
        model=PixelModel(32, None),
        tile_size=32,
        chunk_size=32,
        batch_size=2,
        overwrite=True,
        progress="none",
    )
    assert res.chunks_resumed == 0 and not store_path_for(out).exists()


def test_resume_refuses_a_changed_input(tmp_path):
    scene = write_raster(tmp_path / "s.tif", smooth_rgb(100, 100, seed=1))
    out = tmp_path / "o.tif"
    with pytest.raises(RuntimeError):
        predict_raster(
            scene, out, model=FailingPixelModel(32, fail_after=5), tile_size=32, chunk_size=32, progress="none"
        )
    write_raster(scene, smooth_rgb(100, 100, seed=2))
    with pytest.raises(OutputError, match="the scene's content differs from the one it was started on"):
        predict_raster(
            scene, out, model=PixelModel(32, None), tile_size=32, chunk_size=32, resume=True, progress="none"
        )


def test_disk_full_names_the_folder_and_keeps_chunks(nodata_raster, tmp_path, monkeypatch):
    out = tmp_path / "o.tif"
    real_array = RunStore._array
    calls = [0]

    class FullDisk:
        """A Zarr array whose writes fail with ENOSPC after ten."""

        def __init__(self, array):
            self.array = array

        def __setitem__(self, key, value):
            calls[0] += 1
            if calls[0] > 10:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.array[key] = value

    def full_array(self, name):
        array = real_array(self, name)
        return None if array is None else FullDisk(array)

    monkeypatch.setattr(RunStore, "_array", full_array)
    with pytest.raises(OutputError, match=f"no space left on the device of {tmp_path}"):
        predict_raster(nodata_raster, out, model=PixelModel(32, None), tile_size=32, chunk_size=32, progress="none")
    kept = RunStore(store_path_for(out)).summed()  # chunks whose tiles are computed and stored
    assert len(kept) >= 3
    monkeypatch.setattr(RunStore, "_array", real_array)
    res = predict_raster(
        nodata_raster,
        out,
        model=PixelModel(32, None),
        tile_size=32,
        chunk_size=32,
        progress="none",
        resume=True,
        vector=False,
    )
    expected, valid = expected_uint8(nodata_raster)
    np.testing.assert_array_equal(read_all(res.probability)[0][valid], expected[valid])


def test_unwritable_store_location_is_a_user_error(nodata_raster, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    store_path_for(folder / "o.tif").write_text("a file where the store folder goes")
    with pytest.raises(OutputError):
        predict_raster(
            nodata_raster, folder / "o.tif", model=PixelModel(32, None), tile_size=32, progress="none", overwrite=False
        )


CHILD = """
import sys
from sam2unext.geo import predict_raster
from sam2unext.geo.demo.stand_ins import SlowPixelModelFactory
predict_raster(sys.argv[1], sys.argv[2], model=SlowPixelModelFactory(32, 0.02)(), tile_size=32, chunk_size=32,
               batch_size=2, progress="none", vector=False)
"""


@pytest.mark.timeout(240)
def test_kill_9_then_resume_is_bit_identical(nodata_raster, tmp_path):
    out = tmp_path / "o.tif"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(nodata_raster), str(out)])
    done = store_path_for(out) / "done"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if done.is_dir() and len(list(done.glob("*.json"))) >= 8:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the child finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = RunStore(store_path_for(out)).summed()
    assert 8 <= len(kept) < 42
    res = predict_raster(
        nodata_raster,
        out,
        model=SlowPixelModelFactory(32, 0.0)(),
        tile_size=32,
        chunk_size=32,
        batch_size=2,
        progress="none",
        vector=False,
        resume=True,
    )
    ref = predict_raster(
        nodata_raster,
        tmp_path / "ref.tif",
        model=PixelModel(32, None),
        tile_size=32,
        chunk_size=32,
        batch_size=2,
        progress="none",
        vector=False,
    )
    assert res.chunks_resumed == len(kept)
    for a, b in zip(read_all(ref.probability), read_all(res.probability)):
        np.testing.assert_array_equal(a, b)
    assert not Path(str(out) + ".partial").exists()


def test_chunks_side_by_side_give_the_same_output(nodata_raster, tmp_path, monkeypatch):
    from sam2unext.geo.running import schedule

    def run(name):
        res = predict_raster(
            nodata_raster,
            tmp_path / name,
            model=PixelModel(32, None),
            tile_size=32,
            chunk_size=32,
            vector=False,
            progress="none",
        )
        return read_all(res.probability), res

    one, res = run("one.tif")
    monkeypatch.setattr(schedule, "local_chunks_in_flight", lambda model: 3)
    three, _ = run("three.tif")
    assert res.chunks > 3
    np.testing.assert_array_equal(one[0], three[0])
    np.testing.assert_array_equal(one[1], three[1])


@pytest.mark.parametrize("cores,expected", [(1, 1), (2, 1), (7, 1), (8, 2), (16, 4), (64, 4)])
def test_chunks_in_flight_grow_with_cores(monkeypatch, cores, expected):
    from sam2unext.geo.running import pools

    monkeypatch.setattr(pools.os, "cpu_count", lambda: cores)
    assert pools.local_chunks_in_flight(PixelModel(32, None)) == expected


def test_default_chunk_is_sized_by_time_and_gives_a_cluster_work():
    from sam2unext.geo.running.chunks import default_chunk_size

    # no measured time: max(4096, 8 x tile), at most 8192
    assert default_chunk_size(256) == 4096 and default_chunk_size(1024) == 8192
    # about 180 s of work: 20 s per 1024 px tile (stride 768) is 3 x 3 tiles -> 2304 -> 2048
    assert default_chunk_size(1024, stride=768, seconds_per_tile=20.0) == 2048
    # a fast model: the largest chunk; a very slow one: the floor of 2 x tile
    assert default_chunk_size(256, stride=192, seconds_per_tile=1e-4) == 8192
    assert default_chunk_size(1024, stride=768, seconds_per_tile=600.0) == 2048
    # a cluster: a 4096² scene of 256 px tiles is cut into at least 8 chunks (it was one)
    side = default_chunk_size(256, stride=192, height=4096, width=4096)
    assert side == 1536 and (-(-4096 // side)) ** 2 == 9
