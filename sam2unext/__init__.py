"""SAM2-UNeXT / SAM2-UNet model core: presets, building, loading, inference, loss.

Importing the package is cheap: torch, timm and the models load on first use of a name.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from sam2unext.errors import (
    CheckpointError,
    DatasetError,
    InputError,
    OutputError,
    PresetError,
    UserError,
)
from sam2unext.presets import PRESETS, Preset, get_preset, list_presets

# What the lazy names of _LAZY are, for type checkers; nothing is imported here at run time.
if TYPE_CHECKING:
    from sam2unext.api import build_model, checkpoint_bands, load_model, read_checkpoint_metadata, save_checkpoint  # noqa: F401
    from sam2unext.bands import BandConfig  # noqa: F401
    from sam2unext.loader import ModelLoader  # noqa: F401
    from sam2unext.loss import deep_supervision_loss, structure_loss  # noqa: F401
    from sam2unext.models import SAM2UNet, SAM2UNeXT, SegmentationModel  # noqa: F401
    from sam2unext.precision import precision_facts  # noqa: F401
    from sam2unext.transforms import low_res_view  # noqa: F401

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily, see __getattr__)
_LAZY = {
    "build_model": "sam2unext.api",
    "load_model": "sam2unext.api",
    "save_checkpoint": "sam2unext.api",
    "read_checkpoint_metadata": "sam2unext.api",
    "checkpoint_bands": "sam2unext.api",
    "BandConfig": "sam2unext.bands",
    "ModelLoader": "sam2unext.loader",
    "SegmentationModel": "sam2unext.models",
    "SAM2UNeXT": "sam2unext.models",
    "SAM2UNet": "sam2unext.models",
    "precision_facts": "sam2unext.precision",
    "structure_loss": "sam2unext.loss",
    "deep_supervision_loss": "sam2unext.loss",
    "low_res_view": "sam2unext.transforms",
}

__all__ = [
    "PRESETS",
    "Preset",
    "get_preset",
    "list_presets",
    "UserError",
    "PresetError",
    "CheckpointError",
    "InputError",
    "OutputError",
    "DatasetError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sam2unext' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
