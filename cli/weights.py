"""Which weights a command runs with: checks, warnings and a picklable, lazy model loader."""

from __future__ import annotations

from pathlib import Path

from sam2unext.errors import CheckpointError

from .formatting import warn

NO_WEIGHTS = (
    "no weights given: pass --checkpoint FILE, a trained SAM2-UNeXT/SAM2-UNet checkpoint (an "
    "upstream .pth also needs --preset NAME; see 'Getting the official weights' in the README); "
    "to try the tool without weights run 'sam2unext-geo demo' (or pass --checkpoint demo)"
)
DEMO_NOTE = ("the demo weights were trained only on synthetic demo scenes "
             "(sam2unext-geo demo); they do not work on real imagery")


class ModelLoader:
    """A picklable zero-argument factory: ``sam2unext.load_model(...)``, loaded once per process.

    ``predict_raster`` accepts such a factory as ``model``: it validates inputs and outputs
    first and calls the factory only then, so user errors are reported before torch loads.
    """

    def __init__(self, bands=None, **kwargs):
        self.kwargs = kwargs
        self.bands = bands  # the model's BandConfig when known without loading it
        self._model = None

    def __call__(self):
        if self._model is None:
            from sam2unext import load_model

            self._model = load_model(**self.kwargs)
        return self._model

    def __getstate__(self):
        return {"kwargs": self.kwargs, "bands": self.bands, "_model": None}


def model_loader(checkpoint: str | None, preset: str | None, hiera: Path | None, dinov2: Path | None,
                 device: str, dtype: str = "float32", bands=None, rgb_bands=None) -> ModelLoader:
    """The loader for the chosen weights; warns on stderr for demo or (partly) random weights.

    The loader carries the model's band config (read from the checkpoint's metadata), so the
    scene is checked against it before the model loads. Without a checkpoint, more than three
    ``bands`` build an N-band model from the preset's RGB weights (``rgb_bands``: which are
    R, G, B; default the first three).

    Raises:
        CheckpointError: neither a checkpoint nor a preset was given.
        PresetError: unknown preset name.
        InputError: ``rgb_bands`` not among ``bands``.
    """
    if checkpoint is None and preset is None:
        raise CheckpointError(NO_WEIGHTS)
    if preset is not None:
        from sam2unext import get_preset

        get_preset(preset)
    if checkpoint is not None and str(checkpoint) == "demo":
        warn(DEMO_NOTE)
    elif checkpoint is None:
        missing = [name for name, f in (("--hiera", hiera), ("--dinov2", dinov2)) if f is None]
        if preset is not None and preset.startswith("sam2unet") and "--dinov2" in missing:
            missing.remove("--dinov2")
        parts = "the adapters and decoder" + (f" and the encoders (no {' / '.join(missing)})" if missing else "")
        warn(f"no --checkpoint: preset {preset} runs with RANDOM weights for {parts}; the output is "
             f"meaningless and only tests the pipeline. Pass a trained --checkpoint for real results.")
    from sam2unext import checkpoint_bands

    extra = {}
    if checkpoint is None and bands is not None and len(bands) > 3:
        from sam2unext.bands import BandConfig
        from sam2unext.geo.reading import rgb_channels_of

        rgb = rgb_channels_of(bands, rgb_bands if rgb_bands is not None else tuple(bands)[:3])
        extra = {"in_chans": len(bands), "rgb_channels": rgb}
        band_config = BandConfig.for_channels(len(bands), rgb)
    else:
        try:
            band_config = checkpoint_bands(checkpoint)
        except CheckpointError:
            band_config = None  # reported when the model loads, after the scene and outputs are checked
    return ModelLoader(band_config, checkpoint=checkpoint, preset=preset, hiera=hiera, dinov2=dinov2,
                       device=device, dtype=dtype, **extra)
