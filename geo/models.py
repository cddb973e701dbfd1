"""Which model runs a scene: the model given, a factory of one, or a checkpoint/preset to load."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sam2unext.geo.model_contract import ModelFactory, ModelSource, TileModel, is_factory
from sam2unext.geo.running.device import local_devices
from sam2unext.geo.running.fingerprint import model_fingerprint
from sam2unext.loader import ModelLoader


def spread_devices(
    model: ModelSource, checkpoint: str | Path | None, preset: str | None, device: str
) -> tuple[list[str], ModelLoader] | None:
    """(GPUs, loader) when a local run should spread over several GPUs (see :func:`local_devices`), else None."""
    if model is None:
        loader = ModelLoader(checkpoint=checkpoint, preset=preset, device=device)
    elif isinstance(model, ModelLoader):
        loader = model
    else:
        return None  # a model object or a custom factory runs where it is
    devices = local_devices(loader.kwargs["device"])
    return (devices, loader) if devices else None


def model_factory(
    model: ModelSource, checkpoint: str | Path | None, preset: str | None, device: str
) -> tuple[ModelFactory, str]:
    """(picklable factory, cache key) of the model that workers run."""
    factory: ModelFactory
    if model is None:
        factory = ModelLoader(checkpoint=checkpoint, preset=preset, device=device)
    elif is_factory(model):
        factory = model
    else:
        factory = _Const(model)
    return factory, f"{type(factory).__name__}-{id(factory):x}-{time.time_ns():x}"


class _Const:
    """Picklable zero-argument factory returning a fixed model."""

    def __init__(self, model: TileModel):
        self.model = model

    def __call__(self) -> TileModel:
        return self.model


def load_local(model: ModelSource, checkpoint: str | Path | None, preset: str | None, device: str) -> TileModel:
    """The model object to run in this process."""
    if model is None:
        return ModelLoader(checkpoint=checkpoint, preset=preset, device=device)()
    return model() if is_factory(model) else model


def weights_fingerprint(
    model: ModelSource,
    checkpoint: str | Path | None,
    preset: str | None,
    device: str,
    local_model: TileModel | None,
) -> dict[str, Any]:
    """What identifies the weights that run (for the resume manifest)."""
    if model is None:
        return model_fingerprint(ModelLoader(checkpoint=checkpoint, preset=preset, device=device))
    own = getattr(model, "fingerprint", None)
    if is_factory(model) and callable(own):
        return own()
    return model_fingerprint(local_model if local_model is not None else model)
