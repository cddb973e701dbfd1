"""Which chunk steps run when: the two-step schedule, the bounded loop over an executor, the counts.

Each chunk has two steps (:mod:`~sam2unext.geo.running.chunk_task`): ``sum`` (its own tiles)
and ``finish`` (its frame, from the strips of its contributors). :class:`StepSchedule` hands
out a chunk's ``finish`` as soon as its contributors are summed, before any further ``sum``,
so a chunk's strips are needed for a short while only and are removed then (the store's disk
use stays flat, like the memory). :func:`run_steps` submits steps to any
``concurrent.futures`` executor (a thread pool in :func:`run_local`,
``distributed.Client.get_executor()`` on a cluster) through a sliding window, so the work in
flight, the memory and the time to the first tile do not depend on the scene size.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass

from sam2unext.geo.model_contract import TileModel
from sam2unext.geo.running.chunk_task import ChunkJob, ChunkStatus, compute_chunk, finish_chunk
from sam2unext.geo.running.chunks import OverlapLayout
from sam2unext.geo.running.forward import single_thread_forward
from sam2unext.geo.running.pools import Lanes, bound_heap_retention, local_chunks_in_flight, local_lanes


@dataclass(frozen=True)
class Step:
    """One step of one chunk: ``kind`` is ``"sum"`` or ``"finish"``."""

    kind: str
    index: int


class StepSchedule:
    """The steps still to run and which of them are ready (pure bookkeeping, no I/O).

    Args:
        layout: the scene's :class:`~sam2unext.geo.running.chunks.OverlapLayout`.
        summed, done: chunks whose first step / both steps are finished (from the store).
    """

    def __init__(self, layout: OverlapLayout, summed: Iterable[int], done: Iterable[int]):
        n = len(layout.chunks)
        self.layout, self.total = layout, n
        self._summed, self._done = set(summed), set(done)
        self._sums = deque(k for k in range(n) if k not in self._summed)
        self._waiting: dict[int, set[int]] = {}
        self._blocks: dict[int, list[int]] = {}
        ready = []
        for j in range(n):
            if j in self._done:
                continue
            missing = {c for c in layout.contributors(j) if c not in self._summed}
            if not missing:
                ready.append(j)
                continue
            self._waiting[j] = missing
            for c in missing:
                self._blocks.setdefault(c, []).append(j)
        self._finishes = deque(ready)
        self._readers = {
            k: sum(j not in self._done for j in layout.dependents(k))
            for k in range(n)
            if layout.extended(k) is not None
        }

    def next(self) -> Step | None:
        """The next step that can run now (None: none until a running one finishes)."""
        if self._finishes:
            return Step("finish", self._finishes.popleft())
        if self._sums:
            return Step("sum", self._sums.popleft())
        return None

    def finished(self, step: Step) -> list[tuple[int, list[str]]]:
        """Record a finished step; returns the chunks whose strips no step needs any more (with their names)."""
        if step.kind == "sum":
            self._summed.add(step.index)
            for j in self._blocks.pop(step.index, []):
                self._waiting[j].discard(step.index)
                if not self._waiting[j]:
                    del self._waiting[j]
                    self._finishes.append(j)
            return []
        self._done.add(step.index)
        free = []
        for c in self.layout.contributors(step.index):
            self._readers[c] -= 1
            if self._readers[c] == 0:
                free.append(self._strips(c))
        return free

    def _strips(self, k: int) -> tuple[int, list[str]]:
        return k, [name for name, _ in self.layout.strips(k)]

    def unneeded(self) -> list[tuple[int, list[str]]]:
        """Summed chunks whose strips no unfinished chunk reads (left by an earlier run), with their names."""
        return [self._strips(k) for k, readers in self._readers.items() if readers == 0 and k in self._summed]

    @property
    def complete(self) -> bool:
        return len(self._done) == self.total


@dataclass
class RunStats:
    """Counts gathered while running, finished chunks of an earlier run included.

    ``tiles_computed`` are the tiles run by this call, ``tiles_resumed`` those taken from a
    resumed store; ``tiles_run`` is their sum. ``chunks_resumed`` counts the chunks whose
    tiles came from the store, ``chunks_done`` the chunks finished (both steps).
    """

    tiles_run: int = 0
    tiles_skipped: int = 0
    tiles_computed: int = 0
    tiles_resumed: int = 0
    model_seconds: float = 0.0
    chunks_done: int = 0
    chunks_resumed: int = 0

    @property
    def computed_now(self) -> int:
        """Forward passes of this call (the tiles it computed)."""
        return self.tiles_computed

    def count(self, status: dict | ChunkStatus, *, resumed: bool = False) -> None:
        """Add one finished step (a ``sum`` adds tiles, a ``finish`` a finished chunk)."""
        s = asdict(status) if isinstance(status, ChunkStatus) else status
        if s.get("step", "sum") == "finish":
            self.chunks_done += 1
            return
        self.tiles_run += int(s["tiles_run"])
        self.tiles_skipped += int(s["tiles_skipped"])
        if resumed:
            self.chunks_resumed += 1
            self.tiles_resumed += int(s["tiles_run"])
        else:
            self.tiles_computed += int(s["tiles_run"])
            self.model_seconds += float(s["model_seconds"])


def run_steps(
    executor: Executor,
    submit: Callable[[Executor, Step], Future],
    schedule: StepSchedule,
    *,
    max_in_flight: int,
    on_done: Callable[[ChunkStatus], None],
    on_unneeded: Callable[[int, list[str]], None] | None = None,
    tick: Callable[[], None] | None = None,
    interval: float = 0.25,
) -> None:
    """Run the schedule's steps through a sliding window of ``max_in_flight`` futures.

    Args:
        executor: a ``concurrent.futures`` executor (thread pool or ``Client.get_executor()``).
        submit: ``submit(executor, step) -> Future`` of a :class:`ChunkStatus`.
        schedule: the steps to run.
        max_in_flight: futures outstanding at once.
        on_done: called in this thread with each finished step's status.
        on_unneeded: called in this thread with each chunk whose strips can go, and their names.
        tick: called in this thread about every ``interval`` seconds (progress).

    On an error the outstanding futures are cancelled and the error is raised here.
    """
    pending: dict[Future, Step] = {}

    def fill() -> None:
        while len(pending) < max(1, max_in_flight):
            step = schedule.next()
            if step is None:
                return
            pending[submit(executor, step)] = step

    try:
        fill()
        while pending:
            done, _ = wait(list(pending), timeout=interval, return_when=FIRST_COMPLETED)
            for fut in done:
                step = pending.pop(fut)
                on_done(fut.result())
                for k, strips in schedule.finished(step):
                    if on_unneeded is not None:
                        on_unneeded(k, strips)
            fill()
            if tick is not None:
                tick()
        if not schedule.complete:
            raise RuntimeError("the chunk schedule stalled with steps left (a bug)")
    finally:
        for fut in pending:
            fut.cancel()


def run_local(
    model: TileModel,
    jobs: Callable[[int], ChunkJob],
    schedule: StepSchedule,
    *,
    on_done: Callable[[ChunkStatus], None],
    on_tiles: Callable[[int], None],
    tick: Callable[[], None],
    on_unneeded: Callable[[int, list[str]], None] | None = None,
    lanes: int | None = None,
    chunks_in_flight: int | None = None,
) -> None:
    """Run the steps in this process: ``chunks_in_flight`` steps share one set of lanes.

    Defaults: :func:`~sam2unext.geo.running.pools.local_lanes` and
    :func:`~sam2unext.geo.running.pools.local_chunks_in_flight` (one chunk on a machine of
    under eight cores; the lanes already overlap reads with forward passes inside a chunk).
    """
    bound_heap_retention()
    chunks_in_flight = chunks_in_flight or local_chunks_in_flight(model)
    pool = Lanes(lanes or local_lanes(model))
    cancel = threading.Event()
    executor = ThreadPoolExecutor(chunks_in_flight, thread_name_prefix="sam2unext-chunk")

    def submit(ex: Executor, step: Step) -> Future:
        if step.kind == "finish":
            return ex.submit(finish_chunk, jobs(step.index))
        return ex.submit(compute_chunk, jobs(step.index), model, pool, on_tiles=on_tiles, cancel=cancel)

    try:
        with single_thread_forward():
            run_steps(
                executor,
                submit,
                schedule,
                max_in_flight=chunks_in_flight,
                on_done=on_done,
                on_unneeded=on_unneeded,
                tick=tick,
            )
    except BaseException:
        cancel.set()  # running tasks stop at their next batch
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        pool.close()
