"""Feed and drain the model on its device: staged uploads, forward passes, downloads, batch size.

A batch goes through three steps so that a GPU is never idle while the host copies:

1. :meth:`DeviceFeed.upload` (outside the device lock): the uint8 tiles are stacked into a
   host buffer (pinned on CUDA) and copied with ``non_blocking=True`` on the calling thread's
   own copy stream; uint8 crosses the bus, not float32 (a quarter of the bytes).
2. :meth:`DeviceFeed.forward` (under the device lock): the compute stream waits for the
   upload's event, converts to float on the device through a 256-entry table (exactly
   ``float32(x) / 255``, the CPU values) and enqueues the model; it returns without waiting
   for the GPU, so the next lane can enqueue its batch at once.
3. :meth:`DeviceFeed.download` (outside the lock): the copy stream waits for the forward's
   event and copies the float32 probabilities into a pinned buffer; only this lane's thread
   waits for it.

Uploads of one lane, the forward pass of another and the download of a third run at the
same time on separate streams. On a CPU the same methods are plain calls: no pinned memory,
streams and events are no-ops (``pinned``/``streams`` can also be switched off on CUDA).

The probabilities come back as float32: the blend runs in float64 on the host and must see
exactly the values the model produced (float16 or uint8 would change the output), and at
4 MB per 1024² tile, 110 tiles/s is 0.46 GB/s, under 2 % of a PCIe 4 x16 link.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sam2unext.errors import UserError, option
from sam2unext.geo.model_contract import TileModel

#: A lock held around the forward pass (the lanes' device lock), or None.
DeviceLock = contextlib.AbstractContextManager | None

#: Tiles per forward pass on a CPU when the user gives none (the pipeline's long-standing default).
CPU_BATCH = 4
#: Largest automatic batch on a GPU (more gains nothing once the device is saturated).
MAX_AUTO_BATCH = 32
#: Share of the free GPU memory an automatic batch may plan to use.
HEADROOM = 0.8


def model_device(model: TileModel) -> torch.device:
    """The device of a model's parameters (or its ``device`` attribute); CPU for stand-ins."""
    device = getattr(model, "device", None)
    if device is None and hasattr(model, "parameters"):
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else None
    return torch.device(device) if device is not None else torch.device("cpu")


def unit_float_table(device: torch.device | str = "cpu") -> torch.Tensor:
    """The 256 values ``float32(i) / 255`` (numpy's correctly rounded division) on ``device``."""
    table = np.divide(np.arange(256, dtype=np.float32), np.float32(255.0), dtype=np.float32)
    return torch.from_numpy(table).to(device)


@dataclass
class Staged:
    """A batch on its way: the device tensor, the event its producer recorded, the host buffer."""

    tensor: torch.Tensor
    event: torch.cuda.Event | None = None
    host: torch.Tensor | None = None  # kept alive until the copy has finished


