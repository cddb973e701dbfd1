"""Chunk tasks and the bounded scheduling loop shared by local threads and ``dask.distributed``.

A chunk task (:func:`compute_chunk`) reads every tile that touches one output chunk, runs the
model on them in fixed batches, blends them (:class:`~sam2unext.geo.writing.stitching.ChunkStitcher`),
quantizes, writes the chunk into the run store and returns a small status record. Nothing
about the result depends on where or alongside what the task runs:

* the batches are cut from the chunk's own tile list;
* on a CPU every forward pass runs on one intra-op thread (torch's reductions otherwise differ
  in the last bits with the thread count, which moved 35 pixels by 1/255 between local and
  cluster runs); parallelism comes from running batches and chunks side by side instead.

:func:`run_chunks` submits chunk tasks to any ``concurrent.futures`` executor (a thread pool
here, ``distributed.Client.get_executor()`` on a cluster) through a sliding window, so the
work in flight, the memory and the time to the first tile do not depend on the scene size.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass

import numpy as np
import torch
from rasterio.windows import Window

from sam2unext.geo.model_contract import TileModel
from sam2unext.geo.reading.aoi import AreaOfInterest
from sam2unext.geo.reading.plan import ReadPlan
from sam2unext.geo.reading.windows import RegionValidity, TileReader
from sam2unext.geo.running.chunks import ChunkGrid, owns_tile, tiles_touching
from sam2unext.geo.running.device import DeviceLock, feed_for, model_device
from sam2unext.geo.running.tiling import TileGrid, clip_window
from sam2unext.geo.writing.cog import quantize_probability
from sam2unext.geo.writing.device_stitching import DeviceChunkStitcher
from sam2unext.geo.writing.stitching import FLUSH_ROWS, ChunkStitcher, SceneWeights
from sam2unext.geo.writing.store import ZARR_ROWS, RunStore
from sam2unext.transforms import to_unit_float


class Cancelled(Exception):
    """Raised inside a chunk task when the run was cancelled."""


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
    """What a chunk task reports back: counts and times, never pixels.

    ``tiles_run``/``tiles_skipped`` count the tiles this chunk owns (each tile of the scene is
    owned by one chunk), ``computed`` every forward pass the chunk made.
    """

    index: int
    computed: int = 0
    tiles_run: int = 0
    tiles_skipped: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0


def run_model(model: TileModel, tiles: Sequence[np.ndarray], tile_size: int, lock: DeviceLock = None) -> np.ndarray:
    """One forward pass over uint8 ``[C, T, T]`` tiles → float32 ``[B, T, T]`` probabilities.

    The low-res view for the DINOv2 branch is made with
    :func:`sam2unext.transforms.low_res_view` when the tile has the model's input size (the
    exact pair the model would make); otherwise the model derives it from its resized input.
    A model on CUDA goes through :class:`~sam2unext.geo.running.device.DeviceFeed` (pinned uint8
    upload, float conversion on the device, stream-overlapped download); ``lock`` is then held
    only around the forward pass. On a CPU ``lock`` is not used.
    """
    from sam2unext.transforms import low_res_view

    if _on_gpu(model):
        return feed_for(model_device(model)).run(model, tiles, tile_size, lock)

    hi = _unit_float_scratch(tiles)
    low_size = getattr(model, "low_res_size", None)
    low = low_res_view(hi, low_size) if low_size and getattr(model, "input_size", None) == tile_size else None
    prob = model.predict(hi, low)
    if hasattr(prob, "detach"):
        prob = prob.detach().cpu()
        if (
            prob.dtype == torch.float32
            and prob.shape[1] == 1
            and prob.is_contiguous()
            and prob.untyped_storage().nbytes() == prob.numel() * 4
            and prob.untyped_storage().data_ptr() != hi.untyped_storage().data_ptr()
        ):
            return prob.numpy()[:, 0]  # the tensor owns exactly this buffer (not the reused input): no copy
        prob = prob.numpy()
    # a copy: the result must not keep the model's input batch (or any larger buffer) alive
    return np.array(prob[:, 0], dtype=np.float32, copy=True)


_SCRATCH = threading.local()


def _unit_float_scratch(tiles: Sequence[np.ndarray]) -> torch.Tensor:
    """:func:`~sam2unext.transforms.to_unit_float` into this thread's reused batch buffer (no fresh 48 MB per batch).

    Safe because :func:`run_model` never returns a view of its input: the probabilities are
    copied out unless the model's result owns exactly its own buffer and that is not the input.
    """
    shape = (len(tiles), *np.shape(tiles[0])) if len(tiles) else None
    buf = getattr(_SCRATCH, "buffer", None)
    if shape is not None and (buf is None or buf.shape != shape):
        buf = _SCRATCH.buffer = np.empty(shape, dtype=np.float32)
    return to_unit_float(tiles, out=buf)


def measure_seconds_per_tile(
    model: TileModel, tile_size: int, batch_size: int, *, batches: int = 1, lanes: int = 1
) -> float:
    """Seconds per tile of the pipeline's forward passes, measured on random tiles after a warm-up.

    On a CPU each forward pass runs on one thread and ``lanes`` of them run side by side, so the
    time of one is divided by ``lanes``; on a GPU forward passes take turns.
    """
    rng = np.random.default_rng(0)
    tiles = list(
        rng.integers(0, 256, (batch_size, getattr(model, "in_chans", 3), tile_size, tile_size), dtype=np.uint8)
    )
    with single_thread_forward():
        run_model(model, tiles, tile_size)
        start = time.perf_counter()
        for _ in range(batches):
            run_model(model, tiles, tile_size)
        seconds = (time.perf_counter() - start) / (batches * batch_size)
    _SCRATCH.buffer = None  # this thread does not run the chunks: keep no batch buffer alive
    return seconds if _on_gpu(model) else seconds / max(1, lanes)


def _on_gpu(model: TileModel) -> bool:
    return model_device(model).type == "cuda"


def blend_on_device(model: TileModel) -> bool:
    """True when the chunk's blend runs on the model's device (a GPU): only finished rows come back."""
    return _on_gpu(model)


class Lanes:
    """The batch workers of one process.

    Each lane reads one batch and runs its forward pass. On a CPU forward passes of several
    lanes run side by side, each on one thread; on a GPU they take turns (a device lock) while
    the other lanes read. At most ``count`` batches are in flight in the process, whatever
    the number of chunk tasks sharing the lanes (bounded memory). ``lanes=1`` runs everything
    inline in the calling thread.
    """

    def __init__(self, lanes: int = 1):
        self.count = max(1, int(lanes))
        self._pool = ThreadPoolExecutor(self.count, thread_name_prefix="sam2unext-lane") if self.count > 1 else None
        self._slots = threading.Semaphore(self.count)
        self.device_lock = threading.Lock()

    def ordered(self, fn: Callable, items: Sequence, cancel: threading.Event | None = None) -> Iterator:
        """``fn(item)`` for each item, results in order (the process-wide in-flight bound applies)."""
        if self._pool is None:
            for item in items:
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                yield fn(item)
            return
        pending: list[Future] = []

        def take() -> object:
            try:
                return pending.pop(0).result()
            finally:
                self._slots.release()

        try:
            for item in items:
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                # wait for a slot, but never while holding finished results of our own (no deadlock
                # between chunk tasks that each hold slots): our oldest batch is handed back the
                # moment it is done (its slot with it); a slot another chunk task frees is
                # noticed within 50 ms
                while True:
                    if not pending:
                        self._slots.acquire()
                        break
                    if self._slots.acquire(blocking=False):
                        break
                    wait(pending[:1], timeout=0.05)
                    if pending[0].done():
                        yield take()
                pending.append(self._pool.submit(fn, item))
            while pending:
                yield take()
        finally:
            for f in pending:
                f.cancel()
            while pending:
                with contextlib.suppress(BaseException):
                    take()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


#: glibc's ``M_MMAP_THRESHOLD`` parameter of ``mallopt``, and the value set while running.
_M_MMAP_THRESHOLD, _MMAP_BYTES = -3, 128 * 1024
#: glibc's ``M_ARENA_MAX``: at most two malloc arenas for the lane and chunk threads.
_M_ARENA_MAX = -8


@functools.lru_cache(maxsize=1)
def bound_heap_retention() -> bool:
    """Serve allocations of 128 KiB and more with mmap and use at most two malloc arenas.

    glibc raises its mmap threshold after large buffers are freed and then keeps later ones in
    per-thread heaps, where freed memory is not returned: a long run's resident memory then
    grows with the number of chunks (measured with a trivial model: 1184 MB against 992 MB on a
    16384² vs a 4096² scene). Fixing the threshold (what ``MALLOC_MMAP_THRESHOLD_`` does) and the
    arena count keeps it flat (1043 vs 966 MB). Called once per process that runs chunk tasks;
    a no-op without glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_BYTES) and libc.mallopt(_M_ARENA_MAX, 2))
    except (OSError, AttributeError):
        return False


