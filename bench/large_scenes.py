"""Benchmark of scenes of any size (not a test): first tile, flat memory, resume, cluster, chunk borders.

(1) time to the first tile and peak RSS over the first ``--watch`` seconds of
    ``sam2unext-geo predict --checkpoint demo --tile-size 1024`` on sparse (empty, tiled) GeoTIFFs
    of 50000², 100000² and 200000² px;
(2) peak RSS of whole ``predict_raster`` runs (trivial model, tile 1024, COG included) at 4096²,
    16384² and 65536 x 4096, each in its own process;
(3) resume: a run killed (SIGKILL) at about half of its tiles, then ``--resume``: tiles computed in
    all against an uninterrupted run, and whether the outputs are bit-identical;
(4) local vs ``dask.distributed`` (LocalCluster, 2 single-thread workers) wall time on a 6000² scene
    with the demo weights, outputs compared, and the bytes of status records the client received
    per tile;
(5) forward passes ÷ tiles at the default chunk size, and measured on 2048² with 512 px chunks.
(6) object storage: the scene and the output on S3 (moto's server on 127.0.0.1, a real S3 API
    over HTTP), a LocalCluster of 2 single-thread workers, against a local run of a local copy:
    wall time, outputs compared, and the bytes that reached the client (status records from the
    workers; the compressed store it streams into the COG) against the uncompressed pixels.
(7) the final step at ``--cog-size``² (default 65536²): a store filled chunk by chunk with a smooth
    probability pattern and each chunk's pyramid levels (as the workers make them; not timed),
    then the client's coarse levels and the COG copy (timed), with the peak scratch bytes in the
    output folder (sampled every 0.2 s: the COG under its temporary name) against the COG's size.

Usage:
    python bench/large_scenes.py [--only 1 2 3 4 5 6 7] [--watch 60] [--cog-size 65536]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import queue
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from geo_pipeline import TrivialModel, make_scene, scene_profile  # noqa: E402  (the same generated scenes and trivial model)

EXE = str(Path(sys.executable).with_name("sam2unext-geo"))


def predict_cmd(scene: Path, out: Path, *extra: str) -> list[str]:
    """``sam2unext-geo predict`` with the demo weights on the CPU, JSON progress, no polygons."""
    return [
        EXE,
        "predict",
        str(scene),
        "-o",
        str(out),
        "--checkpoint",
        "demo",
        "--progress",
        "json",
        "--no-vector",
        "--device",
        "cpu",
        *extra,
    ]


def sparse_scene(path: Path, size: int) -> Path:
    """An empty tiled RGB uint8 GeoTIFF (sparse: no block is written, every pixel reads 0)."""
    profile = scene_profile(size, size) | {"bigtiff": "YES", "sparse_ok": True}
    with rasterio.open(path, "w", **profile):
        pass
    return path


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process in MB, from /proc."""
    cur = peak = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return cur, peak


def first_tile(scene: Path, out: Path, watch: float) -> dict:
    """Run predict on ``scene``; seconds to the first finished tile, peak RSS within ``watch`` s."""
    cmd = predict_cmd(scene, out, "--tile-size", "1024", "--overlap", "0.25")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    events: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [events.put(json.loads(line)) for line in proc.stdout], daemon=True).start()
    first = None
    start_event = None
    peak = 0.0
    while time.perf_counter() - t0 < watch and proc.poll() is None:
        try:
            peak = max(peak, rss_mb(proc.pid)[1])
        except FileNotFoundError:
            break
        while not events.empty():
            event = events.get()
            if event["event"] == "start":
                start_event = event
            if first is None and event.get("stage") == "predict" and event["done"] > 0:
                first = time.perf_counter() - t0
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return {"first_tile_s": first, "peak_rss_mb": peak, "start": start_event}


