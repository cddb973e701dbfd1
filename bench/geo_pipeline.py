"""Benchmark of the geo pipeline (not a test): memory, throughput, model overhead.

(a) peak RSS of ``predict_raster`` on generated 4k x 4k and 16k x 16k scenes with the same
    settings, each run in its own subprocess (the child reports ``ru_maxrss``);
(b) throughput in megapixels/s of the pipeline with a trivial model, against a plain
    rasterio windowed read of the same tiles and against torchgeo's ``RasterDataset`` +
    ``GridGeoSampler`` + ``DataLoader`` reading the same tiles. What each side includes:
    ours = the whole ``predict_raster`` call (open and plan, read, uint8 -> float, model,
    blend, write the stitched rows, then the COG build with overviews), also shown up to the
    stitched rows (before the COG build); rasterio = reads of the tile windows only (uint8,
    one thread, one handle); torchgeo = its sampler + loader yielding collated float32 batches
    only (no model, no stitching, no output). Interleaved repeats, best and median;
(c) end-to-end time with the tiny ``sam2unext-test`` preset against the same number of forward
    passes run alone through the same lanes (overhead ratio; goal <= 1.1).

Scenes are tiled, DEFLATE-compressed RGB uint8 GeoTIFFs in a temporary folder on /tmp.

Usage:
    python bench/geo_pipeline.py [--sizes 4096 16384] [--tile 1024] [--skip-torchgeo]
"""

from __future__ import annotations

import argparse
import json
import os
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


def scene_profile(height: int, width: int) -> dict:
    """Rasterio profile of the benchmark scenes: tiled RGB uint8, 512 blocks, DEFLATE, EPSG:32633."""
    return dict(
        driver="GTiff",
        width=width,
        height=height,
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=Affine.translation(500000, 4000000) @ Affine.scale(0.5, -0.5),
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="DEFLATE",
        interleave="pixel",
        bigtiff="IF_SAFER",
    )


def make_scene(path: Path, size: int, *, seed: int = 0, width: int | None = None) -> Path:
    """Write a ``size x (width or size)`` RGB uint8 GeoTIFF (512 blocks, DEFLATE) strip by strip."""
    rng = np.random.default_rng(seed)
    height, width = size, width or size
    profile = scene_profile(height, width)
    xx = np.arange(width, dtype=np.float32)
    with rasterio.open(path, "w", **profile) as dst:
        for row0 in range(0, height, 512):
            rows = min(512, height - row0)
            yy = np.arange(row0, row0 + rows, dtype=np.float32)[:, None]
            base = 127 + 100 * np.sin(yy / 97.0) * np.cos(xx / 131.0)
            noise = rng.integers(-8, 9, (3, rows, width), dtype=np.int16)
            block = np.clip(np.stack([base, 255 - base, (base + 60) % 256]) + noise, 0, 255).astype(np.uint8)
            dst.write(block, window=Window(0, row0, width, rows))
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


def model_only_time(model, tiles: int, tile: int, batch: int) -> float:
    """Seconds to run ``tiles`` random tiles through ``model`` in batches, with the pipeline's lanes
    (one single-thread forward pass per CPU core, side by side) and nothing else."""
    from sam2unext.geo.running.forward import run_model, single_thread_forward
    from sam2unext.geo.running.pools import Lanes, local_lanes

    rng = np.random.default_rng(0)
    batches = [
        list(rng.integers(0, 256, (min(batch, tiles - i), 3, tile, tile), dtype=np.uint8))
        for i in range(0, tiles, batch)
    ]
    lanes = Lanes(local_lanes(model))
    try:
        with single_thread_forward():
            t0 = time.perf_counter()
            for _ in lanes.ordered(lambda b: run_model(model, b, tile), batches):
                pass
            return time.perf_counter() - t0
    finally:
        lanes.close()


