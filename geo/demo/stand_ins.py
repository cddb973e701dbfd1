"""Stand-in models for tests and benchmarks: pure per-pixel functions with the model contract.

They live in the package (not under ``tests/``) so that ``dask.distributed`` workers in other
processes can unpickle them.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def pixel_function(images: np.ndarray) -> np.ndarray:
    """The stand-in's per-pixel probability of float32 ``[B, 3, H, W]`` in [0, 1] → ``[B, 1, H, W]``.

    Only correctly rounded numpy ``*`` and ``+`` are used, so the value of a pixel does not
    depend on the array it sits in (bit-exact whatever the tiling).
    """
    r, g, b = images[:, 0:1], images[:, 1:2], images[:, 2:3]
    lin = np.float32(0.5) * r + np.float32(0.3) * g + np.float32(0.2) * b
    return (lin * lin).astype(np.float32)


class PixelModel:
    """A per-pixel model with ``predict``/``input_size``/``low_res_size``.

    Args:
        input_size: tile side it expects.
        low_res_size: side of the low-res view it checks (None: none expected).
    """

    def __init__(self, input_size: int = 64, low_res_size: int | None = 28):
        self.input_size = input_size
        self.low_res_size = low_res_size
        self.calls = 0
        self.low_res_shapes: list[tuple[int, ...]] = []

    def fingerprint(self) -> dict[str, Any]:
        """What identifies its output for a resume: the function and the tile size it expects."""
        return {"stand-in": "pixel_function", "input_size": self.input_size}

    def predict(self, images: torch.Tensor, low_res: torch.Tensor | None = None) -> torch.Tensor:
        """Probabilities ``[B, 1, H, W]`` (float32 CPU) of float images ``[B, 3, H, W]`` in [0, 1].

        Raises:
            AssertionError: wrong input type/range or a low-res view of the wrong shape.
        """
        assert images.dtype == torch.float32 and images.ndim == 4 and images.shape[1] == 3
        assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
        if low_res is not None:
            expected = (images.shape[0], 3, self.low_res_size, self.low_res_size)
            assert tuple(low_res.shape) == expected, (tuple(low_res.shape), expected)
            self.low_res_shapes.append(tuple(low_res.shape))
        self.calls += 1
        return torch.from_numpy(pixel_function(images.numpy()))


class PixelModelFactory:
    """Picklable factory of :class:`PixelModel` (for distributed workers)."""

    def __init__(self, input_size: int = 64, low_res_size: int | None = 28):
        self.input_size = input_size
        self.low_res_size = low_res_size

    def __call__(self) -> PixelModel:
        return PixelModel(self.input_size, self.low_res_size)


class SlowPixelModel(PixelModel):
    """A :class:`PixelModel` without a low-res view that sleeps ``delay`` seconds per forward pass."""

    def __init__(self, input_size: int = 64, delay: float = 0.05):
        super().__init__(input_size, None)
        self.delay = delay

    def predict(self, images: torch.Tensor, low_res: torch.Tensor | None = None) -> torch.Tensor:
        time.sleep(self.delay)
        return super().predict(images, low_res)


class SlowPixelModelFactory(PixelModelFactory):
    """Factory of a :class:`SlowPixelModel` (kill tests)."""

    def __init__(self, input_size: int = 64, delay: float = 0.05):
        super().__init__(input_size, None)
        self.delay = delay

    def __call__(self) -> SlowPixelModel:
        return SlowPixelModel(self.input_size, self.delay)


class FailingPixelModel(PixelModel):
    """A :class:`PixelModel` whose ``predict`` raises once it has run ``fail_after`` batches."""

    def __init__(self, input_size: int = 64, fail_after: int = 3, error: type[BaseException] = RuntimeError):
        super().__init__(input_size, None)
        self.fail_after = fail_after
        self.error = error

    def predict(self, images: torch.Tensor, low_res: torch.Tensor | None = None) -> torch.Tensor:
        if self.calls >= self.fail_after:
            raise self.error("stand-in failure")
        return super().predict(images, low_res)


class KillOncePixelModel(PixelModel):
    """A :class:`PixelModel` that SIGKILLs its own process on its first batch after ``after_calls``
    batches when ``marker`` is absent, creating ``marker`` just before (so only one process dies)."""

    def __init__(self, input_size: int, marker: str, after_calls: int = 2):
        super().__init__(input_size, None)
        self.marker = marker
        self.after_calls = after_calls

    def predict(self, images: torch.Tensor, low_res: torch.Tensor | None = None) -> torch.Tensor:
        if self.calls >= self.after_calls and not Path(self.marker).exists():
            Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return super().predict(images, low_res)


class KillOncePixelModelFactory(PixelModelFactory):
    """Factory of a :class:`KillOncePixelModel` (the worker-kill test): exactly one process dies once."""

    def __init__(self, input_size: int, marker: str, after_calls: int = 2):
        super().__init__(input_size, None)
        self.marker = marker
        self.after_calls = after_calls

    def __call__(self) -> KillOncePixelModel:
        return KillOncePixelModel(self.input_size, self.marker, self.after_calls)
