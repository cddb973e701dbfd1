"""The one model factory: a picklable, lazy :func:`sam2unext.load_model` (imports no torch until called)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sam2unext.errors import option
from sam2unext.files import file_fingerprint
from sam2unext.remote_files import is_remote, remote_info
from sam2unext.weights import DEMO_NOTE, demo_weights_path

if TYPE_CHECKING:
    from sam2unext.models import SegmentationModel


def weights_note(
    checkpoint: str | Path | None, preset: str | None, hiera: str | Path | None = None, dinov2: str | Path | None = None
) -> str | None:
    """The warning these weights deserve: demo weights, or a preset with (partly) random weights; else None.

    Options are named with :func:`sam2unext.errors.option`, so each surface renders its own words.
    """
    if checkpoint is not None:
        return DEMO_NOTE if str(checkpoint) == "demo" else None
    if preset is None:
        return None
    missing = [name for name, f in (("hiera", hiera), ("dinov2", dinov2)) if f is None]
    if preset.startswith("sam2unet") and "dinov2" in missing:
        missing.remove("dinov2")
    files = " / ".join(option(m, "FILE") for m in missing)
    parts = "the adapters and decoder" + (f" and the encoders (no {files})" if missing else "")
    return (
        f"no checkpoint: preset {preset} runs with RANDOM weights for {parts}; the output is meaningless "
        f"and only tests the pipeline. Pass a trained {option('checkpoint', 'FILE')} for real results."
    )


class ModelLoader:
    """A picklable zero-argument factory of :func:`load_model`: loads once per process.

    The one model factory of the project: the command, ``predict_raster`` and the cluster
    workers all use it, so inputs and outputs are checked before torch loads any weights, and
    each worker loads the model once.
    """

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        preset: str | None = None,
        *,
        hiera: str | Path | None = None,
        dinov2: str | Path | None = None,
        device: str = "auto",
        dtype: str = "auto",
        compile: bool = False,
        in_chans: int | None = None,
        rgb_channels: tuple[int, int, int] | None = None,
    ):
        self.kwargs: dict[str, Any] = dict(
            checkpoint=checkpoint, preset=preset, hiera=hiera, dinov2=dinov2, device=device, dtype=dtype
        )
        if compile:  # only when on: fingerprints of runs without it stay as they were
            self.kwargs["compile"] = True
        if in_chans is not None:  # a multispectral model widened from RGB weights (issue 15)
            self.kwargs.update(in_chans=int(in_chans), rgb_channels=tuple(rgb_channels or (0, 1, 2)))
        self._model: SegmentationModel | None = None

    def __call__(self) -> SegmentationModel:
        if self._model is None:
            from sam2unext.api import load_model

            self._model = load_model(**self.kwargs)
        return self._model

    def release(self) -> None:
        """Forget the loaded model (its memory is freed once nothing else holds it); a later call loads again."""
        self._model = None
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def on(self, device: str) -> ModelLoader:
        """The same loader for another device (a worker's own GPU)."""
        other = ModelLoader.__new__(ModelLoader)
        other.kwargs = {**self.kwargs, "device": device}
        other._model = None
        return other

    def __getstate__(self):
        return {"kwargs": self.kwargs, "_model": None}

    @property
    def bands(self):
        """The model's :class:`~sam2unext.bands.BandConfig`, known without loading it (from the
        checkpoint's metadata or ``in_chans``); None when the checkpoint cannot be read yet
        (the error comes when the model loads, after the scene and outputs are checked)."""
        from sam2unext.api import checkpoint_bands
        from sam2unext.bands import BandConfig
        from sam2unext.errors import CheckpointError

        if self.kwargs.get("in_chans") is not None:
            return BandConfig.for_channels(self.kwargs["in_chans"], self.kwargs["rgb_channels"])
        try:
            return checkpoint_bands(self.kwargs["checkpoint"])
        except CheckpointError:
            return None

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the weights this loader loads: the files (size, sampled bytes; no path) and settings."""
        out: dict[str, Any] = {}
        for name, value in self.kwargs.items():
            if name in ("checkpoint", "hiera", "dinov2") and is_remote(value):
                out[name] = remote_info(value)  # size and version tag: one HEAD request, no download
            elif name in ("checkpoint", "hiera", "dinov2") and value is not None:
                path = demo_weights_path() if str(value) == "demo" else Path(value)
                out[name] = file_fingerprint(path) if path.is_file() else str(value)
            else:
                out[name] = None if value is None else str(value)
        if out.get("device") == "auto" or out.get("dtype") == "auto":
            from sam2unext.api import resolve_device
            from sam2unext.precision import resolve_dtype

            device = resolve_device(self.kwargs["device"])
            out["device"] = device.type if out.get("device") == "auto" else out["device"]
            if out.get("dtype") == "auto":  # the precision that runs decides the pixels
                out["dtype"] = str(resolve_dtype("auto", device)).removeprefix("torch.")
        return out