def child_rss(scene: str, out: str) -> None:
    """(subprocess) one whole predict_raster run with the trivial model; prints JSON figures."""
    import torch  # noqa: F401 (a real run has torch loaded)

    from sam2unext.geo import predict_raster

    t0 = time.perf_counter()
    res = predict_raster(
        scene,
        out,
        model=TrivialModel(1024),
        tile_size=1024,
        batch_size=4,
        vector=False,
        progress="none",
        overwrite=True,
    )
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - t0,
                "tiles": res.tiles_run,
                "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def run_predict(scene: Path, out: Path, *extra: str) -> tuple[float, list[dict]]:
    """predict with the demo weights (tile 256); wall seconds and the JSON events."""
    cmd = predict_cmd(scene, out, *extra)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, [json.loads(line) for line in proc.stdout.splitlines()]


def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(path) as src:
        return src.read(1), src.read_masks(1)


def resume_figures(tmp: Path, size: int, chunk: int) -> list[tuple[str, str]]:
    scene = make_scene(tmp / "resume_scene.tif", size, seed=3)
    full_s, events = run_predict(scene, tmp / "full.tif", "--chunk-size", str(chunk))
    done = next(e for e in events if e["event"] == "done")
    start = next(e for e in events if e["event"] == "start")
    total = start["computations"]
    # killed run: SIGKILL once half of the tile computations are reported
    cmd = predict_cmd(scene, tmp / "r.tif", "--chunk-size", str(chunk))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    killed_at = 0
    for line in proc.stdout:
        event = json.loads(line)
        if event.get("stage") == "predict" and event["done"] >= total // 2:
            killed_at = event["done"]
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    store = tmp / "r.tif.partial" / "summed"  # chunks whose tiles are computed
    kept = [json.loads(p.read_text()) for p in store.glob("*.json")]
    kept_tiles = sum(k["computed"] for k in kept)
    res_s, events = run_predict(scene, tmp / "r.tif", "--chunk-size", str(chunk), "--resume")
    resumed = next(e for e in events if e["event"] == "start")
    resumed_done = next(e for e in events if e["event"] == "done")
    after = total - sum(k["computed"] for k in kept)
    # tiles computed by the killed run: at least those reported; all of them up to the kill
    computed_all = killed_at + after
    same = all(np.array_equal(a, b) for a, b in zip(read(tmp / "full.tif"), read(tmp / "r.tif")))
    return [
        (
            f"(3) uninterrupted {size}^2, chunk {chunk}: tile computations / chunks / wall",
            f"{total} / {start['chunks']} / {full_s:.1f} s",
        ),
        (
            "(3) killed (SIGKILL) after tiles reported / chunks kept (their tiles)",
            f"{killed_at} / {len(kept)} ({kept_tiles})",
        ),
        ("(3) resume: chunks taken over / tiles computed", f"{resumed['resumed_chunks']} / {after} in {res_s:.1f} s"),
        (
            "(3) tiles computed in all / uninterrupted (goal <= 1.10)",
            f"{computed_all} / {total} = {computed_all / total:.3f}",
        ),
        ("(3) resumed output bit-identical to the uninterrupted one", str(same)),
        ("(3) tiles_run reported (uninterrupted)", f"{done['tiles_run']}"),
        (
            "(3) resumed run's done event: tiles_computed / tiles_resumed",
            f"{resumed_done['tiles_computed']} / {resumed_done['tiles_resumed']}",
        ),
    ]


def distributed_figures(tmp: Path, size: int) -> list[tuple[str, str]]:
    import distributed

    from sam2unext.geo import predict_raster
    from sam2unext.geo.running.chunk_task import ChunkStatus
    from sam2unext.loader import ModelLoader

    scene = make_scene(tmp / "dist_scene.tif", size, seed=4)
    loader = ModelLoader(checkpoint="demo", device="cpu")
    rows = []
    times = {}
    results = {}
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster),
    ):
        # warm-up: workers import torch and load the model once
        predict_raster(
            make_scene(tmp / "warm.tif", 512),
            tmp / "warm_prob.tif",
            model=loader,
            scheduler=cluster.scheduler_address,
            vector=False,
            progress="none",
        )
        for _ in range(2):  # interleaved
            for mode in ("local", "distributed"):
                t0 = time.perf_counter()
                res = predict_raster(
                    scene,
                    tmp / f"{mode}.tif",
                    model=loader,
                    vector=False,
                    progress="none",
                    overwrite=True,
                    scheduler=cluster.scheduler_address if mode != "local" else None,
                )
                times.setdefault(mode, []).append(time.perf_counter() - t0)
                results[mode] = res
    same = all(np.array_equal(a, b) for a, b in zip(read(tmp / "local.tif"), read(tmp / "distributed.tif")))
    res = results["distributed"]
    status_bytes = len(pickle.dumps(ChunkStatus(0, "sum", 99, 99, 0, 1.0, 1.0))) * res.chunks
    rows += [
        (
            f"(4) local (threads) {size}^2 demo weights, {res.tiles_run} tiles, best of 2",
            f"{min(times['local']):.1f} s",
        ),
        ("(4) LocalCluster 2 workers x 1 thread, best of 2", f"{min(times['distributed']):.1f} s"),
        ("(4) distributed / local (goal <= 1.3)", f"{min(times['distributed']) / min(times['local']):.2f}"),
        ("(4) outputs bit-identical", str(same)),
        ("(4) status bytes the client received per tile (pickled records)", f"{status_bytes / res.tiles_run:.1f}"),
    ]
    return rows