def child_rss(scene: str, out: str, tile: int, batch: int) -> None:
    """(subprocess) run the pipeline once with the trivial model and print JSON figures."""
    import torch  # noqa: F401 (a real run has torch loaded with its model; keep its import out of the timing)

    from sam2unext.geo import predict_raster

    t0 = time.perf_counter()
    res = predict_raster(
        scene,
        out,
        model=TrivialModel(tile),
        tile_size=tile,
        batch_size=batch,
        vector=False,
        progress="none",
        overwrite=True,
    )
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "seconds": seconds,
                "tiles": res.tiles_run,
                "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def run_child(scene: Path, out: Path, tile: int, batch: int) -> dict:
    """Run :func:`child_rss` in a fresh interpreter and return its figures."""
    cmd = [sys.executable, __file__, "--child", str(scene), str(out), str(tile), str(batch)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["children_maxrss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return figures


def rasterio_read(scene: Path, tile: int, overlap: float) -> tuple[float, int]:
    """Seconds to read every tile window of our grid with plain rasterio (one thread)."""
    from sam2unext.geo.running.tiling import clip_window, make_grid

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


def stage_timer():
    """A progress sink that records when the final COG build (stage ``write``) starts."""
    from sam2unext.geo.progress import Progress

    class StageTimer(Progress):
        def __init__(self):
            self.write_started: float | None = None

        def update(self, stage: str, done: int, total: int) -> None:
            if stage == "write" and done == 0 and self.write_started is None:
                self.write_started = time.perf_counter()

    return StageTimer()


def pipeline_time(scene: Path, out: Path, model, tile: int, overlap: float, batch: int, vector: bool = False):
    """Seconds for ``predict_raster``, its result, and the seconds before the COG build started."""
    from sam2unext.geo import predict_raster

    timer = stage_timer()
    t0 = time.perf_counter()
    res = predict_raster(
        scene,
        out,
        model=model,
        tile_size=tile,
        overlap=overlap,
        batch_size=batch,
        vector=vector,
        progress=timer,
        overwrite=True,
    )
    total = time.perf_counter() - t0
    return total, res, (timer.write_started - t0) if timer.write_started else total


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
            rows.append(
                (
                    f"    pipeline {size}x{size}, trivial model, own process",
                    f"{fig['seconds']:.1f} s = {mp / fig['seconds']:.1f} MP/s",
                )
            )
        if len(rss) >= 2:
            lo, hi = min(rss), max(rss)
            rows.append((f"(a) RSS ratio {hi}/{lo}", f"{rss[hi] / rss[lo]:.2f}"))

        # (b) throughput on the smallest scene
        size = min(scenes)
        scene = scenes[size]
        mp = size * size / 1e6
        # interleaved repeats (the machine may be shared): best and median of each
        times: dict[str, list[float]] = {}
        labels: dict[str, str] = {}
        for _ in range(args.repeat):
            secs, res, before_cog = pipeline_time(
                scene, tmpdir / "b.tif", TrivialModel(args.tile), args.tile, args.overlap, args.batch
            )
            labels["ours"] = (
                f"(b) ours, full predict_raster: open+read+to-float+model+blend+write strips"
                f"+COG build ({res.tiles_run} tiles)"
            )
            labels["ours-stitch"] = "(b) ours, same run up to the stitched strips (before the COG build)"
            times.setdefault("ours", []).append(secs)
            times.setdefault("ours-stitch", []).append(before_cog)
            secs, n = rasterio_read(scene, args.tile, args.overlap)
            labels["rio"] = f"(b) plain rasterio windowed read only, uint8, 1 thread ({n} tiles)"
            times.setdefault("rio", []).append(secs)
            if not args.skip_torchgeo:
                for workers in (0, 2):
                    secs, n = torchgeo_read(scene, args.tile, args.overlap, args.batch, workers)
                    key = f"tg{workers}"
                    labels[key] = (
                        f"(b) torchgeo RasterDataset+GridGeoSampler+DataLoader read only "
                        f"(float32 batches), workers={workers} ({n} tiles)"
                    )
                    times.setdefault(key, []).append(secs)
        for key, secs in times.items():
            best, med = min(secs), float(np.median(secs))
            rows.append(
                (
                    labels[key] + f", best / median of {args.repeat}",
                    f"{best:.2f} s = {mp / best:.1f} MP/s / {mp / med:.1f} MP/s",
                )
            )
        if "tg0" in times:
            rows.append(
                (
                    "(b) ours full / torchgeo workers=0 read, throughput ratio (best; median)",
                    f"{min(times['tg0']) / min(times['ours']):.2f}; "
                    f"{np.median(times['tg0']) / np.median(times['ours']):.2f}",
                )
            )

        # (c) tiny preset: end-to-end vs sum of forward passes
        if not args.skip_tiny:
            import torch

            from sam2unext import load_model

            torch.manual_seed(0)
            model = TimedModel(load_model(preset="sam2unext-test", device="auto"))
            tiny_scene = make_scene(tmpdir / "tiny.tif", args.tiny_size, seed=1)
            model.predict(torch.rand(1, 3, model.input_size, model.input_size))  # warm-up
            model.seconds, model.calls = 0.0, 0
            secs, res, _ = pipeline_time(
                tiny_scene, tmpdir / "c.tif", model, model.input_size, args.overlap, args.batch
            )
            rows.append(
                (
                    f"(c) sam2unext-test {args.tiny_size}^2, tile {model.input_size}: end-to-end "
                    f"({res.tiles_computed} forward tiles, {res.tiles_run} scene tiles)",
                    f"{secs:.2f} s",
                )
            )
            only = model_only_time(model.model, res.tiles_computed, model.input_size, args.batch)
            rows.append(
                (
                    "(c) model alone: the same number of tiles through the same lanes (random tiles, "
                    "no I/O, no blending)",
                    f"{only:.2f} s",
                )
            )
            rows.append(("(c) overhead ratio end-to-end / model alone (goal <= 1.1)", f"{secs / only:.3f}"))
            rows.append(
                (
                    f"(c) sum of forward-pass times ({model.calls} batches, lanes run side by side)",
                    f"{model.seconds:.2f} s",
                )
            )
            secs, res, _ = pipeline_time(
                tiny_scene, tmpdir / "c2.tif", model, model.input_size, args.overlap, args.batch, vector=True
            )
            rows.append(("(c) same with polygons (gpkg)", f"{secs:.2f} s, ratio {secs / only:.3f}"))
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    rows.insert(0, ("load average at the end (1, 5, 15 min); CPUs", f"{load}; {os.cpu_count()}"))
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