_THREADS_LOCK = threading.Lock()
_THREADS_USERS = [0, 0]  # [active blocks, torch threads before the first one]


@contextlib.contextmanager
def single_thread_forward():
    """Torch intra-op threads set to 1 while any such block runs in this process (then restored)."""
    import torch

    with _THREADS_LOCK:
        if _THREADS_USERS[0] == 0:
            _THREADS_USERS[1] = torch.get_num_threads()
            torch.set_num_threads(1)
        _THREADS_USERS[0] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_USERS[0] -= 1
            if _THREADS_USERS[0] == 0:
                torch.set_num_threads(_THREADS_USERS[1])


class _RowBuffer:
    """Collects a chunk's finished rows and writes them to the store in whole Zarr chunks."""

    def __init__(self, job: ChunkJob, store: RunStore, validity: RegionValidity | None):
        chunk = job.chunks.chunk(job.index)
        self.job, self.store, self.validity, self.chunk = job, store, validity, chunk
        rows = min(ZARR_ROWS, job.chunks.size, chunk.height)
        self.values = np.empty((rows, chunk.width), dtype=job.out_dtype)
        self.valid = np.empty((rows, chunk.width), dtype=np.uint8) if job.plan.masked else None
        self._scaled = np.empty((min(rows, FLUSH_ROWS), chunk.width), dtype=np.float32)  # quantize scratch
        self.row0 = chunk.row_off  # scene row of the buffer's first row
        self.filled = 0

    def emit(self, row0: int, prob: np.ndarray) -> None:
        """Take finished rows: float32 probabilities, or uint8 values already quantized (on a device)."""
        n = prob.shape[0]
        ch = self.chunk
        valid = None
        if self.validity is not None:  # the mask the tile reads found (not read again)
            valid = self.validity.rows(row0, n)
            self.validity.forget_above(row0 + n)
            if self.job.aoi is not None:
                valid &= self.job.aoi.inside(self.job.plan.transform, Window(ch.col_off, row0, ch.width, n))
            if valid.all():
                valid = None
        done = 0
        while done < n:
            take = min(n - done, self.values.shape[0] - self.filled)
            part = prob[done : done + take]
            ok = None if valid is None else valid[done : done + take]
            dst = slice(self.filled, self.filled + take)
            if part.dtype == np.uint8:  # quantized on the device (uint8 output)
                q = self.values[dst]
                q[...] = part
                if ok is not None:
                    q[~ok] = 0
            elif self.job.out_dtype == "uint8":
                q = self.values[dst]
                if take <= self._scaled.shape[0]:
                    quantize_probability(part, out=q, scratch=self._scaled[:take])
                else:
                    q[...] = quantize_probability(part)
                if ok is not None:
                    q[~ok] = 0
            else:
                self.values[dst] = part if ok is None else np.where(ok, part, np.float32(np.nan))
            if self.valid is not None:
                self.valid[dst] = 255 if ok is None else np.where(ok, 255, 0)
            self.filled += take
            done += take
            end = ch.row_off + ch.height
            if self.filled == self.values.shape[0] or self.row0 + self.filled == end:
                self.flush()

    def flush(self) -> None:
        if not self.filled:
            return
        n = self.filled
        self.store.write(self.row0, self.chunk.col_off, self.values[:n], None if self.valid is None else self.valid[:n])
        self.row0 += n
        self.filled = 0