def s3_figures(tmp: Path, size: int) -> list[tuple[str, str]]:
    """(6): the S3 cluster run against a local run of the same scene."""
    import socket

    import distributed

    from sam2unext.geo import predict_raster
    from sam2unext.geo.running.chunk_task import ChunkStatus
    from sam2unext.geo.storage import Location
    from sam2unext.geo.writing import store as store_module
    from sam2unext.loader import ModelLoader

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
    )
    store_bytes: list[int] = []
    real_remove = store_module.RunStore.remove

    def remove(self):  # what the client streamed into the COG: the store's compressed chunks
        if self.location.is_remote:
            store_bytes.append(int(self.location.fs.du(self.location._key("prob.zarr"))))
        real_remove(self)

    store_module.RunStore.remove = remove  # type: ignore[method-assign]
    try:
        time.sleep(3)
        import boto3

        boto3.client("s3").create_bucket(Bucket="bench")
        scene = make_scene(tmp / "s3_scene.tif", size, seed=6)
        Location("s3://bench").upload_file(scene, "in/scene.tif")
        loader = ModelLoader(checkpoint="demo", device="cpu")
        times: dict[str, list[float]] = {}
        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster),
        ):
            predict_raster(  # warm-up: workers import torch and load the model once
                make_scene(tmp / "warm6.tif", 512),
                tmp / "warm6_prob.tif",
                model=loader,
                scheduler=cluster.scheduler_address,
                vector=False,
                progress="none",
            )
            for _ in range(2):  # interleaved
                for mode in ("local", "s3"):
                    t0 = time.perf_counter()
                    res = predict_raster(
                        scene if mode == "local" else "s3://bench/in/scene.tif",
                        tmp / "local6.tif" if mode == "local" else "s3://bench/out/scene_prob.tif",
                        model=loader,
                        vector=False,
                        progress="none",
                        overwrite=True,
                        scheduler=cluster.scheduler_address if mode == "s3" else None,
                    )
                    times.setdefault(mode, []).append(time.perf_counter() - t0)
        same = all(
            np.array_equal(a, b) for a, b in zip(read(tmp / "local6.tif"), read("s3://bench/out/scene_prob.tif"))
        )
        status = len(pickle.dumps(ChunkStatus(0, "sum", 99, 99, 0, 1.0, 1.0))) * res.chunks
        cog = Location("s3://bench/out").size("scene_prob.tif")
    finally:
        store_module.RunStore.remove = real_remove  # type: ignore[method-assign]
        server.terminate()
        server.wait(timeout=20)
    pixels = size * size * 2  # uint8 probability + uint8 validity
    return [
        (
            f"(6) local (threads) {size}^2 demo weights, {res.tiles_run} tiles, best of 2",
            f"{min(times['local']):.1f} s",
        ),
        (
            "(6) S3 in and out, LocalCluster 2 workers x 1 thread, best of 2",
            f"{min(times['s3']):.1f} s ({min(times['s3']) / min(times['local']):.2f} x local)",
        ),
        ("(6) outputs bit-identical", str(same)),
        ("(6) bytes to the client from the workers (status records)", f"{status} ({res.chunks} chunks)"),
        (
            "(6) bytes to the client from S3 (compressed store, streamed into the COG)",
            f"{store_bytes[-1] / 1e6:.2f} MB vs {pixels / 1e6:.1f} MB of raw pixels; COG uploaded {cog / 1e6:.2f} MB",
        ),
    ]


