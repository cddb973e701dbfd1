"""One forward pass of the pipeline, and the one-thread rule for forward passes on a CPU.

On a CPU every forward pass runs on one intra-op thread (:func:`single_thread_forward`):
torch's reductions otherwise differ in the last bits with the thread count, which moved 35
pixels by 1/255 between local and cluster runs; parallelism comes from running batches and
chunks side by side instead. On a GPU the tiles go through
:class:`~sam2unext.geo.running.device.DeviceFeed`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence

import numpy as np
import torch

from sam2unext.geo.model_contract import TileModel
from sam2unext.geo.running.device import DeviceLock, feed_for, model_device
from sam2unext.transforms import to_unit_float


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

    if on_gpu(model):
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
    return seconds if on_gpu(model) else seconds / max(1, lanes)


def on_gpu(model: TileModel) -> bool:
    """True when the model runs on a CUDA device."""
    return model_device(model).type == "cuda"


def blend_on_device(model: TileModel) -> bool:
    """True when the chunk's blend runs on the model's device (a GPU): only finished rows come back."""
    return on_gpu(model)


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
