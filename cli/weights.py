"""Which weights a command runs with: checks and warnings around the one model factory (``ModelLoader``)."""

from __future__ import annotations

from pathlib import Path

from sam2unext.errors import CheckpointError, cli_words, render_options
from sam2unext.loader import ModelLoader, weights_note

from .formatting import warn

NO_WEIGHTS = (
    "no weights given: pass --checkpoint FILE, a trained SAM2-UNeXT/SAM2-UNet checkpoint (an "
    "upstream .pth also needs --preset NAME; see 'Getting the official weights' in the README); "
    "to try the tool without weights run 'sam2unext-geo demo' (or pass --checkpoint demo)"
)


def model_loader(
    checkpoint: str | None,
    preset: str | None,
    hiera: Path | None,
    dinov2: Path | None,
    device: str,
    precision: str = "auto",
    compile: bool = False,
    bands=None,
    rgb_bands=None,
) -> ModelLoader:
    """The loader for the chosen weights; warns on stderr for demo or (partly) random weights.

    Without a checkpoint, more than three ``bands`` build an N-band model from the preset's
    RGB weights (``rgb_bands``: which of them are R, G, B; default the first three).

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
    note = weights_note(checkpoint, preset, hiera, dinov2)
    if note:
        warn(render_options(note, cli_words))
    widen = {}
    if checkpoint is None and bands is not None and len(bands) > 3:
        from sam2unext.geo.reading.bands import rgb_channels_of

        widen = {
            "in_chans": len(bands),
            "rgb_channels": rgb_channels_of(bands, rgb_bands if rgb_bands is not None else tuple(bands)[:3]),
        }
    return ModelLoader(
        checkpoint=checkpoint,
        preset=preset,
        hiera=hiera,
        dinov2=dinov2,
        device=device,
        dtype=precision,
        compile=compile,
        **widen,
    )


def precision_line(loader: ModelLoader) -> str:
    """What precision the loader's model runs in and why, e.g. ``bfloat16 autocast (auto: this CPU has ...)``.

    The rule ``load_model`` applies (:func:`sam2unext.models.choose_precision`) for the loader's device.
    """
    import warnings

    from sam2unext.api import resolve_device
    from sam2unext.precision import choose_precision

    with warnings.catch_warnings():  # float16 on a CPU was already warned about when the model loaded
        warnings.simplefilter("ignore")
        return choose_precision(loader.kwargs["dtype"], resolve_device(loader.kwargs["device"])).describe()
