"""Which weights a command runs with: checks and warnings around the one model factory (``ModelLoader``)."""

from __future__ import annotations

from pathlib import Path

from sam2unext.errors import CheckpointError
from sam2unext.loader import ModelLoader

from .formatting import warn

NO_WEIGHTS = (
    "no weights given: pass --checkpoint FILE, a trained SAM2-UNeXT/SAM2-UNet checkpoint (an "
    "upstream .pth also needs --preset NAME; see 'Getting the official weights' in the README); "
    "to try the tool without weights run 'sam2unext-geo demo' (or pass --checkpoint demo)"
)
DEMO_NOTE = ("the demo weights were trained only on synthetic demo scenes "
             "(sam2unext-geo demo); they do not work on real imagery")


def model_loader(checkpoint: str | None, preset: str | None, hiera: Path | None, dinov2: Path | None,
                 device: str, dtype: str = "float32") -> ModelLoader:
    """The loader for the chosen weights; warns on stderr for demo or (partly) random weights.

    Raises:
        CheckpointError: neither a checkpoint nor a preset was given.
        PresetError: unknown preset name.
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
    return ModelLoader(checkpoint=checkpoint, preset=preset, hiera=hiera, dinov2=dinov2, device=device,
                       dtype=dtype)
