"""What the geo pipeline needs of a model, as types (see docs/CONTRACTS.md, "Model core").

Any object with ``predict``, ``input_size`` and ``low_res_size`` runs in the pipeline: a
``SegmentationModel`` or a stand-in (:mod:`sam2unext.geo.demo.stand_ins`). Where a model is
passed in, a picklable zero-argument factory returning one is accepted too (cluster workers
build the model themselves).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeAlias, Union

import numpy as np
import torch

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # typing.TypeIs is Python 3.13


class TileModel(Protocol):
    """A model the pipeline can run: float tiles ``[B, C, T, T]`` in [0, 1] → probabilities.

    Attributes:
        input_size: tile side the model expects.
        low_res_size: side of the low-resolution view it takes (None: none).
    """

    input_size: int
    low_res_size: int | None

    def predict(self, images: torch.Tensor, low_res: torch.Tensor | None = None, /) -> torch.Tensor | np.ndarray:
        """Probabilities ``[B, 1, T, T]`` of ``images`` (with the low-res view when it takes one)."""
        ...


#: A picklable zero-argument callable returning a model.
ModelFactory: TypeAlias = Callable[[], TileModel]
#: What the API takes as ``model``: a model, a factory of one, or None (load a checkpoint).
ModelSource: TypeAlias = Union[TileModel, ModelFactory, None]


def is_factory(model: ModelSource) -> TypeIs[ModelFactory]:
    """True for a model factory: callable and without a ``predict`` of its own."""
    return model is not None and callable(model) and not hasattr(model, "predict")
