"""The two steps of an output chunk: its own tiles (:func:`compute_chunk`), then its frame (:func:`finish_chunk`).

**First step.** A chunk task reads the tiles the chunk owns (each tile of the scene has one
owner, :class:`~sam2unext.geo.running.chunks.OverlapLayout`), runs the model on them in fixed
batches cut from that list, and adds them as exact fixed-point sums
(:class:`~sam2unext.geo.writing.stitching.ChunkStitcher`). The chunk's **core**, which no other
chunk's tile reaches, is final: it is quantized and written into the store's output arrays.
The rest of what its tiles cover, the **strips** around the core and across the chunk's edge,
goes into the store as partial sums. Every tile is computed once, whatever the chunk size.

**Second step** (no model, no tile reads). Once every chunk whose tiles touch a chunk has done
its first step, the chunk's **frame** (the chunk minus its core) is the sum of their strips:
added (exactly, in any order), quantized and written. The output therefore does not depend
on the chunk size, on the workers, or on where a run was resumed.

Both steps return a small :class:`ChunkStatus`, never pixels, and end with a marker in the
store (``summed/``, ``done/``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from rasterio.windows import Window

from sam2unext.geo.model_contract import TileModel
from sam2unext.geo.reading.aoi import AreaOfInterest
from sam2unext.geo.reading.plan import ReadPlan
from sam2unext.geo.reading.windows import RegionValidity, TileReader
from sam2unext.geo.running.chunks import Chunk, ChunkGrid, OverlapLayout
from sam2unext.geo.running.device import feed_for, model_device
from sam2unext.geo.running.forward import blend_on_device, on_gpu, run_model
from sam2unext.geo.running.pools import Lanes
from sam2unext.geo.running.tiling import TileGrid, clip_window
from sam2unext.geo.writing.device_stitching import DeviceChunkStitcher
from sam2unext.geo.writing.pyramid import chunk_levels, write_chunk_pyramid
from sam2unext.geo.writing.quantize import finish_sums
from sam2unext.geo.writing.stitching import ChunkStitcher, SceneWeights
from sam2unext.geo.writing.store import RunStore, zarr_rows


@dataclass(frozen=True)
class ChunkJob:
    """Everything a chunk task needs except the model (picklable, small)."""

    plan: ReadPlan
    grid: TileGrid
    chunks: ChunkGrid
    index: int
    batch_size: int
    store: str
    out_dtype: str
    aoi: AreaOfInterest | None = None


@dataclass
class ChunkStatus:
    """What a step reports back: counts and times, never pixels.

    ``step`` is ``"sum"`` (the chunk's own tiles) or ``"finish"`` (its frame).
    ``tiles_run``/``tiles_skipped`` count the tiles the chunk owns; ``computed`` the forward
    passes it made (its tiles run: every tile is computed once, by its owner).
    """

    index: int
    step: str = "sum"
    computed: int = 0
    tiles_run: int = 0
    tiles_skipped: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0


def _rect(w: Window) -> tuple[int, int, int, int]:
    return int(w.row_off), int(w.col_off), int(w.height), int(w.width)


def _overlap(a: Window, b: Window) -> tuple[int, int, int, int] | None:
    """Row, column, height, width of ``a`` ∩ ``b`` (None when empty)."""
    ar, ac, ah, aw = _rect(a)
    br, bc, bh, bw = _rect(b)
    r0, r1 = max(ar, br), min(ar + ah, br + bh)
    c0, c1 = max(ac, bc), min(ac + aw, bc + bw)
    return (r0, c0, r1 - r0, c1 - c0) if r1 > r0 and c1 > c0 else None


class _OutputRows:
    """Collects finished output rows of one rectangle and writes them in whole Zarr chunk rows.

    ``take`` gets values (uint8 or float32) and the read validity (None: all valid); the area of
    interest is applied here, invalid pixels become 0 (uint8, with a 0 in ``valid``) or NaN.
    """

    def __init__(self, job: ChunkJob, store: RunStore, rect: Window):
        self.job, self.store = job, store
        self.row0, self.col0, height, self.width = _rect(rect)
        self.end = self.row0 + height
        self.step = zarr_rows(job.chunks.size, job.chunks.height)
        self.keeps_valid = job.plan.masked and job.out_dtype == "uint8"
        self._parts: list[tuple[np.ndarray, np.ndarray | None]] = []
        self._filled = 0

    def take(self, row0: int, values: np.ndarray, valid: np.ndarray | None) -> None:
        job, n = self.job, values.shape[0]
        if job.plan.masked:
            ok = np.ones(values.shape, bool) if valid is None else valid
            if job.aoi is not None:
                ok = ok & job.aoi.inside(job.plan.transform, Window(self.col0, row0, self.width, n))
            if not ok.all():
                values = values.copy()
                values[~ok] = 0 if values.dtype == np.uint8 else np.float32(np.nan)
            valid = np.where(ok, np.uint8(255), np.uint8(0)) if self.keeps_valid else None
        else:
            valid = None
        self._parts.append((values, valid))
        self._filled += n
        boundary = min(self.end, (self.row0 // self.step + 1) * self.step)
        if self.row0 + self._filled >= boundary:
            self.flush()

    def flush(self) -> None:
        if not self._parts:
            return
        values = np.concatenate([v for v, _ in self._parts])
        valid = np.concatenate([m for _, m in self._parts]) if self._parts[0][1] is not None else None
        self.store.write(self.row0, self.col0, values, valid)
        self.row0 += values.shape[0]
        self._parts, self._filled = [], 0


class _BandRouter:
    """Receives the finished bands of a chunk's own sums: the core to the output, the rest to strips.

    A strip is kept in memory until its last row arrives, then stored in one write.
    """

    def __init__(self, job: ChunkJob, store: RunStore, layout: OverlapLayout, validity: RegionValidity | None):
        self.job, self.store, self.validity = job, store, validity
        self.ext = layout.extended(job.index)
        self.core = layout.core(job.index)
        self.out = _OutputRows(job, store, self.core) if self.core is not None else None
        self._strips = {name: strip for name, strip in layout.strips(job.index)}
        self._sums: dict[str, np.ndarray] = {}
        self._valid: dict[str, np.ndarray] = {}

    def __call__(self, row0: int, sums: Any, stitcher: ChunkStitcher) -> None:
        assert self.ext is not None
        n, ext_col = sums.shape[0], int(self.ext.col_off)
        band = Window(self.ext.col_off, row0, self.ext.width, n)
        valid = None if self.validity is None else self.validity.rows(row0, n)
        for name, strip in list(self._strips.items()):
            part = _overlap(band, strip)
            if part is not None:
                self._keep(name, strip, part, row0, ext_col, stitcher.to_host, sums, valid)
        core = None if self.core is None else _overlap(band, self.core)
        if core is not None and self.out is not None:
            r, c, h, w = core
            block = (slice(r - row0, r - row0 + h), slice(c - ext_col, c - ext_col + w))
            self.out.take(r, stitcher.finish(sums[block]), None if valid is None else valid[block])
        if self.validity is not None:
            self.validity.forget_above(row0 + n)

    def _keep(
        self,
        name: str,
        strip: Window,
        part: tuple[int, int, int, int],
        row0: int,
        ext_col: int,
        to_host: Callable[[Any], np.ndarray],
        sums: Any,
        valid: np.ndarray | None,
    ) -> None:
        """Copy a band's part of a strip into its buffer; store the strip once its last row is in."""
        sr, sc, sh, sw = _rect(strip)
        if name not in self._sums:
            self._sums[name] = np.zeros((sh, sw), np.float64)
            if valid is not None:
                self._valid[name] = np.zeros((sh, sw), bool)
        r, c, h, w = part
        block = (slice(r - row0, r - row0 + h), slice(c - ext_col, c - ext_col + w))
        here = (slice(r - sr, r - sr + h), slice(c - sc, c - sc + w))
        self._sums[name][here] = to_host(sums[block])
        if valid is not None:
            self._valid[name][here] = valid[block]
        if r + h == sr + sh:  # the strip's last row: store it and free the buffer
            self.store.write_halo(self.job.index, name, self._sums.pop(name), self._valid.pop(name, None))
            del self._strips[name]

    def flush(self) -> None:
        if self._strips:
            raise RuntimeError(f"chunk {self.job.index}: strips {sorted(self._strips)} were not completed")
        if self.out is not None:
            self.out.flush()


def _stitcher(job: ChunkJob, model: TileModel, layout: OverlapLayout, router: _BandRouter) -> ChunkStitcher:
    """The chunk's blend: on the model's device when it is a GPU, else on the host."""
    ext = layout.extended(job.index)
    rows, cols = layout.owned(job.index)
    assert ext is not None
    window = Chunk(job.index, *_rect(ext))
    args = (job.grid, window, rows, cols, router, SceneWeights.cached(job.grid), job.out_dtype)
    if blend_on_device(model):
        return DeviceChunkStitcher(*args, device=model_device(model))
    return ChunkStitcher(*args)


def compute_chunk(
    job: ChunkJob,
    model: TileModel,
    lanes: Lanes | None = None,
    *,
    on_tiles: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
) -> ChunkStatus:
    """First step of a chunk: run its own tiles, write its core and its strips; return its status.

    Args:
        job: the chunk and everything about the scene.
        model: object with ``predict``, ``input_size`` and ``low_res_size``.
        lanes: batch workers of this process (default: inline).
        on_tiles: called with the number of tiles of each finished batch (progress).
        cancel: set to stop the task between batches (raises :class:`Cancelled`).
    """
    t0 = time.perf_counter()
    lanes = lanes or Lanes(1)
    grid, layout, store = job.grid, OverlapLayout.of(job.grid, job.chunks), RunStore(job.store)
    status = ChunkStatus(job.index)
    ext = layout.extended(job.index)
    if ext is None:  # a chunk smaller than the tile spacing may own no tile
        store.mark_summed(job.index, asdict(status))
        return status
    validity = RegionValidity(int(ext.col_off), int(ext.width)) if job.plan.masked else None
    reader = TileReader(job.plan, grid.tile_size, validity)
    router = _BandRouter(job, store, layout, validity)
    stitcher = _stitcher(job, model, layout, router)
    batches = [stitcher.tiles[i : i + job.batch_size] for i in range(0, len(stitcher.tiles), job.batch_size)]
    model_seconds = [0.0]
    gpu, on_device = on_gpu(model), blend_on_device(model)

    def wanted(r: int, c: int) -> bool:
        """False for a tile that does not touch the area of interest: never read, never run."""
        window = clip_window(grid.window_at(r, c), grid.height, grid.width)
        return job.aoi is None or job.aoi.touches(job.plan.transform, window)

    def work(batch: list[tuple[int, int]]) -> list[Any]:
        keep = [wanted(r, c) for r, c in batch]
        read = iter(reader.read_many([grid.window_at(r, c) for (r, c), k in zip(batch, keep) if k]))
        reads = [next(read) if k else None for k in keep]
        run = [t for t in reads if t is not None]
        if not run:
            return [None] * len(batch)
        t = time.perf_counter()
        # on a GPU the lanes take turns for the forward pass only; uploads and downloads overlap it
        lock = lanes.device_lock if gpu else None
        if on_device:  # the probabilities stay on the device for the blend
            probs = iter(feed_for(model_device(model)).run_on_device(model, run, grid.tile_size, lock))
        else:
            probs = iter(run_model(model, run, grid.tile_size, lock))
        model_seconds[0] += time.perf_counter() - t
        return [next(probs) if tile is not None else None for tile in reads]

    try:
        for batch, result in zip(batches, lanes.ordered(work, batches, cancel)):
            for prob in result:
                stitcher.add(prob)
                status.tiles_run += prob is not None
                status.tiles_skipped += prob is None
            if on_tiles is not None:
                on_tiles(len(batch))
        if not stitcher.complete:
            raise RuntimeError(f"chunk {job.index} ended after {stitcher.rows_emitted} of {ext.height} rows")
        router.flush()
    finally:
        reader.close()
    status.computed = status.tiles_run
    status.seconds, status.model_seconds = time.perf_counter() - t0, model_seconds[0]
    store.mark_summed(job.index, asdict(status))
    return status


def finish_chunk(job: ChunkJob) -> ChunkStatus:
    """Second step of a chunk: add its contributors' strips over its frame, quantize, write, mark done.

    Runs once every chunk in ``OverlapLayout.contributors(job.index)`` has done its first step.
    Reads only partial sums from the store, each strip once.
    """
    t0 = time.perf_counter()
    layout, store = OverlapLayout.of(job.grid, job.chunks), RunStore(job.store)
    sources = [(c, name, strip) for c in layout.contributors(job.index) for name, strip in layout.strips(c)]
    frame = layout.frame(job.index)
    read: dict[tuple[int, str], tuple[np.ndarray, np.ndarray | None]] = {}
    for rect_index, (_, rect) in enumerate(frame):
        row0, col0, height, width = _rect(rect)
        sums = np.zeros((height, width), np.int64)
        valid = np.zeros((height, width), bool) if job.plan.masked else None
        for c, name, strip in sources:
            part = _overlap(rect, strip)
            if part is None:
                continue
            if (c, name) not in read:
                read[c, name] = store.read_halo(c, name, (int(strip.height), int(strip.width)), job.plan.masked)
            s, v = read[c, name]
            if not any(_overlap(later, strip) for _, later in frame[rect_index + 1 :]):
                del read[c, name]  # no later rectangle needs it
            r, col, h, w = part
            sr, sc = r - int(strip.row_off), col - int(strip.col_off)
            src = (slice(sr, sr + h), slice(sc, sc + w))
            block = (slice(r - row0, r - row0 + h), slice(col - col0, col - col0 + w))
            sums[block] += s[src]
            if valid is not None and v is not None:
                valid[block] |= v[src]
        out, r = _OutputRows(job, store, rect), 0
        while r < height:  # in whole Zarr chunk rows: temporaries stay small
            n = min(out.step - (row0 + r) % out.step, height - r)
            out.take(row0 + r, finish_sums(sums[r : r + n], job.out_dtype), None if valid is None else valid[r : r + n])
            r += n
        out.flush()
    chunk = job.chunks.chunk(job.index)
    levels = chunk_levels(job.chunks.size, job.chunks.height, job.chunks.width)
    write_chunk_pyramid(store, chunk.row_off, chunk.col_off, chunk.height, chunk.width, levels)
    status = ChunkStatus(job.index, step="finish", seconds=time.perf_counter() - t0)
    store.mark_done(job.index, asdict(status))
    return status