def compute_chunk(
    job: ChunkJob,
    model: TileModel,
    lanes: Lanes | None = None,
    *,
    on_tiles: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
) -> ChunkStatus:
    """Compute, blend and store one output chunk; return its status.

    Args:
        job: the chunk and everything about the scene.
        model: object with ``predict``, ``input_size`` and ``low_res_size``.
        lanes: batch workers of this process (default: inline).
        on_tiles: called with the number of tiles of each finished batch (progress).
        cancel: set to stop the task between batches (raises :class:`Cancelled`).
    """
    t0 = time.perf_counter()
    lanes = lanes or Lanes(1)
    grid, chunk = job.grid, job.chunks.chunk(job.index)
    store = RunStore(job.store)
    status = ChunkStatus(job.index)
    rows, cols = tiles_touching(grid, chunk)
    validity = RegionValidity(chunk.col_off, chunk.width) if job.plan.masked else None
    reader = TileReader(job.plan, grid.tile_size, validity)
    buffer = _RowBuffer(job, store, validity)
    gpu = _on_gpu(model)
    on_device = blend_on_device(model)
    places = (grid, chunk, rows, cols, buffer.emit, SceneWeights.cached(grid))
    stitcher: ChunkStitcher = (
        DeviceChunkStitcher(*places, device=model_device(model), quantize=job.out_dtype == "uint8")
        if on_device
        else ChunkStitcher(*places)
    )
    tiles = stitcher.tiles
    batches = [tiles[i : i + job.batch_size] for i in range(0, len(tiles), job.batch_size)]
    model_seconds = [0.0]

    def wanted(r: int, c: int) -> bool:
        """False for a tile that does not touch the area of interest: never read, never run."""
        return job.aoi is None or job.aoi.touches(
            job.plan.transform, clip_window(grid.window_at(r, c), grid.height, grid.width)
        )

    def work(batch: list[tuple[int, int]]) -> list[np.ndarray | None]:
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
            for (r, c), prob in zip(batch, result):
                stitcher.add(prob)
                ran = prob is not None
                status.computed += ran
                if owns_tile(grid, chunk, r, c):
                    status.tiles_run += ran
                    status.tiles_skipped += not ran
            if on_tiles is not None:
                on_tiles(len(batch))
        if not stitcher.complete:
            raise RuntimeError(f"chunk {job.index} ended after {stitcher.rows_emitted} of {chunk.height} rows")
        buffer.flush()
    finally:
        reader.close()
    status.seconds = time.perf_counter() - t0
    status.model_seconds = model_seconds[0]
    store.mark_done(job.index, asdict(status))
    return status


