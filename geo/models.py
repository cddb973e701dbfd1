"""Which model runs a scene: the one place that tells a model, a factory and a checkpoint apart.

``predict_raster`` and friends take ``model`` (a model object, a picklable zero-argument
factory of one, a :class:`~sam2unext.loader.ModelLoader`, or None) with ``checkpoint`` /
``preset``; :class:`ModelChoice` answers every question the run asks about it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sam2unext.geo.model_contract import ModelFactory, ModelSource, TileModel, is_factory
from sam2unext.geo.running.device import local_devices
from sam2unext.geo.running.fingerprint import model_fingerprint
from sam2unext.loader import ModelLoader, weights_note

if TYPE_CHECKING:
    from sam2unext.bands import BandConfig


class _Const:
    """Picklable zero-argument factory returning a fixed model."""

    def __init__(self, model: TileModel):
        self.model = model

    def __call__(self) -> TileModel:
        return self.model


@dataclass
class ModelChoice:
    """The model of a run, as the caller named it.

    Attributes:
        model: a model object, a factory of one (a :class:`ModelLoader` is one), or None:
            load ``checkpoint`` / ``preset`` on ``device`` in ``precision``.
        checkpoint, preset: the weights when ``model`` is None (``checkpoint`` also tells the
            bands of a multispectral checkpoint when ``model`` is None).
        device, precision: where and how a model loaded from ``checkpoint``/``preset`` runs.
    """

    model: ModelSource = None
    checkpoint: str | Path | None = None
    preset: str | None = None
    device: str = "auto"
    precision: str = "auto"
    _loader: ModelLoader | None = field(default=None, init=False, repr=False)

    @property
    def named(self) -> bool:
        """True when any model was named (a model, a checkpoint or a preset)."""
        return self.model is not None or self.checkpoint is not None or self.preset is not None

    def loader(self) -> ModelLoader | None:
        """The :class:`ModelLoader` of the run: the one given, or one for ``checkpoint``/``preset``
        (made once); None for a model object or another factory."""
        if self.model is None:
            if self._loader is None:
                self._loader = ModelLoader(
                    checkpoint=self.checkpoint, preset=self.preset, device=self.device, dtype=self.precision
                )
            return self._loader
        return self.model if isinstance(self.model, ModelLoader) else None

    def weights_note(self) -> str | None:
        """The warning for demo or (partly) random weights when loading ``checkpoint``/``preset``."""
        return weights_note(self.checkpoint, self.preset) if self.model is None else None

    def band_config(self) -> BandConfig | None:
        """The model's bands: a model's or factory's ``.bands``, else those in ``checkpoint``'s
        metadata; None when unknown (stand-in models and factories without one: RGB)."""
        if self.model is not None:
            return getattr(self.model, "bands", None)
        if self.checkpoint is None:
            return None
        from sam2unext.api import checkpoint_bands

        return checkpoint_bands(self.checkpoint)

    def load(self) -> TileModel:
        """The model object to run in this process."""
        loader = self.loader() if self.model is None else None
        if loader is not None:
            return loader()
        return self.model() if is_factory(self.model) else self.model  # type: ignore[return-value]

    def factory(self) -> tuple[ModelFactory, str]:
        """(picklable factory, cache key) of the model that cluster workers run."""
        factory: ModelFactory
        if self.model is None:
            factory = ModelLoader(
                checkpoint=self.checkpoint, preset=self.preset, device=self.device, dtype=self.precision
            )
        elif is_factory(self.model):
            factory = self.model
        else:
            factory = _Const(self.model)
        return factory, f"{type(factory).__name__}-{id(factory):x}-{time.time_ns():x}"

    def spread(self) -> tuple[list[str], ModelLoader] | None:
        """(GPUs, loader) when a local run should spread over several GPUs (see :func:`local_devices`),
        else None (a model object or a custom factory runs where it is)."""
        loader = self.loader()
        if loader is None:
            return None
        devices = local_devices(loader.kwargs["device"])
        return (devices, loader) if devices else None

    def fingerprint(self, local_model: TileModel | None = None) -> dict[str, Any]:
        """What identifies the weights that run (for the resume manifest)."""
        if self.model is None:
            return model_fingerprint(self.loader())
        own = getattr(self.model, "fingerprint", None)
        if is_factory(self.model) and callable(own):
            return own()
        return model_fingerprint(local_model if local_model is not None else self.model)
