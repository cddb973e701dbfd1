"""Running tiles on a ``dask.distributed`` cluster.

Every worker gets the model once through a worker plugin (:class:`ModelPlugin`) and keeps it
in a per-process cache keyed by checkpoint/preset/device. Workers run the same chunk steps as
a local run (:mod:`sam2unext.geo.running.chunk_task`): each reads its tiles from the input,
runs the model, blends and writes its chunk's core and strips into the run store itself (and
later adds a chunk's strips), and sends back only a small status record. The input and the
output folder must therefore be on a filesystem that every worker sees. A task lost with its
worker is run again elsewhere and writes the same values. When no worker is left,
:class:`WorkerWatch` says so (the run waits for one) and, after the time the user set, stops
the run with its finished chunks kept.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future

from distributed import Client, Worker
from distributed.diagnostics.plugin import WorkerPlugin

from sam2unext.errors import ClusterError, option
from sam2unext.geo.model_contract import ModelFactory, TileModel
from sam2unext.geo.running.chunk_task import ChunkJob, ChunkStatus, compute_chunk, finish_chunk
from sam2unext.geo.running.device import model_device
from sam2unext.geo.running.forward import single_thread_forward
from sam2unext.geo.running.pools import Lanes, bound_heap_retention, local_lanes
from sam2unext.geo.running.schedule import Step, StepSchedule, run_steps
from sam2unext.loader import ModelLoader

#: Per-process model cache on workers: key → model (filled by :class:`ModelPlugin`).
_MODEL_CACHE: dict[str, TileModel] = {}
_CACHE_LOCK = threading.Lock()
#: Number of model loads per key in this process (lets tests check "once per worker").
LOAD_COUNTS: dict[str, int] = {}
#: Name of the worker this process serves (set when the model plugin is registered).
_WORKER_NAME: object = None


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
        global _WORKER_NAME
        _WORKER_NAME = getattr(worker, "name", None)  # for factories that depend on the worker
        cached_model(self.key, self.factory)

    def teardown(self, worker: Worker | None = None) -> None:
        release_model(self.key)


def remote_chunk(job: ChunkJob, key: str, factory: ModelFactory) -> ChunkStatus:
    """Worker task: compute one chunk with this worker's cached model and write it to the store.

    A worker whose model is on a GPU feeds it from several lanes (reads overlap forward passes),
    as a local run does; a CPU worker runs its batches inline (the cluster's threads are the
    parallelism).
    """
    bound_heap_retention()
    model = cached_model(key, factory)
    lanes = _gpu_lanes(local_lanes(model)) if model_device(model).type == "cuda" else None
    with single_thread_forward():
        return compute_chunk(job, model, lanes)


def remote_finish(job: ChunkJob) -> ChunkStatus:
    """Worker task: the second step of one chunk (adds its contributors' strips; no model)."""
    return finish_chunk(job)


@functools.lru_cache(maxsize=1)
def _gpu_lanes(count: int) -> Lanes:
    """The batch workers of this worker process (one set, shared by its chunk tasks)."""
    return Lanes(count)


class PerWorkerDevice:
    """Picklable model factory for one worker per device: worker ``i`` loads on ``devices[i % n]``.

    Args:
        loader: a :class:`sam2unext.loader.ModelLoader` (anything with ``on(device)`` that
            returns a zero-argument model factory).
        devices: device names, one per worker.
    """

    def __init__(self, loader: ModelLoader, devices: list[str]):
        self.loader, self.devices = loader, list(devices)

    def __call__(self) -> TileModel:
        name = _WORKER_NAME
        if name is None:
            from distributed import get_worker

            name = get_worker().name
        index = int(str(name)) if str(name).isdigit() else 0
        return self.loader.on(self.devices[index % len(self.devices)])()


@contextlib.contextmanager
def device_workers(count: int) -> Iterator[Client]:
    """A local cluster of ``count`` single-threaded worker processes (one per device) and its client."""
    from distributed import LocalCluster

    with (
        LocalCluster(
            n_workers=count, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


class WorkerWatch:
    """Watches the workers of a cluster run: says when none is connected, stops after ``timeout``.

    Distributed keeps a run's tasks waiting while the cluster has no worker (a new worker
    picks them up). That is right, but it must not be silent: the first check without a
    worker warns that the run is waiting, a later one with workers says that it continues,
    and ``timeout`` seconds without any worker raise :class:`ClusterError` (the caller keeps
    the finished chunks for a resume).

    Args:
        count: number of workers connected now (raises when the scheduler cannot be asked).
        warn: where the warnings go (``Progress.warning``: stderr and the JSON stream).
        address: the scheduler's address, for the messages.
        timeout: seconds without a worker before the run stops; None waits for ever.
        interval: seconds between two questions to the scheduler.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        count: Callable[[], int],
        warn: Callable[[str], None],
        address: str,
        timeout: float | None,
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.count, self.warn, self.address, self.timeout = count, warn, address, timeout
        self.interval, self.clock = interval, clock
        self.since: float | None = None  # when the cluster was first seen without a worker
        self._asked: float | None = None

    def check(self) -> None:
        """Ask the scheduler (at most every ``interval`` seconds) and act on the answer.

        Raises:
            ClusterError: no worker connected for ``timeout`` seconds.
        """
        now = self.clock()
        if self._asked is not None and now - self._asked < self.interval:
            return
        self._asked = now
        try:
            workers = self.count()
        except Exception:  # noqa: BLE001 (an unreachable scheduler fails the tasks themselves; nothing to add)
            return
        if workers > 0:
            if self.since is not None:
                self.warn(f"{workers} worker(s) connected to {self.address}; the run continues")
            self.since = None
            return
        if self.since is None:
            self.since = now
            if self.timeout is None:
                limit = (
                    f"it waits until one connects ({option('worker_timeout', 600)} stops it after that many seconds)"
                )
            else:
                limit = f"it stops after {self.timeout:g} s without one ({option('worker_timeout', self.timeout)})"
            self.warn(f"no worker is connected to the scheduler {self.address}; the run is waiting for one: {limit}")
        elif self.timeout is not None and now - self.since >= self.timeout:
            raise ClusterError(
                f"no worker was connected to the scheduler {self.address} for {self.timeout:g} s; the finished "
                f"chunks are kept: start workers, then rerun with {option('resume')}"
            )


class DistributedRun:
    """A ``dask.distributed`` client with the model registered on every worker (context manager).

    Args:
        scheduler: scheduler address or a ``distributed.Client``.
        factory: picklable zero-argument callable that builds the model on a worker.
        key: cache key of that model.
        warn: where warnings go (no worker connected; workers back).
        worker_timeout: seconds without any worker before :meth:`run` stops (None: wait).
    """

    def __init__(
        self,
        scheduler: str | Client,
        factory: ModelFactory,
        key: str,
        *,
        warn: Callable[[str], None] | None = None,
        worker_timeout: float | None = None,
    ):
        self.own_client = not isinstance(scheduler, Client)
        self.client: Client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        self.key, self.factory = key, factory
        self.plugin = ModelPlugin(key, factory)
        self.watch = WorkerWatch(
            lambda: len(self.client.nthreads()),
            warn or (lambda message: None),
            str(getattr(self.client.scheduler, "address", scheduler)),
            worker_timeout,
        )

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
        schedule: StepSchedule,
        *,
        on_done: Callable[[ChunkStatus], None],
        tick: Callable[[], None],
        on_unneeded: Callable[[int, list[str]], None] | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        """Run the chunk steps on the workers; only status records come back.

        Raises:
            ClusterError: no worker connected for ``worker_timeout`` seconds.
        """
        executor = self.client.get_executor(pure=False)

        def submit(ex: Executor, step: Step) -> Future[ChunkStatus]:
            if step.kind == "finish":
                return ex.submit(remote_finish, jobs(step.index))
            return ex.submit(remote_chunk, jobs(step.index), self.key, self.factory)

        def watched_tick() -> None:
            self.watch.check()
            tick()

        self.watch.check()
        run_steps(
            executor,
            submit,
            schedule,
            max_in_flight=max_in_flight or 2 * self.threads,
            on_done=on_done,
            on_unneeded=on_unneeded,
            tick=watched_tick,
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
