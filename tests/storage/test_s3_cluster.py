"""A real cluster without a shared filesystem: a `dask scheduler` and two `dask worker` processes,
each in its own working folder with its own TMPDIR; the scene, the checkpoint and the outputs on S3."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sam2unext.geo import predict_raster
from sam2unext.geo.storage import Location
from sam2unext.loader import ModelLoader, demo_weights_path

from s3_server import read_raster, write_scene

distributed = pytest.importorskip("distributed")

#: The demo model in 2 x 2 chunks of 128 px: each worker gets work.
RUN = dict(tile_size=128, batch_size=2, chunk_size=128, progress="none", out_dtype="float32")


def _start(args: list[str], folder: Path) -> subprocess.Popen:
    folder.mkdir(parents=True)
    (folder / "tmp").mkdir()
    env = {**os.environ, "TMPDIR": str(folder / "tmp"), "OMP_NUM_THREADS": "1"}
    env.pop("SAM2UNEXT_CACHE", None)
    log = open(folder / "log.txt", "w")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen([sys.executable, "-m", *args], cwd=folder, env=env, stdout=log, stderr=log)


@pytest.fixture
def cluster(tmp_path, s3_endpoint):
    """Scheduler and two single-thread workers as separate processes; yields (address, worker folders)."""
    sched_file = tmp_path / "scheduler.json"
    procs = [
        _start(
            [
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ],
            tmp_path / "scheduler",
        )
    ]
    folders = [tmp_path / f"worker{i}" for i in range(2)]
    try:
        deadline = time.time() + 60
        while not sched_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        for folder in folders:
            procs.append(
                _start(
                    [
                        "distributed.cli.dask_worker",
                        "--scheduler-file",
                        str(sched_file),
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--local-directory",
                        str(folder / "dask"),
                    ],
                    folder,
                )
            )
        with distributed.Client(scheduler_file=str(sched_file), timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            yield client.scheduler.address, folders
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.slow  # three Python processes start, two import torch and load the model: 2.5 min on a loaded 2-core box
@pytest.mark.timeout(300)
def test_cluster_from_s3_to_s3_equals_a_local_run(s3_bucket, tmp_path, cluster):
    address, worker_folders = cluster
    scene = write_scene(tmp_path / "s.tif", 200, 220, seed=5)
    bucket = Location(s3_bucket)
    bucket.upload_file(scene, "in/s.tif")
    bucket.upload_file(demo_weights_path(), "models/demo.safetensors")
    out = f"{s3_bucket}/out/s_prob.tif"
    res = predict_raster(
        f"{s3_bucket}/in/s.tif",
        out,
        model=ModelLoader(checkpoint=f"{s3_bucket}/models/demo.safetensors", device="cpu"),
        scheduler=address,
        vector=False,
        **RUN,
    )
    local = predict_raster(scene, tmp_path / "local.tif", model=ModelLoader("demo", device="cpu"), vector=False, **RUN)
    assert res.chunks == 4 and (res.tiles_run, res.tiles_computed) == (local.tiles_run, local.tiles_computed)
    for a, b in zip(read_raster(out), read_raster(local.probability)):
        np.testing.assert_array_equal(a, b)  # bit-identical
    assert bucket.list("out") == ["s_prob.tif"]  # the store on S3 is gone
    for folder in worker_folders:  # each worker fetched the checkpoint into its own TMPDIR, once
        copies = list((folder / "tmp").rglob("demo.safetensors"))
        assert len(copies) == 1, (folder, copies, (folder / "log.txt").read_text()[-2000:])
