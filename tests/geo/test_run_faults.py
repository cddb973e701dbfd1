"""Issue 23 (8): faults found by killing, terminating and filling the disk at every stage of a run."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from sam2unext.errors import ClusterError
from sam2unext.geo import predict_raster
from sam2unext.geo.demo.stand_ins import FailingPixelModel, PixelModel, SlowPixelModelFactory
from sam2unext.geo.running.cluster import WorkerWatch
from sam2unext.geo.running.fingerprint import scene_fingerprint
from sam2unext.geo.vectors.vectorize import vector_temp_name
from sam2unext.geo.writing.cog import temp_name
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
    kept = len(RunStore(store_path_for(first / "o.tif")).summed())  # chunks whose tiles are kept
    assert kept > 0
    moved = tmp_path / "mounted" / "elsewhere"
    shutil.copytree(first, moved)  # new paths, new modification times
    shutil.rmtree(first)
    res = predict_raster(moved / "s.tif", moved / "o.tif", model=PixelModel(32, None), resume=True, **RUN)
    assert res.chunks_resumed == kept
    ref = predict_raster(moved / "s.tif", tmp_path / "ref.tif", model=PixelModel(32, None), **RUN)
    for a, b in zip(read_all(ref.probability), read_all(res.probability)):
        np.testing.assert_array_equal(a, b)


# -- (a) a cluster without workers: said at once, stopped after worker_timeout, resumable ---------------
def test_worker_watch_warns_once_then_stops_after_the_timeout():
    now, workers, said = [0.0], [1], []
    watch = WorkerWatch(lambda: workers[0], said.append, "tcp://s:8786", 30.0, interval=1.0, clock=lambda: now[0])
    watch.check()
    assert said == []
    workers[0] = 0
    for t in (1.0, 1.5, 2.0, 20.0):  # asked at most once a second; one warning
        now[0] = t
        watch.check()
    assert len(said) == 1 and "no worker is connected to the scheduler tcp://s:8786" in said[0]
    assert "waiting" in said[0] and "worker_timeout=30.0" in said[0]
    workers[0] = 2  # a worker came back: said, and the clock restarts
    now[0] = 25.0
    watch.check()
    assert "2 worker(s) connected" in said[-1]
    workers[0] = 0
    now[0] = 40.0
    watch.check()
    now[0] = 69.0
    watch.check()  # 29 s without a worker: still waiting
    now[0] = 70.0
    with pytest.raises(ClusterError, match=r"for 30 s; .*rerun with resume=True") as err:
        watch.check()
    assert "\n" not in str(err.value)
    forever = WorkerWatch(lambda: 0, said.append, "tcp://s:8786", None, clock=lambda: now[0])
    now[0] = 1e9
    forever.check()
    assert "waits until one connects" in said[-1] and "worker_timeout=600" in said[-1]


@pytest.mark.timeout(120)
def test_cluster_whose_workers_all_die_stops_after_worker_timeout_then_resumes(tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    scene = write_raster(tmp_path / "s.tif", smooth_rgb(96, 96, seed=5))  # 9 chunks
    out = tmp_path / "o.tif"
    done = store_path_for(out) / "done"
    with (
        distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=1, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):

        def lose_every_worker():
            while len(list(done.glob("*.json"))) < 2:
                time.sleep(0.02)
            cluster.scale(0)

        threading.Thread(target=lose_every_worker, daemon=True).start()
        with pytest.raises(ClusterError, match="no worker was connected to the scheduler .* for 1.5 s"):
            predict_raster(
                scene, out, model=SlowPixelModelFactory(32, 0.02), scheduler=client, worker_timeout=1.5, **RUN
            )
    err = capsys.readouterr().err
    assert "warning: no worker is connected to the scheduler" in err and "the run is waiting for one" in err
    kept = len(RunStore(store_path_for(out)).finished())
    assert kept >= 2
    with (
        distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=1, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):  # new workers: the resume finishes on the cluster
        res = predict_raster(scene, out, model=SlowPixelModelFactory(32, 0.02), scheduler=client, resume=True, **RUN)
    ref = predict_raster(scene, tmp_path / "ref.tif", model=PixelModel(32, None), **RUN)
    assert res.chunks_resumed >= kept
    for a, b in zip(read_all(ref.probability), read_all(res.probability)):
        np.testing.assert_array_equal(a, b)


# -- (b) a disk that fills while the COG is written: the run's disk-full error, not GDAL's ----------------
FULL_DISK_CHILD = """
import sys
import tempfile
from pathlib import Path

import numpy as np

from sam2unext.errors import OutputError
from sam2unext.geo.writing.cog import write_probability_cog
from sam2unext.geo.writing.pyramid import chunk_levels, write_chunk_pyramid
from sam2unext.geo.writing.store import RunStore

