"""Running tiles on a ``dask.distributed`` cluster.

Every worker gets the model once through a worker plugin (:class:`ModelPlugin`) and keeps it
in a per-process cache keyed by checkpoint/preset/device; each task reads its batch of tiles
from the (shared) file and returns the probabilities, which the calling process stitches in
tile order with at most ``max_in_flight`` batches outstanding.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from distributed import Client, as_completed
from distributed.diagnostics.plugin import WorkerPlugin

from .execution import BatchResult, RunStats, batches_of, predict_batch
from .reading import ReadPlan, TileReader
from .tiling import TileGrid

#: Per-process model cache on workers: key → model (filled by :class:`ModelPlugin`).
_MODEL_CACHE: dict[str, object] = {}
_CACHE_LOCK = threading.Lock()
#: Number of model loads per key in this process (lets tests check "once per worker").
LOAD_COUNTS: dict[str, int] = {}


def cached_model(key: str, factory: Callable[[], object]):
    """The model for ``key`` in this process, built with ``factory`` on first use."""
    with _CACHE_LOCK:
        if key not in _MODEL_CACHE:
            _MODEL_CACHE[key] = factory()
            LOAD_COUNTS[key] = LOAD_COUNTS.get(key, 0) + 1
        return _MODEL_CACHE[key]


def release_model(key: str) -> None:
    """Forget a cached model."""
    with _CACHE_LOCK:
        _MODEL_CACHE.pop(key, None)


class ModelPlugin(WorkerPlugin):
    """``distributed`` worker plugin: loads the model once per worker at registration.

    Args:
        key: cache key (e.g. derived from checkpoint/preset/device).
        factory: picklable zero-argument callable returning the model.
    """

    idempotent = False

    def __init__(self, key: str, factory: Callable[[], object]):
        super().__init__()
        self.key = key
        self.factory = factory
        self.name = f"sam2unext-model-{key}"

    def setup(self, worker=None):
        cached_model(self.key, self.factory)

    def teardown(self, worker=None):
        release_model(self.key)


def remote_batch(plan: ReadPlan, grid: TileGrid, indices: list[int], key: str,
                 factory: Callable[[], object]) -> BatchResult:
    """Worker task: read a batch of tiles and run the cached model on them."""
    reader = TileReader(plan, grid.tile_size)
    try:
        reads = reader.read_many([grid.window(i) for i in indices])
    finally:
        reader.close()
    return predict_batch(cached_model(key, factory), reads, indices, grid.tile_size)


def run_distributed(scheduler, factory: Callable[[], object], key: str, plan: ReadPlan, grid: TileGrid,
                    consume: Callable[[BatchResult], None], *, batch_size: int = 4,
                    max_in_flight: int | None = None, stats: RunStats | None = None) -> RunStats:
    """Run the scene on a ``dask.distributed`` cluster; stitch here in tile order.

    Args:
        scheduler: scheduler address or a ``distributed.Client``.
        factory: picklable zero-argument callable that builds the model on a worker.
        key: cache key of that model.
        plan, grid, consume, batch_size: as for :func:`run_local`.
        max_in_flight: batches outstanding at once (default: 2 per worker thread).

    Returns:
        :class:`RunStats`.
    """
    stats = stats or RunStats()
    own_client = not isinstance(scheduler, Client)
    client = Client(scheduler) if own_client else scheduler
    plugin = ModelPlugin(key, factory)
    try:
        client.register_plugin(plugin, name=plugin.name)
        if max_in_flight is None:
            max_in_flight = max(2, 2 * sum(client.nthreads().values()))
        batches = batches_of(len(grid), batch_size)
        plan_f, grid_f = client.scatter([plan, grid], broadcast=True)
        pending: dict[int, BatchResult] = {}
        order = iter(range(len(batches)))
        futures = as_completed()
        which: dict = {}

        def submit_next() -> None:
            k = next(order, None)
            if k is not None:
                fut = client.submit(remote_batch, plan_f, grid_f, batches[k], key, factory, pure=False)
                which[fut.key] = k
                futures.add(fut)

        for _ in range(min(max_in_flight, len(batches))):
            submit_next()
        expected = 0
        for fut in futures:
            pending[which.pop(fut.key)] = fut.result()
            fut.release()
            submit_next()
            while expected in pending:
                result = pending.pop(expected)
                consume(result)
                stats.count(result)
                expected += 1
    finally:
        try:
            client.unregister_worker_plugin(plugin.name)
        except Exception:  # noqa: BLE001 (best effort cleanup on a possibly broken cluster)
            pass
        if own_client:
            client.close()
    return stats
