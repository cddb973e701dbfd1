"""Benchmark (not a test): a dask-backed DataArray through ``predict_raster``, window by window
against the whole-scene temporary GeoTIFF it was written to before.

The scene is the bench's generated tiled DEFLATE RGB uint8 GeoTIFF (``geo_pipeline.make_scene``),
opened with ``rioxarray.open_rasterio(path, chunks=...)``; the model is the bench's
``TrivialModel`` (the red channel as probability, tiles of 1024 px), no polygons. Each run is a
fresh subprocess with its own temporary folder (``TMPDIR``), whose total size is polled every
10 ms: the peak is the temporary disk the run used (the outputs go to another folder); torch
is imported before the clock starts. The
"geotiff" mode is the old path (``reads_by_window`` forced off: the DataArray is written whole
to ``input.tif`` in the run's temporary folder first). Runs alternate; each prints one JSON line.

Usage:
    python bench/dataarray_source.py [--size 4096] [--chunks 1024] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def folder_bytes(folder: Path) -> int:
    """Total size of the files under ``folder`` (files vanishing while walked count as 0)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def child(scene: str, mode: str, chunks: int, out: str) -> None:
    """One run in this process: wall time of ``predict_raster``, peak bytes under ``TMPDIR``, peak RSS."""
    import rioxarray

    sys.path.insert(0, str(Path(__file__).parent))
    from geo_pipeline import TrivialModel

    import sam2unext.geo.xarray_io as xio
    from sam2unext import precision_facts  # noqa: F401 (imports torch and timm before the clock starts)
    from sam2unext.geo import predict_raster

    if mode == "geotiff":
        xio.reads_by_window = lambda da: False
    tmp = Path(tempfile.gettempdir())
    peak = [0]
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], folder_bytes(tmp))
            time.sleep(0.01)

    watcher = threading.Thread(target=poll, daemon=True)
    da = rioxarray.open_rasterio(scene, chunks={"x": chunks, "y": chunks})
    watcher.start()
    t0 = time.perf_counter()
    res = predict_raster(da, Path(out), model=TrivialModel(1024), vector=False, progress="none", overwrite=True)
    seconds = time.perf_counter() - t0
    stop.set()
    watcher.join()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "mode": mode,
                "seconds": round(seconds, 2),
                "peak_tmp_bytes": peak[0],
                "peak_rss_bytes": rss,
                "tiles": res.tiles_run,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--chunks", type=int, default=1024, help="dask chunk side of the DataArray")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", nargs=4, metavar=("SCENE", "MODE", "CHUNKS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        scene, mode, chunks, out = args.child
        child(scene, mode, int(chunks), out)
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from geo_pipeline import make_scene

    with tempfile.TemporaryDirectory(prefix="bench-dataarray-") as work:
        root = Path(work)
        scene = make_scene(root / "scene.tif", args.size)
        for rep in range(args.repeat):
            for mode in ("geotiff", "windows"):
                tmp = root / f"tmp-{mode}-{rep}"
                tmp.mkdir()
                env = {**os.environ, "TMPDIR": str(tmp)}
                out = root / f"out-{mode}-{rep}.tif"
                cmd = [sys.executable, __file__, "--child", str(scene), mode, str(args.chunks), str(out)]
                print(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
