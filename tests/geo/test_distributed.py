"""The dask.distributed path on a two-process LocalCluster over loopback: same chunk tasks, same bits."""

import numpy as np
import pytest
import rasterio
import torch

from sam2unext.geo import predict_raster
from sam2unext.geo.demo.stand_ins import KillOncePixelModelFactory, PixelModel, PixelModelFactory
from sam2unext.loader import ModelLoader

from geo_helpers import expected_uint8, smooth_rgb, write_raster

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield cluster, client


def read(path):
    with rasterio.open(path) as src:
        return src.read(1), src.read_masks(1)


@pytest.mark.timeout(180)
def test_local_cluster_two_workers(cluster, nodata_raster, tmp_path):
    cl, client = cluster
    res = predict_raster(
        nodata_raster,
        tmp_path / "o.tif",
        model=PixelModelFactory(32, 14),
        tile_size=32,
        batch_size=2,
        chunk_size=64,
        scheduler=cl.scheduler_address,
        vector=False,
        progress="none",
    )

    def counts():
        from sam2unext.geo.running import cluster

        return dict(cluster.LOAD_COUNTS)

    per_worker = client.run(counts)
    tasks_per_worker = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert len(per_worker) == 2
    assert all(list(c.values()) == [1] for c in per_worker.values()), per_worker
    assert all(n > 0 for n in tasks_per_worker.values()), tasks_per_worker
    expected, valid = expected_uint8(nodata_raster)
    out, mask = read(res.probability)
    np.testing.assert_array_equal(mask > 0, valid)
    np.testing.assert_array_equal(out[valid], expected[valid])
    assert res.tiles_skipped >= 1


#: The demo-model runs below: a 300 x 280 scene in 2 x 2 chunks of 256 px, float32 output. They ask for
#: float32 compute: bit-identity is promised for it (``--precision auto`` may pick bfloat16 on a CPU that has it).
DEMO_RUN = dict(tile_size=128, batch_size=3, chunk_size=256, vector=False, progress="none", out_dtype="float32")


@pytest.fixture(scope="module")
def demo_reference(tmp_path_factory):
    """The scene of the demo-model runs and its local output at torch's default thread count."""
    folder = tmp_path_factory.mktemp("demo_reference")
    scene = write_raster(folder / "s.tif", smooth_rgb(300, 280, seed=4))
    res = predict_raster(
        scene, folder / "local.tif", model=ModelLoader(checkpoint="demo", device="cpu", dtype="float32"), **DEMO_RUN
    )
    return scene, read(res.probability)[0], (res.tiles_run, res.tiles_computed)


@pytest.mark.timeout(300)
def test_local_and_distributed_outputs_are_bit_identical(cluster, demo_reference, tmp_path):
    """The demo model: torch's CPU reductions change bits with the thread count, so every forward pass runs
    on one thread; local runs at any torch thread count equal cluster runs (1-thread worker processes)."""
    cl, _ = cluster
    scene, expected, tiles = demo_reference
    loader = ModelLoader(checkpoint="demo", device="cpu", dtype="float32")
    before = torch.get_num_threads()
    threads = 1 if before > 1 else 2  # the other thread count than the reference run's
    try:
        torch.set_num_threads(threads)
        outputs = [predict_raster(scene, tmp_path / f"local{threads}.tif", model=loader, **DEMO_RUN)]
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before
    dist = predict_raster(scene, tmp_path / "dist.tif", model=loader, scheduler=cl.scheduler_address, **DEMO_RUN)
    outputs.append(dist)
    for res in outputs:
        np.testing.assert_array_equal(read(res.probability)[0], expected)
        assert (res.tiles_run, res.tiles_computed) == tiles
    assert outputs[-1].chunks == 4


@pytest.mark.timeout(300)
def test_worker_killed_mid_run_gives_the_same_output(cluster, nodata_raster, tmp_path):
    cl, client = cluster
    marker = tmp_path / "killed"
    res = predict_raster(
        nodata_raster,
        tmp_path / "o.tif",
        model=KillOncePixelModelFactory(32, str(marker)),
        tile_size=32,
        batch_size=2,
        chunk_size=32,
        scheduler=cl.scheduler_address,
        vector=False,
        progress="none",
    )
    assert marker.exists(), "no worker was killed"
    ref = predict_raster(
        nodata_raster,
        tmp_path / "ref.tif",
        model=PixelModel(32, None),
        tile_size=32,
        batch_size=2,
        chunk_size=32,
        vector=False,
        progress="none",
    )
    for a, b in zip(read(ref.probability), read(res.probability)):
        np.testing.assert_array_equal(a, b)
    client.wait_for_workers(2, timeout=60)


@pytest.mark.timeout(180)
def test_several_devices_run_one_worker_each(cluster, demo_reference, tmp_path, monkeypatch):
    """Several GPUs: one worker process per device through the cluster path (here the module's two
    single-thread worker processes stand for two GPUs, both on the CPU)."""
    import contextlib

    from sam2unext.geo import models
    from sam2unext.geo.running import cluster as geo_cluster

    _, client = cluster
    used = []

    @contextlib.contextmanager
    def workers(count):
        used.append(count)
        yield client

    scene, expected, tiles = demo_reference
    monkeypatch.setattr(models, "local_devices", lambda device: ["cpu", "cpu"])
    monkeypatch.setattr(geo_cluster, "device_workers", workers)
    loader = ModelLoader(checkpoint="demo", device="cpu", dtype="float32")
    spread = predict_raster(scene, tmp_path / "spread.tif", model=loader, **DEMO_RUN)
    assert used == [2] and loader._model is None  # this process's copy was released for the workers
    np.testing.assert_array_equal(read(spread.probability)[0], expected)  # equal to the local run
    assert (spread.tiles_run, spread.tiles_computed) == tiles


def test_each_worker_loads_on_its_own_device(monkeypatch):
    from sam2unext.geo.running import cluster

    class Loader:
        def on(self, device):
            return lambda: f"model on {device}"

    factory = cluster.PerWorkerDevice(Loader(), ["cuda:0", "cuda:1"])
    for name, device in [(0, "cuda:0"), (1, "cuda:1"), (2, "cuda:0")]:
        monkeypatch.setattr(cluster, "_WORKER_NAME", name)
        assert factory() == f"model on {device}"
    assert ModelLoader("demo", device="auto").on("cuda:1").kwargs["device"] == "cuda:1"