class DeviceFeed:
    """Uploads, forward passes and downloads for one model on one device.

    Args:
        device: where the model runs.
        pinned: page-locked host buffers (default: on CUDA only).
        streams: a copy stream per thread and events between streams (default: on CUDA only).
    """

    def __init__(self, device: torch.device | str, *, pinned: bool | None = None, streams: bool | None = None):
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        self.pinned = cuda if pinned is None else bool(pinned)
        self.streams = cuda if streams is None else bool(streams)
        if (self.pinned or self.streams) and not cuda:
            raise ValueError("pinned buffers and streams need a CUDA device")
        self._table = unit_float_table(self.device)
        self._local = threading.local()

    # -- streams and events (no-ops without CUDA streams) ------------------------------------------
    def copy_stream(self):
        """This thread's copy stream, or None."""
        if not self.streams:
            return None
        stream = getattr(self._local, "stream", None)
        if stream is None:
            stream = self._local.stream = torch.cuda.Stream(self.device)
        return stream

    def _on(self, stream):
        return torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()

    def _record(self, stream=None):
        if not self.streams:
            return None
        event = torch.cuda.Event()
        event.record(stream if stream is not None else torch.cuda.current_stream(self.device))
        return event

    def _wait(self, staged: Staged, stream: torch.cuda.Stream | None = None) -> None:
        """Make ``stream`` (default: the current one) wait for ``staged`` and own its tensor."""
        if not self.streams:
            return
        stream = stream if stream is not None else torch.cuda.current_stream(self.device)
        if staged.event is not None:
            stream.wait_event(staged.event)
        staged.tensor.record_stream(stream)

    def _host_empty(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype, pin_memory=self.pinned)

    # -- the three steps ------------------------------------------------------------------------------
    def upload(self, tiles: Sequence[np.ndarray]) -> Staged:
        """Stack uint8 ``[C, T, T]`` tiles into a (pinned) host buffer and start their copy to the device."""
        if not len(tiles):
            raise ValueError("upload needs at least one tile")
        host = self._host_empty((len(tiles), *np.shape(tiles[0])), torch.uint8)
        stacked = host.numpy()
        for j, tile in enumerate(tiles):
            stacked[j] = tile
        if self.device.type == "cpu":
            return Staged(host)
        stream = self.copy_stream()
        with self._on(stream):
            tensor = host.to(self.device, non_blocking=self.pinned)
        return Staged(tensor, self._record(stream), host)

    def to_unit_float(self, staged: Staged) -> torch.Tensor:
        """float32 ``[B, C, T, T]`` in [0, 1] on the device, equal to :func:`sam2unext.transforms.to_unit_float`."""
        self._wait(staged)
        return self._table[staged.tensor.long()]

    def forward(self, model: TileModel, staged: Staged, tile_size: int) -> Staged:
        """Enqueue the model on an uploaded batch; probabilities ``[B, T, T]`` float32, not yet waited for."""
        from sam2unext.transforms import low_res_view

        hi = self.to_unit_float(staged)
        low_size = getattr(model, "low_res_size", None)
        low = low_res_view(hi, low_size) if low_size and getattr(model, "input_size", None) == tile_size else None
        if _keeps_on_device(model):
            prob = model.predict(hi, low, to_cpu=False)  # type: ignore[call-arg]  # checked just above
        else:  # a model of the plain contract (predict(images, low_res)): whatever it returns
            prob = torch.as_tensor(model.predict(hi, low), device=self.device)
        return Staged(torch.as_tensor(prob)[:, 0].float(), self._record())

    def download(self, staged: Staged) -> np.ndarray:
        """The probabilities of :meth:`forward` as a float32 host array (waits for this batch only)."""
        if staged.tensor.device.type == "cpu":
            return _own_array(staged.tensor)
        stream = self.copy_stream()
        host = self._host_empty(tuple(staged.tensor.shape), torch.float32)
        self._wait(staged, stream)
        with self._on(stream):
            host.copy_(staged.tensor, non_blocking=self.pinned)
        if stream is not None:
            stream.synchronize()
        return host.numpy()

    def _upload_and_forward(
        self, model: TileModel, tiles: Sequence[np.ndarray], tile_size: int, lock: DeviceLock
    ) -> Staged:
        """Upload, then enqueue the forward with ``lock`` (e.g. the lanes' device lock) held around it only."""
        staged = self.upload(tiles)
        with lock if lock is not None else contextlib.nullcontext():
            return self.forward(model, staged, tile_size)

    def run_on_device(
        self, model: TileModel, tiles: Sequence[np.ndarray], tile_size: int, lock: DeviceLock = None
    ) -> torch.Tensor:
        """Upload and forward, keeping the float32 ``[B, T, T]`` probabilities on the device.

        Work queued later on the current stream (the blending) runs after the forward.
        """
        out = self._upload_and_forward(model, tiles, tile_size, lock)
        self._wait(out)
        return out.tensor

    def run(self, model: TileModel, tiles: Sequence[np.ndarray], tile_size: int, lock: DeviceLock = None) -> np.ndarray:
        """Upload, forward and download in a row (float32 ``[B, T, T]`` on the host)."""
        return self.download(self._upload_and_forward(model, tiles, tile_size, lock))


def _keeps_on_device(model: TileModel) -> bool:
    """True when ``model.predict`` takes ``to_cpu`` (our models)."""
    try:
        return "to_cpu" in inspect.signature(model.predict).parameters
    except (TypeError, ValueError):
        return False


def _own_array(tensor: torch.Tensor) -> np.ndarray:
    """A float32 array that holds exactly this data (no larger buffer kept alive)."""
    tensor = tensor.detach()
    if (
        tensor.dtype == torch.float32
        and tensor.is_contiguous()
        and tensor.untyped_storage().nbytes() == tensor.numel() * 4
    ):
        return tensor.numpy()
    return np.array(tensor.float().numpy(), dtype=np.float32, copy=True)


_FEEDS: dict[str, DeviceFeed] = {}
_FEEDS_LOCK = threading.Lock()


