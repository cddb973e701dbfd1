"""Stand-in models for tests and benchmarks: pure per-pixel functions with the model contract.

They live in the package (not under ``tests/``) so that ``dask.distributed`` workers in other
processes can unpickle them.
"""

from __future__ import annotations

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