folder, side = Path(sys.argv[1]), int(sys.argv[2])
noise = np.random.default_rng(0).integers(0, 255, (side, side), dtype=np.uint8)  # incompressible
store = RunStore(Path(tempfile.mkdtemp()) / "o.tif.partial")  # the store on another device: only the COG fills this one
store.create({}, height=side, width=side, chunk_width=side, out_dtype="uint8", masked=False)
store.write(0, 0, noise, None)
write_chunk_pyramid(store, 0, 0, side, side, chunk_levels(side, side, side))
try:
    write_probability_cog(store, folder / "o.tif", height=side, width=side, transform=None, crs=None, masked=False)
    print("written")
except OutputError as exc:
    print("OutputError:", exc)
print("left:", sorted(p.name for p in folder.iterdir()))
store.remove()
"""


def _in_a_tiny_tmpfs(size: str, *args: str) -> str:
    """Run FULL_DISK_CHILD on a real tmpfs of ``size`` (a user and mount namespace: no root needed)."""
    import subprocess
    import sys

    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to mount a small tmpfs")
    probe = subprocess.run(["unshare", "-rm", "mount", "-t", "tmpfs", "tmpfs", "/mnt"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"user and mount namespaces are not allowed here: {probe.stderr.decode().strip()}")
    script = f'mount -t tmpfs -o size={size} tmpfs /mnt && exec "$0" -c "$1" /mnt "$2"'
    run = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, sys.executable, FULL_DISK_CHILD, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.mark.parametrize(
    "size,side",
    [
        ("4m", "2048"),  # full early in the COG copy
        ("900k", "1024"),  # full late in the COG copy
    ],
)
def test_a_disk_full_during_the_cog_write_is_the_runs_disk_full_error(size, side):
    """A real full device (a tmpfs of ``size``): GDAL's plain "Write failed" becomes the resumable disk-full error."""
    out = _in_a_tiny_tmpfs(size, side)
    assert "OutputError: no space left on the device of /mnt; free space there, then rerun with resume=True" in out
    assert "left: []" in out  # no temporary file stays behind


# -- (c) a kill -9 while the COG or the polygons are written: the resume removes its own leftovers -------
KILLED_IN_COG_COPY = """
import os
import signal
import sys

import rasterio.shutil

from sam2unext.geo import predict_raster
from sam2unext.geo.demo.stand_ins import PixelModel

real_copy = rasterio.shutil.copy


def copy_then_die(*args, **kwargs):  # killed once the COG copy is written, before it is renamed
    real_copy(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)


rasterio.shutil.copy = copy_then_die
predict_raster(sys.argv[1], sys.argv[2], model=PixelModel(32, None), tile_size=32, chunk_size=32, progress="none")
"""


@pytest.mark.slow  # a child process that imports torch: 15.6 s measured on a loaded 2-core run
@pytest.mark.timeout(180)
def test_a_resume_after_a_kill_in_the_write_stage_removes_its_own_leftovers(nodata_raster, tmp_path):
    import subprocess
    import sys

    folder = tmp_path / "out"
    folder.mkdir()
    out, vec = folder / "o.tif", folder / "o_polygons.gpkg"
    child = subprocess.run([sys.executable, "-c", KILLED_IN_COG_COPY, str(nodata_raster), str(out)], timeout=150)
    assert child.returncode == -signal.SIGKILL
    left = sorted(p.name for p in folder.iterdir())
    assert [n for n in left if n.endswith(".tif")] == [n for n in left if n.endswith(".cog.tif")] != [], left
    # what a kill in the vectorize stage leaves (the names the polygon writer makes), and files of others
    temp_name(vec, "binary").write_bytes(b"binary raster")
    pending = vector_temp_name(vec, ".gpkg")
    pending.write_bytes(b"half a GeoPackage")
    Path(f"{pending}-journal").write_bytes(b"")
    others = [folder / ".other.tif.0123abcd.strips.tif", folder / ".o.tif.notes", folder / "o.tif.0123abcd.cog.tif"]
    for path in others:
        path.write_bytes(b"not this run's")
    res = predict_raster(
        nodata_raster, out, model=PixelModel(32, None), tile_size=32, chunk_size=32, progress="none", resume=True
    )
    assert res.vector == vec and vec.exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(["o.tif", "o_polygons.gpkg", *(p.name for p in others)])


# -- (d) a kill between the polygons and the store's removal: the resume takes its outputs as its own -----
def test_a_resume_after_the_outputs_were_written_treats_them_as_its_own(nodata_raster, tmp_path, monkeypatch):
    out = tmp_path / "o.tif"
    run = {"model": PixelModel(32, None), "tile_size": 32, "chunk_size": 32, "progress": "none"}
    monkeypatch.setattr(RunStore, "remove", lambda self: None)  # as if killed just before the store went
    first = predict_raster(nodata_raster, out, **run)
    monkeypatch.undo()
    assert store_path_for(out).is_dir() and first.vector.exists()
    before = read_all(out)
    res = predict_raster(nodata_raster, out, resume=True, **run)
    assert res.chunks_resumed == res.chunks and res.tiles_computed == 0
    assert res.vector == first.vector and res.vector.exists() and not store_path_for(out).exists()
    for a, b in zip(before, read_all(out)):
        np.testing.assert_array_equal(a, b)