def border_figures(tmp: Path) -> list[tuple[str, str]]:
    """Forward passes ÷ tiles: at the default chunk size (counted from the ownership layout), and
    measured on a 2048² scene with 512 px chunks (the issue's 196 passes for 121 tiles)."""
    from sam2unext.geo import predict_raster
    from sam2unext.geo.running.chunks import OverlapLayout, make_chunk_grid, tiles_touching
    from sam2unext.geo.running.tiling import make_grid

    rows = []
    for tile, size in [(1024, 100000), (1024, 20000), (352, 20000), (256, 20000)]:
        grid = make_grid(size, size, tile, 0.25)
        chunks = make_chunk_grid(size, size, tile)
        layout = OverlapLayout(grid, chunks)
        passes = sum(len(r) * len(c) for r, c in (layout.owned(k) for k in range(len(chunks))))
        touching = sum(len(r) * len(c) for r, c in (tiles_touching(grid, ch) for ch in chunks))
        rows.append(
            (
                f"(5) tile {tile}, overlap 0.25, {size}^2, default chunk {chunks.size} (no measured time)",
                f"{len(grid)} tiles: forward passes / tiles = {passes / len(grid):.2f} "
                f"(each chunk computing every tile it touches: {touching / len(grid):.2f})",
            )
        )
    scene = make_scene(tmp / "border.tif", 2048, seed=6)
    counter = CountingModel(256)
    res = predict_raster(
        scene, tmp / "border_prob.tif", model=counter, tile_size=256, chunk_size=512, vector=False, progress="none"
    )
    rows.append(
        (
            "(5) measured: 2048², tile 256, chunk 512 (16 chunks)",
            f"computed {res.tiles_computed} for {res.tiles_run} tiles = {res.tiles_computed / res.tiles_run:.2f}; "
            f"the model saw {counter.tiles} tiles (2 of them the start event's time measurement)",
        )
    )
    return rows


class CountingModel:
    """A trivial per-pixel model that counts the tiles it is given."""

    def __init__(self, size: int):
        self.input_size, self.low_res_size, self.in_chans, self.tiles = size, None, 3, 0
        self._lock = threading.Lock()

    def predict(self, images, low_res=None):
        with self._lock:
            self.tiles += len(images)
        return images[:, :1] * 0.5


def folder_bytes(folder: Path, skip: str) -> int:
    """Bytes of the files in ``folder`` except under the entry named ``skip`` (the run store)."""
    total = 0
    for entry in os.scandir(folder):
        if entry.name != skip and entry.is_file():
            try:
                total += entry.stat().st_size
            except FileNotFoundError:
                pass
    return total


