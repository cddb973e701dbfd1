"""Benchmark of the geo pipeline (not a test): memory, throughput, model overhead.

(a) peak RSS of ``predict_raster`` on generated 4k x 4k and 16k x 16k scenes with the same
    settings, each run in its own subprocess (the child reports ``ru_maxrss``);
(b) throughput in megapixels/s of the pipeline with a trivial model, against a plain
    rasterio windowed read of the same tiles and against torchgeo's ``RasterDataset`` +
    ``GridGeoSampler`` + ``DataLoader`` reading the same tiles;
(c) end-to-end time with the tiny ``sam2unext-test`` preset against the sum of its forward
    passes (overhead ratio; goal <= 1.1).

Scenes are tiled, DEFLATE-compressed RGB uint8 GeoTIFFs in a temporary folder on /tmp.

Usage:
    python bench/geo_pipeline.py [--sizes 4096 16384] [--tile 1024] [--skip-torchgeo]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window


def make_scene(path: Path, size: int, *, seed: int = 0) -> Path:
    """Write a ``size x size`` RGB uint8 GeoTIFF (512 blocks, DEFLATE) strip by strip."""
    rng = np.random.default_rng(seed)
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs="EPSG:32633",
                   transform=Affine.translation(500000, 4000000) @ Affine.scale(0.5, -0.5), tiled=True,
                   blockxsize=512, blockysize=512, compress="DEFLATE", interleave="pixel", bigtiff="IF_SAFER")
    xx = np.arange(size, dtype=np.float32)
    with rasterio.open(path, "w", **profile) as dst:
        for row0 in range(0, size, 512):
            yy = np.arange(row0, row0 + 512, dtype=np.float32)[:, None]
            base = 127 + 100 * np.sin(yy / 97.0) * np.cos(xx / 131.0)
            noise = rng.integers(-8, 9, (3, 512, size), dtype=np.int16)
            block = np.clip(np.stack([base, 255 - base, (base + 60) % 256]) + noise, 0, 255).astype(np.uint8)
            dst.write(block, window=Window(0, row0, size, 512))
    return path


class TrivialModel:
    """Model contract at zero cost: the red channel as probability."""

    def __init__(self, input_size: int):
        self.input_size = input_size
        self.low_res_size = None

    def predict(self, images, low_res=None):
        return images[:, :1]


class TimedModel:
    """Wraps a model and sums the wall time of its ``predict`` calls."""

    def __init__(self, model):
        self.model = model
        self.input_size = model.input_size
        self.low_res_size = model.low_res_size
        self.seconds = 0.0
        self.calls = 0

    def predict(self, images, low_res=None):
        t0 = time.perf_counter()
        out = self.model.predict(images, low_res)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return out


def child_rss(scene: str, out: str, tile: int, batch: int) -> None:
    """(subprocess) run the pipeline once with the trivial model and print JSON figures."""
    import torch  # noqa: F401 (a real run has torch loaded with its model; keep its import out of the timing)

    from sam2unext.geo import predict_raster

    t0 = time.perf_counter()
    res = predict_raster(scene, out, model=TrivialModel(tile), tile_size=tile, batch_size=batch, vector=False,
                         progress="none", overwrite=True)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "tiles": res.tiles_run,
                      "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_child(scene: Path, out: Path, tile: int, batch: int) -> dict:
    """Run :func:`child_rss` in a fresh interpreter and return its figures."""
    cmd = [sys.executable, __file__, "--child", str(scene), str(out), str(tile), str(batch)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["children_maxrss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return figures


def rasterio_read(scene: Path, tile: int, overlap: float) -> tuple[float, int]:
    """Seconds to read every tile window of our grid with plain rasterio (one thread)."""
    from sam2unext.geo.tiling import clip_window, make_grid

    with rasterio.open(scene) as src:
        grid = make_grid(src.height, src.width, tile, overlap)
        t0 = time.perf_counter()
        for w in grid.windows():
            src.read((1, 2, 3), window=clip_window(w, src.height, src.width))
        return time.perf_counter() - t0, len(grid)


def torchgeo_read(scene: Path, tile: int, overlap: float, batch: int, workers: int) -> tuple[float, int]:
    """Seconds for torchgeo RasterDataset + GridGeoSampler + DataLoader over the same tiles."""
    from torch.utils.data import DataLoader
    from torchgeo.datasets import RasterDataset, stack_samples
    from torchgeo.samplers import GridGeoSampler

    class Scene(RasterDataset):
        filename_glob = scene.name
        is_image = True

    ds = Scene(paths=str(scene.parent))
    stride = tile - int(round(tile * overlap))
    sampler = GridGeoSampler(ds, size=tile, stride=stride)
    loader = DataLoader(ds, sampler=sampler, batch_size=batch, num_workers=workers, collate_fn=stack_samples)
    t0 = time.perf_counter()
    n = 0
    for sample in loader:
        n += sample["image"].shape[0]
    return time.perf_counter() - t0, n


def pipeline_time(scene: Path, out: Path, model, tile: int, overlap: float, batch: int, vector: bool = False):
    """Seconds for ``predict_raster`` and its result."""
    from sam2unext.geo import predict_raster

    t0 = time.perf_counter()
    res = predict_raster(scene, out, model=model, tile_size=tile, overlap=overlap, batch_size=batch, vector=vector,
                         progress="none", overwrite=True)
    return time.perf_counter() - t0, res


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tiny-size", type=int, default=2048, help="scene side for (c)")
    parser.add_argument("--skip-torchgeo", action="store_true")
    parser.add_argument("--skip-tiny", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (b) measurement; the best is shown")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import torch  # noqa: F401 (loaded before any timing, as with a real model)
    import sam2unext.geo  # noqa: F401
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="geo-bench-", dir="/tmp") as tmp:
        tmpdir = Path(tmp)
        scenes = {}
        for size in args.sizes:
            t0 = time.perf_counter()
            (tmpdir / f"scene{size}").mkdir()
            scenes[size] = make_scene(tmpdir / f"scene{size}" / "scene.tif", size)
            print(f"generated {size}x{size} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)

        # (a) peak RSS per scene size, each in its own process
        rss = {}
        for size, scene in ({} if args.skip_rss else scenes).items():
            fig = run_child(scene, tmpdir / f"out{size}.tif", args.tile, args.batch)
            rss[size] = fig["maxrss_mb"]
            mp = size * size / 1e6
            rows.append((f"(a) peak RSS {size}x{size} ({fig['tiles']} tiles)", f"{fig['maxrss_mb']:.0f} MB"))
            rows.append((f"    pipeline {size}x{size}, trivial model, own process", f"{fig['seconds']:.1f} s = {mp / fig['seconds']:.1f} MP/s"))
        if len(rss) >= 2:
            lo, hi = min(rss), max(rss)
            rows.append((f"(a) RSS ratio {hi}/{lo}", f"{rss[hi] / rss[lo]:.2f}"))

        # (b) throughput on the smallest scene
        size = min(scenes)
        scene = scenes[size]
        mp = size * size / 1e6
        # interleaved repeats, best of each: the machine may be shared
        best: dict[str, float] = {}
        labels: dict[str, str] = {}
        for _ in range(args.repeat):
            secs, res = pipeline_time(scene, tmpdir / "b.tif", TrivialModel(args.tile), args.tile, args.overlap,
                                      args.batch)
            labels["ours"] = f"(b) ours: predict_raster {size}x{size}, trivial model ({res.tiles_run} tiles, COG written)"
            best["ours"] = min(best.get("ours", float("inf")), secs)
            secs, n = rasterio_read(scene, args.tile, args.overlap)
            labels["rio"] = f"(b) plain rasterio windowed read, 1 thread ({n} tiles)"
            best["rio"] = min(best.get("rio", float("inf")), secs)
            if not args.skip_torchgeo:
                for workers in (0, 2):
                    secs, n = torchgeo_read(scene, args.tile, args.overlap, args.batch, workers)
                    key = f"tg{workers}"
                    labels[key] = f"(b) torchgeo RasterDataset+GridGeoSampler+DataLoader, workers={workers} ({n} tiles)"
                    best[key] = min(best.get(key, float("inf")), secs)
        for key, secs in best.items():
            rows.append((labels[key] + f", best of {args.repeat}", f"{secs:.2f} s = {mp / secs:.1f} MP/s"))

        # (c) tiny preset: end-to-end vs sum of forward passes
        if not args.skip_tiny:
            import torch

            from sam2unext import load_model

            torch.manual_seed(0)
            model = TimedModel(load_model(preset="sam2unext-test", device="auto"))
            tiny_scene = make_scene(tmpdir / "tiny.tif", args.tiny_size, seed=1)
            model.predict(torch.rand(1, 3, model.input_size, model.input_size))  # warm-up
            model.seconds, model.calls = 0.0, 0
            secs, res = pipeline_time(tiny_scene, tmpdir / "c.tif", model, model.input_size, args.overlap, args.batch)
            rows.append((f"(c) sam2unext-test {args.tiny_size}^2, tile {model.input_size}: end-to-end ({res.tiles_run} tiles)",
                         f"{secs:.2f} s"))
            rows.append((f"(c) sum of forward passes ({model.calls} batches of <= {args.batch})", f"{model.seconds:.2f} s"))
            rows.append(("(c) overhead ratio end-to-end / forward", f"{secs / model.seconds:.3f}"))
            model.seconds, model.calls = 0.0, 0
            secs, res = pipeline_time(tiny_scene, tmpdir / "c2.tif", model, model.input_size, args.overlap, args.batch,
                                      vector=True)
            rows.append(("(c) same with polygons (gpkg)", f"{secs:.2f} s, ratio {secs / model.seconds:.3f}"))
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement'.ljust(width)} | value")
    print("-" * (width + 20))
    for name, value in rows:
        print(f"{name.ljust(width)} | {value}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_rss(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
