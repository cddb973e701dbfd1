"""Where the CPU time of ``predict_raster`` goes, with a trivial model (not a test).

Each stage is timed in *thread CPU seconds* (``time.thread_time``), summed over all threads,
so the split stays meaningful on a loaded machine; the wall time and MP/s of the whole call
are printed too. Stages (inclusive; nested stages are listed under their parent):

- ``read``: ``TileReader.read_many`` (GDAL decode, band pick, stretch, pad), of which
  ``read.region`` is the reading of each batch row's region with its validity;
- ``to_float``: uint8 → float32 batch;
- ``blend.add``: ``ChunkStitcher.add`` (``w * p`` into the float64 accumulator) including
  ``blend.finish`` (normalize finished rows) which includes ``emit`` (quantize, the output
  mask ``emit.mask`` taken from what the reads recorded, ``store.write`` to Zarr);
- ``cog``: the COG build from the store (``_SceneRun.write_cog``).

Usage:
    python bench/cpu_profile.py [--size 8192] [--tile 1024] [--masked] [--repeat 2]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from geo_pipeline import TrivialModel, make_scene  # noqa: E402

TIMES: dict[str, float] = defaultdict(float)
_LOCK = threading.Lock()


def timed(name: str, fn):
    """``fn`` wrapped to add its thread CPU time to ``TIMES[name]``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            with _LOCK:
                TIMES[name] += time.thread_time() - t0

    return wrapper


def instrument() -> None:
    """Wrap the pipeline's stage functions (module attributes, looked up at call time)."""
    from sam2unext.geo.reading import windows as reading
    from sam2unext.geo.running import chunk_task, forward, scene, schedule
    from sam2unext.geo.writing import stitching, store

    reading.TileReader.read_many = timed("read", reading.TileReader.read_many)
    reading.TileReader._read_region = timed("read.region", reading.TileReader._read_region)
    reading.RegionValidity.rows = timed("emit.mask", reading.RegionValidity.rows)
    forward._unit_float_scratch = timed("to_float", forward._unit_float_scratch)
    stitching.ChunkStitcher.add = timed("blend.add", stitching.ChunkStitcher.add)
    stitching.ChunkStitcher._finish_tile_row = timed("blend.finish", stitching.ChunkStitcher._finish_tile_row)
    chunk_task._BandRouter.__call__ = timed("emit", chunk_task._BandRouter.__call__)
    schedule.finish_chunk = timed("finish", chunk_task.finish_chunk)
    store.RunStore.write = timed("store.write", store.RunStore.write)
    scene.SceneRun.write_cog = timed("cog", scene.SceneRun.write_cog)


def make_masked_scene(path: Path, size: int) -> Path:
    """``make_scene`` with nodata=0 set, so the mask reads run."""
    import rasterio

    make_scene(path, size)
    with rasterio.open(path, "r+") as ds:
        ds.nodata = 0
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--masked", action="store_true", help="scene with nodata (mask reads on)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-instrument", action="store_true", help="time only the whole call")
    args = parser.parse_args(argv)
    import torch  # noqa: F401

    from sam2unext.geo import predict_raster

    if not args.no_instrument:
        instrument()
    with tempfile.TemporaryDirectory(prefix="cpu-profile-", dir="/tmp") as tmp:
        scene = Path(tmp) / "scene.tif"
        (make_masked_scene if args.masked else make_scene)(scene, args.size)
        print(
            f"scene {args.size}^2 tile {args.tile} batch {args.batch} masked={args.masked} "
            f"cores={os.cpu_count()} load={os.getloadavg()[0]:.1f}"
        )
        for k in range(args.repeat):
            TIMES.clear()
            cpu0, t0 = time.process_time(), time.perf_counter()
            res = predict_raster(
                scene,
                Path(tmp) / "out.tif",
                model=TrivialModel(args.tile),
                tile_size=args.tile,
                batch_size=args.batch,
                vector=False,
                progress="none",
                overwrite=True,
            )
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            mp = args.size * args.size / 1e6
            print(
                f"run {k}: wall {wall:.2f} s = {mp / wall:.1f} MP/s, process CPU {cpu:.2f} s "
                f"({mp / cpu:.1f} MP per CPU-s), tiles {res.tiles_run}, load {os.getloadavg()[0]:.1f}"
            )
            for name in sorted(TIMES):
                print(f"  {name:13s} {TIMES[name]:7.2f} CPU-s  {100 * TIMES[name] / cpu:5.1f} %")


if __name__ == "__main__":
    main()