def feed_for(device: torch.device) -> DeviceFeed:
    """The process's :class:`DeviceFeed` of ``device`` (one per device)."""
    key = str(device)
    with _FEEDS_LOCK:
        if key not in _FEEDS:
            _FEEDS[key] = DeviceFeed(device)
        return _FEEDS[key]


# -- automatic batch size ------------------------------------------------------------------------------
def batch_for_memory(
    free_bytes: int, fixed_bytes: int, per_tile_bytes: int, *, headroom: float = HEADROOM, cap: int = MAX_AUTO_BATCH
) -> int:
    """Largest batch whose planned peak ``fixed + batch * per_tile`` fits ``headroom * free`` (1..cap)."""
    budget = headroom * free_bytes - max(0, fixed_bytes)
    if per_tile_bytes <= 0:
        return cap
    return int(max(1, min(cap, budget // per_tile_bytes)))


def choose_batch_size(
    probe: Callable[[int], int],
    free_bytes: int,
    *,
    what: str,
    where: str,
    headroom: float = HEADROOM,
    cap: int = MAX_AUTO_BATCH,
) -> int:
    """A batch size from the peak memory of trial batches of 1 and 2 tiles.

    Args:
        probe: ``probe(batch) -> peak bytes`` of one forward pass; raises ``torch.OutOfMemoryError``
            when it does not fit.
        free_bytes: free device memory before the trial.
        what, where: the tile and the device, for the message.

    Raises:
        UserError: not even one tile fits.
    """
    try:
        one = probe(1)
    except torch.OutOfMemoryError:
        raise UserError(
            f"one {what} does not fit in the {free_bytes / 2**30:.1f} GiB free on {where}; use a smaller "
            f"{option('tile_size', 512)}, {option('device', 'cpu')}, or free the GPU"
        ) from None
    try:
        two = probe(2)
    except torch.OutOfMemoryError:
        return 1
    per_tile = max(1, two - one)
    return batch_for_memory(free_bytes, one - per_tile, per_tile, headroom=headroom, cap=cap)


def cuda_probe(model: TileModel, tile_size: int, device: torch.device) -> Callable[[int], int]:
    """``probe(batch)``: peak bytes allocated on ``device`` by one forward pass of random tiles."""
    feed = DeviceFeed(device)
    channels = int(getattr(getattr(model, "config", None), "in_channels", 3) or 3)

    def probe(batch: int) -> int:
        tiles = [np.zeros((channels, tile_size, tile_size), np.uint8)] * batch
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        try:
            feed.run(model, tiles, tile_size)
            torch.cuda.synchronize(device)
            return torch.cuda.max_memory_allocated(device) - base
        finally:
            torch.cuda.empty_cache()

    return probe


def auto_batch_size(model: TileModel, tile_size: int) -> int:
    """Tiles per forward pass when the user gives none: :data:`CPU_BATCH` on a CPU, else what fits the GPU.

    Raises:
        UserError: on a GPU, not even one tile fits in its free memory.
    """
    device = model_device(model)
    if device.type != "cuda":
        return CPU_BATCH
    known = getattr(model, "_auto_batch_sizes", None)
    if known is None:
        known = {}
        with contextlib.suppress(AttributeError):
            model._auto_batch_sizes = known  # type: ignore[attr-defined]  # a cache on the model object
    if tile_size in known:  # one probe per model and tile size (many scenes in one command)
        return known[tile_size]
    free, _ = torch.cuda.mem_get_info(device)
    what = f"{tile_size}x{tile_size} tile of {getattr(model, 'preset', 'the model')}"
    cap = MAX_AUTO_BATCH
    if hasattr(model, "max_tiles_per_pass"):  # no activation of 2**31 elements (CUDA kernels refuse them)
        cap = min(cap, model.max_tiles_per_pass(device))
    known[tile_size] = choose_batch_size(
        cuda_probe(model, tile_size, device), free, what=what, where=str(device), cap=cap
    )
    return known[tile_size]


def local_devices(device: str | torch.device) -> list[str]:
    """The GPUs a local run spreads over, one worker process each.

    Every visible CUDA device when ``device`` is ``"auto"`` or ``"cuda"`` (no index) and there
    are several; else none (the run stays in this process).
    """
    if str(device) not in ("auto", "cuda") or not torch.cuda.is_available():
        return []
    n = torch.cuda.device_count()
    return [f"cuda:{i}" for i in range(n)] if n > 1 else []
