"""Test-time augmentation: a tile's prediction averaged over flipped and rotated copies of it.

:class:`TTAModel` wraps any model of the pipeline's contract (``predict``, ``input_size``,
``low_res_size``). Its ``predict`` runs the model once per view of the dihedral group D4
(``"flip"``: the tile and its mirror image; ``"d4"``: the four rotations of the tile and of its
mirror image), each view being the tile pair (full tile and low-resolution view) transformed
the same way, maps each prediction back with the inverse transform and averages them.

Deterministic by construction: each view is one call of the model on the same batch (so the
batch composition is the pipeline's, whatever the chunking), flips and rotations are exact
copies, and the views are summed in float64 in a fixed order, then divided by their count and
rounded once to float32. A model whose output is equivariant under these transforms gives back
exactly its own output (the sum of n equal float32 values is exact in float64).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

from sam2unext.errors import InputError
from sam2unext.errors import option as option_name

#: mode → the views, each ``(quarter turns, mirrored)``; the identity first.
TTA_VIEWS: dict[str, tuple[tuple[int, bool], ...]] = {
    "none": ((0, False),),
    "flip": ((0, False), (0, True)),
    "d4": tuple((k, mirrored) for mirrored in (False, True) for k in range(4)),
}
TTA_MODES = tuple(TTA_VIEWS)


def check_tta(mode: str) -> str:
    """The TTA mode, checked.

    Raises:
        InputError: not one of ``none``, ``flip``, ``d4``.
    """
    if mode not in TTA_VIEWS:
        raise InputError(f"{option_name('tta', mode)} must be one of {', '.join(TTA_MODES)}")
    return mode


def forward_passes(mode: str) -> int:
    """Forward passes per tile with this TTA mode (1, 2 or 8)."""
    return len(TTA_VIEWS[check_tta(mode)])


def apply_view(x: torch.Tensor, view: tuple[int, bool]) -> torch.Tensor:
    """``x [..., H, W]`` mirrored left-right (when asked), then turned ``k`` quarter turns counter-clockwise."""
    k, mirrored = view
    if mirrored:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, k, dims=(-2, -1)) if k else x


def invert_view(x: torch.Tensor, view: tuple[int, bool]) -> torch.Tensor:
    """The inverse of :func:`apply_view`: ``invert_view(apply_view(x, v), v)`` equals ``x``."""
    k, mirrored = view
    if k:
        x = torch.rot90(x, -k, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if mirrored else x


class TTAModel:
    """A model whose ``predict`` averages the predictions of the TTA views of each tile.

    Every other attribute (``input_size``, ``low_res_size``, ``in_chans``, ``bands``,
    ``parameters``, ``device`` ...) is the wrapped model's.

    Args:
        model: any object with ``predict``, ``input_size`` and ``low_res_size``.
        mode: ``none``, ``flip`` or ``d4``.
    """

    def __init__(self, model: Any, mode: str):
        self.model = model
        self.mode = check_tta(mode)
        self.views = TTA_VIEWS[mode]

    def __getattr__(self, name: str) -> Any:
        if name in ("model", "mode", "views") or name.startswith("__"):
            raise AttributeError(name)  # not set yet (unpickling): never recurse
        return getattr(self.model, name)

    def fingerprint(self) -> dict[str, Any]:
        """The wrapped model's fingerprint with the mode (a resume with another mode is refused)."""
        from sam2unext.geo.running.fingerprint import model_fingerprint

        return {**model_fingerprint(self.model), "tta": self.mode}

    def predict(self, images: torch.Tensor, low_res: torch.Tensor | None = None, /, *, to_cpu: bool = True) -> Any:
        """The mean of the model's probabilities ``[B, 1, H, W]`` over the views of float tiles ``[B, C, H, W]``.

        ``to_cpu=False`` keeps the result on the tiles' device (a model on a GPU): it is passed on
        to a model whose ``predict`` takes it, else the model's result is moved there. The
        result has the model's type (tensor or numpy array) otherwise.
        """
        kwargs = {"to_cpu": to_cpu} if _takes_to_cpu(self.model) else {}
        total: torch.Tensor | None = None
        as_numpy = False
        for view in self.views:
            out = self.model.predict(
                apply_view(images, view).contiguous(),
                apply_view(low_res, view).contiguous() if low_res is not None else None,
                **kwargs,
            )
            as_numpy = isinstance(out, np.ndarray)
            back = invert_view(torch.as_tensor(out), view).to(torch.float64)
            total = back if total is None else total.add_(back)
        assert total is not None
        mean = total.div_(len(self.views)).to(torch.float32)
        if not to_cpu:
            return mean.to(images.device)
        return mean.numpy() if as_numpy else mean


def _takes_to_cpu(model: Any) -> bool:
    try:
        return "to_cpu" in inspect.signature(model.predict).parameters
    except (TypeError, ValueError):
        return False


def with_tta(model: Any, mode: str) -> Any:
    """``model`` wrapped for ``mode`` (unchanged for ``"none"``)."""
    return model if check_tta(mode) == "none" else TTAModel(model, mode)


def tta_factory(factory: Any, mode: str) -> Any:
    """``factory`` whose models are wrapped for ``mode`` (unchanged for ``"none"``)."""
    return factory if check_tta(mode) == "none" else TTAFactory(factory, mode)


class TTAFactory:
    """Picklable factory: builds the wrapped factory's model and wraps it (cluster workers).

    Forwards ``on(device)`` (a :class:`~sam2unext.loader.ModelLoader` placed on one GPU per worker)
    and the wrapped factory's other attributes.
    """

    def __init__(self, factory: Any, mode: str):
        self.factory = factory
        self.mode = check_tta(mode)

    def __call__(self) -> Any:
        return with_tta(self.factory(), self.mode)

    def on(self, device: Any) -> TTAFactory:
        return TTAFactory(self.factory.on(device), self.mode)

    def __getattr__(self, name: str) -> Any:
        if name in ("factory", "mode") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.factory, name)