def cog_write_figures(tmp: Path, size: int, chunk: int = 4096) -> list[tuple[str, str]]:
    """(7): time and scratch of the final step (coarse levels + COG copy) from a filled store."""
    from affine import Affine

    from sam2unext.geo.running.chunks import ChunkGrid
    from sam2unext.geo.writing.cog import write_probability_cog
    from sam2unext.geo.writing.pyramid import chunk_levels, finish_pyramid, write_chunk_pyramid
    from sam2unext.geo.writing.store import RunStore

    folder = tmp / "cog7"
    folder.mkdir()
    store = RunStore(folder / "p.tif.partial")
    store.create({}, height=size, width=size, chunk_width=chunk, out_dtype="uint8", masked=True)
    levels = chunk_levels(chunk, size, size)
    t0 = time.perf_counter()
    for c in ChunkGrid(size, size, chunk):
        yy = np.arange(c.row_off, c.row_off + c.height, dtype=np.float32)[:, None]
        xx = np.arange(c.col_off, c.col_off + c.width, dtype=np.float32)[None, :]
        prob = 0.5 + 0.5 * np.sin(yy / 97) * np.cos(xx / 131)  # blobs like a saliency map
        values = np.where(prob > 0.8, 255, np.rint(prob * 255) // 16).astype(np.uint8)
        store.write(c.row_off, c.col_off, values, None)
        write_chunk_pyramid(store, c.row_off, c.col_off, c.height, c.width, levels)
    fill = time.perf_counter() - t0
    peak, stop = [0], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], folder_bytes(folder, "p.tif.partial"))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out = folder / "p.tif"
    t0 = time.perf_counter()
    finish_pyramid(store, size, size, levels)
    t_levels = time.perf_counter() - t0
    write_probability_cog(
        store, out, height=size, width=size, transform=Affine(0.5, 0, 0, 0, -0.5, 0), crs="EPSG:32633", masked=True
    )
    total = time.perf_counter() - t0
    stop.set()
    watcher.join()
    cog = out.stat().st_size
    store_bytes = sum(f.stat().st_size for f in (folder / "p.tif.partial").rglob("*") if f.is_file())
    store.remove()
    return [
        (
            f"(7) final step at {size}^2 ({chunk} px chunks, {levels} levels by the chunks)",
            f"{total:.1f} s ({t_levels:.1f} s of client levels), COG {cog / 1e6:.1f} MB, peak scratch in the output "
            f"folder {peak[0] / 1e6:.1f} MB ({peak[0] / cog:.2f} x the COG); store {store_bytes / 1e6:.1f} MB, "
            f"filled in {fill:.0f} s",
        )
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 7])
    parser.add_argument("--cog-size", type=int, default=65536)
    parser.add_argument("--watch", type=float, default=60.0)
    parser.add_argument("--sparse", type=int, nargs="+", default=[50000, 100000, 200000])
    parser.add_argument("--resume-size", type=int, default=3072)
    parser.add_argument("--resume-chunk", type=int, default=512)
    parser.add_argument("--dist-size", type=int, default=6000)
    parser.add_argument("--s3-size", type=int, default=4096)
    args = parser.parse_args(argv)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="large-bench-", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        if 1 in args.only:
            for size in args.sparse:
                scene = sparse_scene(tmp / f"sparse{size}.tif", size)
                fig = first_tile(scene, tmp / f"sparse{size}_prob.tif", args.watch)
                start = fig["start"] or {}
                rows.append(
                    (
                        f"(1) sparse {size}^2: first tile / peak RSS in {args.watch:.0f} s",
                        f"{fig['first_tile_s'] and round(fig['first_tile_s'], 1)} s / {fig['peak_rss_mb']:.0f} MB "
                        f"({start.get('tiles')} tiles, {start.get('chunks')} chunks)",
                    )
                )
                for p in tmp.glob(f"sparse{size}*"):
                    subprocess.run(["rm", "-rf", str(p)], check=False)
        if 2 in args.only:
            rss = {}
            for h, w in [(4096, 4096), (16384, 16384), (65536, 4096)]:
                scene = make_scene(tmp / f"s{h}x{w}.tif", h, width=w)
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", str(scene), str(tmp / "o.tif")],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                fig = json.loads(proc.stdout.strip().splitlines()[-1])
                rss[(h, w)] = fig["maxrss_mb"]
                rows.append(
                    (
                        f"(2) peak RSS {h}x{w} ({fig['tiles']} tiles, {fig['seconds']:.0f} s)",
                        f"{fig['maxrss_mb']:.0f} MB",
                    )
                )
                scene.unlink()
            rows.append(("(2) RSS max / min (goal <= 1.1)", f"{max(rss.values()) / min(rss.values()):.3f}"))
        if 3 in args.only:
            rows += resume_figures(tmp, args.resume_size, args.resume_chunk)
        if 4 in args.only:
            rows += distributed_figures(tmp, args.dist_size)
        if 5 in args.only:
            rows += border_figures(tmp)
        if 6 in args.only:
            rows += s3_figures(tmp, args.s3_size)
        if 7 in args.only:
            rows += cog_write_figures(tmp, args.cog_size)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    rows.insert(0, ("load average at the end (1, 5, 15 min); CPUs", f"{load}; {os.cpu_count()}"))
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name.ljust(width)} | {value}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_rss(sys.argv[2], sys.argv[3])
    else:
        main()
