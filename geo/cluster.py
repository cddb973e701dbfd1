"""Running tiles on a ``dask.distributed`` cluster.

Every worker gets the model once through a worker plugin (:class:`ModelPlugin`) and keeps it
in a per-process cache keyed by checkpoint/preset/device. Workers run the same chunk tasks as
a local run (:func:`sam2unext.geo.execution.compute_chunk`): each reads its tiles from the
input, runs the model, blends and writes its chunk into the run store itself, and sends back
only a small status record. The input and the output folder must therefore be on a
filesystem that every worker sees. A task lost with its worker is run again elsewhere and
writes the same chunk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future

from distributed import Client, Worker
from distributed.diagnostics.plugin import WorkerPlugin

from .execution import ChunkJob, ChunkStatus, bound_heap_retention, compute_chunk, run_chunks, single_thread_forward
from .model_contract import ModelFactory, TileModel

#: Per-process model cache on workers: key → model (filled by :class:`ModelPlugin`).
_MODEL_CACHE: dict[str, TileModel] = {}
_CACHE_LOCK = threading.Lock()
#: Number of model loads per key in this process (lets tests check "once per worker").
LOAD_COUNTS: dict[str, int] = {}


def cached_model(key: str, factory: ModelFactory) -> TileModel:
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

    def __init__(self, key: str, factory: ModelFactory):
        super().__init__()
        self.key = key
        self.factory = factory
        self.name = f"sam2unext-model-{key}"

    def setup(self, worker: Worker | None = None) -> None:
        cached_model(self.key, self.factory)

    def teardown(self, worker: Worker | None = None) -> None:
        release_model(self.key)


def remote_chunk(job: ChunkJob, key: str, factory: ModelFactory) -> ChunkStatus:
    """Worker task: compute one chunk with this worker's cached model and write it to the store."""
    bound_heap_retention()
    with single_thread_forward():
        return compute_chunk(job, cached_model(key, factory))


class DistributedRun:
    """A ``dask.distributed`` client with the model registered on every worker (context manager).

    Args:
        scheduler: scheduler address or a ``distributed.Client``.
        factory: picklable zero-argument callable that builds the model on a worker.
        key: cache key of that model.
    """

    def __init__(self, scheduler: str | Client, factory: ModelFactory, key: str):
        self.own_client = not isinstance(scheduler, Client)
        self.client: Client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        self.key, self.factory = key, factory
        self.plugin = ModelPlugin(key, factory)

    def __enter__(self) -> DistributedRun:
        try:
            self.client.register_plugin(self.plugin, name=self.plugin.name)
        except BaseException:
            self.close()
            raise
        return self

    @property
    def threads(self) -> int:
        """Worker threads of the cluster."""
        return max(1, sum(self.client.nthreads().values()))

    def run(
        self,
        jobs: Callable[[int], ChunkJob],
        indices: list[int],
        *,
        on_done: Callable[[ChunkStatus], None],
        tick: Callable[[], None],
        max_in_flight: int | None = None,
    ) -> None:
        """Run chunk tasks on the workers; only status records come back."""
        executor = self.client.get_executor(pure=False)

        def submit(ex: Executor, k: int) -> Future[ChunkStatus]:
            return ex.submit(remote_chunk, jobs(k), self.key, self.factory)

        run_chunks(
            executor, submit, indices, max_in_flight=max_in_flight or 2 * self.threads, on_done=on_done, tick=tick
        )

    def close(self) -> None:
        try:
            self.client.unregister_worker_plugin(self.plugin.name)
        except Exception:  # noqa: BLE001 (best effort cleanup on a possibly broken cluster)
            pass
        if self.own_client:
            self.client.close()

    def __exit__(self, *exc: object) -> None:
        self.close()
