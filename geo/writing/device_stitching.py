"""Blending on the model's device: the :class:`~sam2unext.geo.writing.stitching.ChunkStitcher` arithmetic in torch.

When the model runs on a GPU, its probabilities stay there: the fixed-point shares, their
sums and (for the chunk's own pixels) the quantization run on the device; what comes back is
uint8 (or float32) for the pixels the chunk finishes itself and float64 sums for its halo,
instead of float32 tiles.

The arithmetic is the CPU stitcher's, operation for operation, in float64: ``p * share`` as
one correctly rounded product (the same 2-D share), ``torch.round`` (half to even, like
``np.rint``), exact integer additions, and the one quantizer of
:mod:`~sam2unext.geo.writing.quantize`. Separate torch kernels do not fuse a multiply and an
add, so the result equals the CPU stitcher's bit for bit on any device (tested on CPU tensors).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sam2unext.geo.running.chunks import Chunk
from sam2unext.geo.running.tiling import TileGrid
from sam2unext.geo.writing.quantize import finish_sums
from sam2unext.geo.writing.stitching import ChunkStitcher, SceneWeights, SumSink


class DeviceChunkStitcher(ChunkStitcher):
    """A :class:`ChunkStitcher` whose accumulator lives on ``device`` and takes device tensors.

    Args:
        grid, window, tile_rows, tile_cols, emit, weights, out_dtype: as for :class:`ChunkStitcher`.
        device: where the tiles' probabilities are (``cuda:N``; any torch device works).
    """

    #: A finished band goes to the host in one download.
    piece_rows = 1 << 30

    def __init__(
        self,
        grid: TileGrid,
        window: Chunk,
        tile_rows: list[int],
        tile_cols: list[int],
        emit: SumSink,
        weights: SceneWeights,
        out_dtype: str = "uint8",
        *,
        device: torch.device | str,
    ):
        self.device = torch.device(device)
        super().__init__(grid, window, tile_rows, tile_cols, emit, weights, out_dtype)

    def _allocate(self) -> None:
        """The accumulator on the device; each tile row's and column's shares go there once."""
        t, win = self.grid.tile_size, self.window
        self._sum = torch.zeros((min(t, win.height), win.width), dtype=torch.float64, device=self.device)
        self._shares: dict[int, tuple[np.ndarray, torch.Tensor]] = {}

    def _share(self, r: int, c: int) -> torch.Tensor:
        """The tile's 2-D share on the device (each distinct one uploaded once per stitcher)."""
        host = self._w.share(r, c)
        found = self._shares.get(id(host))
        if found is None or found[0] is not host:
            found = self._shares[id(host)] = (host, torch.from_numpy(host).to(self.device))
        return found[1]

    def add(self, prob: torch.Tensor | np.ndarray | None) -> None:
        """Add the next tile's ``[T, T]`` probabilities: a tensor (moved to the device if needed) or None."""
        if prob is not None and not isinstance(prob, torch.Tensor):
            prob = torch.from_numpy(np.ascontiguousarray(prob))
        if prob is not None and prob.device != self.device:
            prob = prob.to(self.device)
        self._accumulate(prob)

    def _add_shares(self, prob: torch.Tensor, r: int, c: int, a0: int, a1: int, b0: int, b1: int) -> None:
        r0, c0 = self.grid.row_offsets[r], self.grid.col_offsets[c]
        base, col = self._base, self.window.col_off
        part = (slice(a0 - r0, a1 - r0), slice(b0 - c0, b1 - c0))
        term = torch.mul(prob[part].to(torch.float64), self._share(r, c)[part])
        self._sum[a0 - base : a1 - base, b0 - col : b1 - col] += torch.round(term)

    def _band(self, start: int, stop: int) -> Any:
        return self._sum[start:stop]

    def _shift(self, n: int) -> None:
        keep = self._sum.shape[0] - n
        if keep > 0:  # torch does not copy between overlapping views of one tensor
            self._sum[:keep] = self._sum[n:].clone()
        self._sum[keep:] = 0.0

    def to_host(self, sums: Any) -> np.ndarray:
        """Part of an emitted band as a host float64 array (one download)."""
        return sums.cpu().numpy()

    def finish(self, sums: Any) -> np.ndarray:
        """Part of an emitted band quantized on the device, then downloaded (uint8 or float32)."""
        return finish_sums(sums, self.out_dtype).cpu().numpy()
