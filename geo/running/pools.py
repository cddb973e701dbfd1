"""The workers of one process: batch lanes, the chunk-task pool of a local run, and heap tuning.

:class:`Lanes` runs the batches of every chunk task of a process with a bound on the batches
in flight; :func:`run_local` runs the steps of a scene's chunks on a thread pool through
:func:`~sam2unext.geo.running.schedule.run_steps` (a cluster runs the same steps through
:mod:`~sam2unext.geo.running.cluster`); :func:`bound_heap_retention` keeps a long run's
resident memory flat.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

from sam2unext.geo.model_contract import TileModel
from sam2unext.geo.running.forward import on_gpu


class Cancelled(Exception):
    """Raised inside a chunk task when the run was cancelled."""


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


def local_lanes(model: TileModel) -> int:
    """Batch workers for a local run: one per CPU core (CPU model), three to feed a GPU."""
    return 3 if on_gpu(model) else max(1, min(os.cpu_count() or 1, 8))


def local_chunks_in_flight(model: TileModel) -> int:
    """Chunk tasks run side by side in a local run.

    Each chunk's blend runs on its own thread, so one chunk in flight blends on one core: one
    per four cores (at most four) on a CPU, two on a GPU (one blends while the other's rows are
    written). Each chunk in flight holds a ``tile x chunk`` float64 accumulator (67 MB for
    1024 px tiles and 8192 px chunks), so memory stays bounded by this count.
    """
    if on_gpu(model):
        return 2
    return max(1, min(4, (os.cpu_count() or 1) // 4))