@dataclass
class RunStats:
    """Counts gathered while running (finished chunks from an earlier run included)."""

    tiles_run: int = 0
    tiles_skipped: int = 0
    computed: int = 0
    computed_now: int = 0
    model_seconds: float = 0.0
    chunks_done: int = 0
    chunks_resumed: int = 0

    def count(self, status: dict | ChunkStatus, *, resumed: bool = False) -> None:
        """Add one finished chunk."""
        s = asdict(status) if isinstance(status, ChunkStatus) else status
        self.tiles_run += int(s["tiles_run"])
        self.tiles_skipped += int(s["tiles_skipped"])
        self.computed += int(s["computed"])
        self.chunks_done += 1
        if resumed:
            self.chunks_resumed += 1
        else:
            self.computed_now += int(s["computed"])
            self.model_seconds += float(s["model_seconds"])


def run_chunks(
    executor: Executor,
    submit: Callable[[Executor, int], Future],
    indices: Iterable[int],
    *,
    max_in_flight: int,
    on_done: Callable[[ChunkStatus], None],
    tick: Callable[[], None] | None = None,
    interval: float = 0.25,
) -> None:
    """Run chunk tasks through a sliding window of ``max_in_flight`` futures.

    Args:
        executor: a ``concurrent.futures`` executor (thread pool or ``Client.get_executor()``).
        submit: ``submit(executor, chunk index) -> Future`` of a :class:`ChunkStatus`.
        indices: chunk indexes to run (consumed lazily).
        max_in_flight: futures outstanding at once.
        on_done: called in this thread with each finished chunk's status.
        tick: called in this thread about every ``interval`` seconds (progress).

    On an error the outstanding futures are cancelled and the error is raised here.
    """
    todo = iter(indices)
    pending: set[Future] = set()
    try:
        for _ in range(max(1, max_in_flight)):
            k = next(todo, None)
            if k is None:
                break
            pending.add(submit(executor, k))
        while pending:
            done, pending = wait(pending, timeout=interval, return_when=FIRST_COMPLETED)
            for fut in done:
                on_done(fut.result())
                k = next(todo, None)
                if k is not None:
                    pending.add(submit(executor, k))
            if tick is not None:
                tick()
    finally:
        for fut in pending:
            fut.cancel()


