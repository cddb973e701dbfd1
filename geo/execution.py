"""The Dask graph: threaded tile reads → batched model step → ordered stitching.

Local (``scheduler=None``): one graph run by Dask's threaded scheduler. Each batch is read by
one task (one pooled dataset handle, so overlapping tiles share GDAL's block cache), gated on the stitching of the batch ``prefetch`` places earlier, so at most ``prefetch``
batches are in flight (bounded memory) while the reads of the next batches overlap the
current forward pass; forward passes are chained (one at a time on the device) and the
stitch/write steps are chained in tile order.

The distributed path is in :mod:`sam2unext.geo.cluster`.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .reading import ReadPlan, TileReader, to_unit_float
from .tiling import TileGrid

#: Output of one batch: tile indexes of the batch and their probabilities (None = skipped).
BatchResult = list[tuple[int, np.ndarray | None]]


def batches_of(n_tiles: int, batch_size: int) -> list[list[int]]:
    """Consecutive (row-major) tile indexes grouped into batches."""
    return [list(range(i, min(i + batch_size, n_tiles))) for i in range(0, n_tiles, batch_size)]


def run_model(model, tiles: Sequence[np.ndarray], tile_size: int) -> np.ndarray:
    """One forward pass over uint8 ``[3, T, T]`` tiles → float32 ``[B, T, T]`` probabilities.

    The low-res view for the DINOv2 branch is made with
    :func:`sam2unext.transforms.low_res_view` when the tile has the model's input size (the
    exact pair the model would make); otherwise the model derives it from its resized input.
    """
    import torch

    from sam2unext.transforms import low_res_view

    hi = to_unit_float(tiles)
    low_size = getattr(model, "low_res_size", None)
    low = low_res_view(hi, low_size) if low_size and getattr(model, "input_size", None) == tile_size else None
    prob = model.predict(hi, low)
    if hasattr(prob, "detach"):
        prob = prob.detach().cpu()
        if prob.dtype == torch.float32 and prob.shape[1] == 1 and prob.is_contiguous() \
                and prob.untyped_storage().nbytes() == prob.numel() * 4:
            return prob.numpy()[:, 0]  # the tensor owns exactly this buffer: no copy needed
        prob = prob.numpy()
    # a copy: the result must not keep the model's input batch (or any larger buffer) alive
    return np.array(prob[:, 0], dtype=np.float32, copy=True)


def predict_batch(model, reads: Sequence[np.ndarray | None], indices: Sequence[int], tile_size: int) -> BatchResult:
    """Run the model on the non-skipped tiles of a batch."""
    run = [t for t in reads if t is not None]
    probs = iter(run_model(model, run, tile_size)) if run else iter(())
    return [(i, next(probs) if t is not None else None) for i, t in zip(indices, reads)]


@dataclass
class RunStats:
    """Counts gathered while running."""

    tiles_run: int = 0
    tiles_skipped: int = 0
    model_seconds: float = 0.0
    batches: int = 0

    def count(self, result: BatchResult) -> None:
        """Add one stitched batch: its run and skipped tiles."""
        run = sum(p is not None for _, p in result)
        self.tiles_run += run
        self.tiles_skipped += len(result) - run
        self.batches += 1


def run_local(model, plan: ReadPlan, grid: TileGrid, consume: Callable[[BatchResult], None], *,
              batch_size: int = 4, prefetch: int = 2, num_workers: int | None = None,
              stats: RunStats | None = None) -> RunStats:
    """Run the whole scene with Dask's threaded scheduler.

    Args:
        model: object with ``predict``, ``input_size`` and ``low_res_size``.
        plan: the read plan.
        grid: the tile grid.
        consume: called with each batch's results, in tile order (stitch + write).
        batch_size: tiles per forward pass.
        prefetch: batches allowed in flight ahead of the stitcher (>= 1).
        num_workers: threads (default: enough for ``prefetch`` batches of reads).

    Returns:
        :class:`RunStats`.
    """
    from dask.threaded import get as threaded_get

    stats = stats or RunStats()
    reader = TileReader(plan, grid.tile_size)
    batches = batches_of(len(grid), batch_size)
    token = uuid.uuid4().hex[:8]

    def read(indices, _gate):
        return reader.read_many([grid.window(i) for i in indices])

    def predict(indices, _previous, reads):
        t0 = time.perf_counter()
        out = predict_batch(model, reads, indices, grid.tile_size)
        stats.model_seconds += time.perf_counter() - t0
        return out

    def stitch(result, _previous):
        consume(result)
        stats.count(result)
        return None

    # read(k) (the batch's tiles, one handle) waits for stitch(k - prefetch): at most `prefetch`
    # batches are read ahead; predict(k) waits for predict(k - 1) (one forward pass at a time);
    # stitch(k) for stitch(k - 1).
    graph: dict = {}
    for k, batch in enumerate(batches):
        gate = (f"stitch-{token}", k - prefetch) if k >= prefetch else None
        graph[(f"read-{token}", k)] = (read, batch, gate)
        prev_predict = (f"predicted-{token}", k - 1) if k else None
        graph[(f"predict-{token}", k)] = (predict, batch, prev_predict, (f"read-{token}", k))
        graph[(f"predicted-{token}", k)] = (_token, (f"predict-{token}", k))
        prev_stitch = (f"stitch-{token}", k - 1) if k else None
        graph[(f"stitch-{token}", k)] = (stitch, (f"predict-{token}", k), prev_stitch)
    workers = num_workers or max(2, min((os.cpu_count() or 2) + 2, prefetch + 2))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="sam2unext-geo")
    try:
        if batches:
            threaded_get(graph, [(f"stitch-{token}", len(batches) - 1)], pool=pool)
    finally:
        # On an error or interrupt, tasks already running must end before their datasets close.
        pool.shutdown(wait=True, cancel_futures=True)
        reader.close()
    return stats


def _token(_value) -> None:
    return None