def local_lanes(model: TileModel) -> int:
    """Batch workers for a local run: one per CPU core (CPU model), three to feed a GPU."""
    return 3 if _on_gpu(model) else max(1, min(os.cpu_count() or 1, 8))


def local_chunks_in_flight(model: TileModel) -> int:
    """Chunk tasks run side by side in a local run.

    Each chunk's blend runs on its own thread, so one chunk in flight blends on one core: one
    per four cores (at most four) on a CPU, two on a GPU (one blends while the other's rows are
    written). Each chunk in flight holds a ``tile x chunk`` float64 accumulator (67 MB for
    1024 px tiles and 8192 px chunks), so memory stays bounded by this count.
    """
    if _on_gpu(model):
        return 2
    return max(1, min(4, (os.cpu_count() or 1) // 4))


def run_local(
    model: TileModel,
    jobs: Callable[[int], ChunkJob],
    indices: list[int],
    *,
    on_done: Callable[[ChunkStatus], None],
    on_tiles: Callable[[int], None],
    tick: Callable[[], None],
    lanes: int | None = None,
    chunks_in_flight: int | None = None,
) -> None:
    """Run chunk tasks in this process: ``chunks_in_flight`` chunks share one set of lanes.

    Defaults: :func:`local_lanes` and :func:`local_chunks_in_flight` (one chunk on a machine of
    under eight cores; the lanes already overlap reads with forward passes inside a chunk).
    """
    bound_heap_retention()
    chunks_in_flight = chunks_in_flight or local_chunks_in_flight(model)
    pool = Lanes(lanes or local_lanes(model))
    cancel = threading.Event()
    executor = ThreadPoolExecutor(chunks_in_flight, thread_name_prefix="sam2unext-chunk")

    def submit(ex: Executor, k: int) -> Future:
        return ex.submit(compute_chunk, jobs(k), model, pool, on_tiles=on_tiles, cancel=cancel)

    try:
        with single_thread_forward():
            run_chunks(executor, submit, indices, max_in_flight=chunks_in_flight, on_done=on_done, tick=tick)
    except BaseException:
        cancel.set()  # running tasks stop at their next batch
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        pool.close()
