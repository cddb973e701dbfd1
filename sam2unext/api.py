"""Public entry points: build, load and save models."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from sam2unext.bands import BandConfig, adapt_model_bands
from sam2unext.checkpoints import (
    FORMAT_TAG,
    fits,
    load_dinov2,
    load_sam2_hiera,
    load_strict,
    make_metadata,
    read_safetensors,
    read_safetensors_metadata,
    read_state_dict,
    require_file,
    save_state_with_metadata,
    upstream_key_in_file,
    upstream_to_ours,
)
from sam2unext.encoders import build_dinov2, build_hiera_trunk
from sam2unext.errors import CheckpointError, PresetError, UserError, option
from sam2unext.files import write_atomically
from sam2unext.models import SAM2UNet, SAM2UNeXT, SegmentationModel, choose_precision, model_class
from sam2unext.presets import PRESETS, Preset, get_preset
from sam2unext.remote_files import is_remote
from sam2unext.weights import demo_weights_path

DEMO_WEIGHTS = demo_weights_path()


@functools.cache
def _preset_shapes(name: str, part: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a preset's whole model (``part="model"``) or Hiera trunk (``"hiera"``),
    built on the meta device (no memory, no weights)."""
    config = PRESETS[name]
    with torch.device("meta"):
        module = model_class(config)(config) if part == "model" else build_hiera_trunk(config)
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def fitting_presets(state: Mapping[str, Any], part: str = "model") -> list[str]:
    """The presets whose keys and shapes ``state`` fits exactly (ours, after conversion).

    Args:
        state: a converted state dict (our key names).
        part: ``"model"`` (a whole model) or ``"hiera"`` (a Hiera trunk).
    """
    return [name for name in PRESETS if fits(_preset_shapes(name, part), state)]


def build_model(
    preset: str | Preset,
    *,
    hiera: str | Path | None = None,
    dinov2: str | Path | None = None,
    in_chans: int = 3,
    rgb_channels: tuple[int, int, int] = (0, 1, 2),
    band_fill: str = "repeat",
    **overrides: Any,
) -> SegmentationModel:
    """Build a model for ``preset`` (random adapters/glue/decoder; encoders from files).

    Args:
        preset: Preset name or :class:`Preset`.
        hiera: Meta ``sam2_hiera_*.pt`` (SAM2 or SAM2.1) for the trunk; random if None.
        dinov2: DINOv2 weights (timm safetensors or Meta ``.pth``); random if None.
        in_chans: Input bands N. Other than 3, the RGB encoders are built and loaded first,
            then their first convolutions are widened to N channels
            (:func:`sam2unext.bands.adapt_model_bands`) and made trainable.
        rgb_channels: 0-based channels that carry the pretrained R, G, B kernels.
        band_fill: ``"repeat"`` (timm's adaptation) or ``"zero"`` for the other channels.
        **overrides: Preset fields to change, e.g. ``decoder_channels=64``.

    Returns:
        The model, in training mode, on CPU, float32.

    Raises:
        PresetError: unknown preset, a ``dinov2`` file for a SAM2-UNet preset, bad override.
        CheckpointError: an encoder file that is missing, unsafe or does not fit.
    """
    config = get_preset(preset)
    if in_chans == 3:
        in_chans = int(overrides.pop("in_chans", config.in_chans))
    overrides.pop("in_chans", None)
    model = _build_rgb(config.with_overrides(in_chans=3), hiera, dinov2, overrides)
    if in_chans != 3 or tuple(rgb_channels) != (0, 1, 2):
        adapt_model_bands(model, int(in_chans), rgb_channels, fill=band_fill)
    return model


def _build_rgb(
    config: Preset, hiera: str | Path | None, dinov2: str | Path | None, overrides: dict[str, Any]
) -> SegmentationModel:
    if overrides:
        try:
            config = config.with_overrides(**overrides)
        except TypeError as exc:
            raise PresetError(f"bad preset override for {config.name!r}: {exc}") from None
    trunk = build_hiera_trunk(config)
    if hiera is not None:
        load_sam2_hiera(trunk, hiera, config.name, fitting=lambda state: fitting_presets(state, "hiera"))
    if config.family == "sam2unet":
        if dinov2 is not None:
            raise PresetError(f"preset {config.name!r} has no DINOv2 branch; drop the dinov2 file")
        return SAM2UNet(config, trunk=trunk)
    dino = build_dinov2(config)
    if dinov2 is not None:
        load_dinov2(dino, dinov2, config.name)
    return SAM2UNeXT(config, trunk=trunk, dino=dino)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; other names go to ``torch.device``.

    Raises:
        UserError: unknown or unavailable device.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device {device!r}; use auto, cpu or cuda[:N]") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but CUDA is not available; use cpu or auto")
    return resolved


def _metadata_preset(path: str | Path, metadata: dict[str, str]) -> Preset:
    """The preset stored in our metadata, after checking it is complete and consistent.

    Raises:
        CheckpointError: missing or unreadable ``preset_config``, an unknown ``preset`` name, or a
            ``preset`` that contradicts ``preset_config``.
    """
    name = metadata.get("preset")
    raw = metadata.get("preset_config")
    redo = "re-save the model with save_checkpoint"
    if not raw:
        raise CheckpointError(f"{path} has sam2unext-geo metadata but no preset_config; {redo}")
    try:
        data = json.loads(raw)
        config = Preset.from_dict(data)
    except (ValueError, TypeError) as exc:
        first = " ".join(str(exc).split())[:120]
        raise CheckpointError(f"{path}: its preset_config metadata is broken ({first}); {redo}") from None
    if name is not None and name != config.name:
        raise CheckpointError(
            f"{path}: its metadata names preset {name!r} but its preset_config is for "
            f"{config.name!r}; the file is inconsistent, {redo}"
        )
    if config.name not in PRESETS:
        raise CheckpointError(
            f"{path} was saved for preset {config.name!r}, which this version does not know "
            f"(known: {', '.join(PRESETS)}); update sam2unext-geo or {redo}"
        )
    return config


def _load_ours(path: Path, preset: str | None) -> SegmentationModel:
    state, metadata = read_safetensors(path)
    if metadata.get("format") != FORMAT_TAG:
        if preset is None:
            raise CheckpointError(
                f"{path} has no sam2unext-geo metadata; pass {option('preset', 'NAME')} to read it as a public "
                f"SAM2-UNeXT/SAM2-UNet state_dict" + _fit_hint(upstream_to_ours(state))
            )
        return _load_upstream_state(state, path, preset)
    config = _metadata_preset(path, metadata)
    if preset is not None and get_preset(preset).name != config.name:
        raise PresetError(f"{path} was saved for preset {config.name!r}, not {preset!r}; drop the preset argument")
    model = model_class(config)(config)
    load_strict(model, state, preset=config.name, source=path, what="sam2unext-geo checkpoint")
    model.task = metadata.get("task") or None
    try:
        model.extra = json.loads(metadata.get("extra") or "{}")
    except ValueError:
        raise CheckpointError(f"{path}: its extra metadata is not valid JSON; re-save the model") from None
    model.bands = BandConfig.from_json(metadata.get("bands"), config.in_chans)
    if model.bands.in_chans != config.in_chans:
        raise CheckpointError(
            f"{path}: band metadata says {model.bands.in_chans} bands but the weights take "
            f"{config.in_chans}; the file is inconsistent, re-save it"
        )
    return model


def _fit_hint(state: Mapping[str, Any]) -> str:
    """`` (its shapes fit preset 'x')`` for a converted state dict, or nothing."""
    try:
        names = fitting_presets(state)
    except Exception:  # a hint must never hide the real message
        return ""
    return f" (its keys and shapes fit preset {' / '.join(names)})" if names else ""


def _load_upstream_state(state: dict, path: Path, preset: str) -> SegmentationModel:
    config = get_preset(preset)
    family = (
        "sam2unext"
        if any(k.startswith("sam.") for k in state)
        else ("sam2unet" if any(k.startswith("encoder.") for k in state) else None)
    )
    if family is None and any(k.startswith("image_encoder.") or k.startswith("model") for k in state):
        raise CheckpointError(
            f"{path} is a SAM2 foundation checkpoint, not a trained segmentation model; pass it "
            f"as the Hiera checkpoint (hiera=...) instead"
        )
    if family is not None and family != config.family:
        raise PresetError(
            f"{path} is a {family} checkpoint but preset {config.name!r} is {config.family}; pick a {family}-* preset"
        )
    model = model_class(config)(config)
    ours = upstream_to_ours(state)
    load_strict(
        model,
        ours,
        preset=config.name,
        source=path,
        what=f"public {config.family} checkpoint",
        key_in_file=upstream_key_in_file,
        fitting=lambda: fitting_presets(ours),
    )
    return model


def load_model(
    checkpoint: str | Path | None = None,
    preset: str | None = None,
    *,
    hiera: str | Path | None = None,
    dinov2: str | Path | None = None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    compile: bool = False,
    in_chans: int | None = None,
    rgb_channels: tuple[int, int, int] = (0, 1, 2),
    band_fill: str = "repeat",
) -> SegmentationModel:
    """A ready-to-predict model (eval mode, on ``device``).

    Args:
        checkpoint: Our ``.safetensors`` (preset from its metadata), a public SAM2-UNeXT/
            SAM2-UNet ``.pth`` state_dict (needs ``preset``), ``"demo"`` (bundled tiny demo
            weights), or None (build ``preset`` from ``hiera``/``dinov2`` files).
        preset: Preset name; required for public ``.pth`` files and for ``checkpoint=None``.
        hiera: Meta SAM2 checkpoint for the trunk (only with ``checkpoint=None``).
        dinov2: DINOv2 checkpoint (only with ``checkpoint=None``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        dtype: Compute dtype of :meth:`SegmentationModel.predict`: ``auto`` (``bfloat16`` on
            CUDA, ``float32`` on CPU: :func:`sam2unext.models.choose_precision`), ``float32``
            (bit-exact), ``bfloat16`` (on a CPU faster only with AVX512-BF16 or AMX) or
            ``float16`` (CUDA only; on CPU it falls back to float32 with a warning). Weights
            stay float32; reduced precision runs under ``torch.autocast``. The model's
            ``inference_dtype`` and ``precision_reason`` say what was chosen and why.
        compile: wrap the forward pass in ``torch.compile`` (the first batch then takes the
            compile time; see ``bench/cpu_precision.py`` and ``bench/gpu_throughput.py``).
        in_chans: Bands the model must take (None: what the checkpoint takes). An RGB
            checkpoint or preset is widened to ``in_chans`` from its RGB weights
            (``rgb_channels``, ``band_fill``: see :func:`build_model`); a multispectral
            checkpoint with another band count is refused.
        rgb_channels: Channels carrying the pretrained R, G, B kernels when widening.
        band_fill: ``"repeat"`` (timm) or ``"zero"`` extra kernels when widening.

    Returns:
        The model.

    Raises:
        PresetError, CheckpointError, UserError: see the message.
    """
    target = resolve_device(device)
    compute = choose_precision(dtype, target)
    if checkpoint is None:
        if preset is None:
            raise PresetError("give a checkpoint file or a preset name")
        model = build_model(
            preset, hiera=hiera, dinov2=dinov2, in_chans=in_chans or 3, rgb_channels=rgb_channels, band_fill=band_fill
        )
    else:
        if hiera is not None or dinov2 is not None:
            raise CheckpointError(
                "hiera/dinov2 files are only used when building from a preset; a whole-model "
                "checkpoint already holds the encoders"
            )
        if str(checkpoint) == "demo":
            if not DEMO_WEIGHTS.is_file():
                raise CheckpointError(
                    f"demo weights not found at {DEMO_WEIGHTS}; reinstall the package or pass a checkpoint file"
                )
            path = DEMO_WEIGHTS
        else:
            path = require_file(checkpoint)
        if path.suffix == ".safetensors":
            model = _load_ours(path, preset)
        else:
            state = read_state_dict(path)  # refuses pickled objects before anything else is said
            if preset is None:
                raise PresetError(
                    f"{path} is a plain state_dict of tensors; pass the preset it was trained with "
                    f"(e.g. sam2unext-large){_fit_hint(upstream_to_ours(state))}"
                )
            model = _load_upstream_state(state, path, preset)
        if in_chans is not None and in_chans != model.in_chans:
            if model.in_chans != 3:
                raise CheckpointError(
                    f"{path} takes {model.in_chans} bands, not {in_chans}; give {model.in_chans} bands "
                    f"or fine-tune a model for {in_chans}"
                )
            adapt_model_bands(model, int(in_chans), rgb_channels, fill=band_fill)
    model.inference_dtype, model.precision_reason = compute.dtype, compute.reason
    model = model.to(target).eval()
    if compile:
        model.forward = torch.compile(model.forward, dynamic=False)
    return model


def save_checkpoint(
    model: SegmentationModel, path: str | Path, *, task: str | None = None, extra: dict | None = None
) -> Path:
    """Save ``model`` as safetensors with the metadata :func:`load_model` needs.

    Written under a temporary name and renamed, so ``path`` is never left half-written.

    Args:
        model: A model from :func:`build_model` / :func:`load_model`.
        path: Output ``.safetensors`` file.
        task: Free-text task label (e.g. ``"buildings"``).
        extra: JSON-serialisable extra metadata (training settings, metrics ...).

    Returns:
        The written path.

    Raises:
        CheckpointError: extra is not JSON-serialisable.
    """
    path = Path(path)
    try:
        bands = getattr(model, "bands", None)
        metadata = make_metadata(model.config.to_dict(), task, extra, bands.to_json() if bands is not None else None)
    except TypeError as exc:
        raise CheckpointError(f"extra metadata for {path} is not JSON-serialisable: {exc}") from None
    write_atomically(
        path,
        lambda tmp: save_state_with_metadata(model.state_dict(), tmp, metadata),
        tmp=path.with_name(path.stem + ".tmp" + path.suffix),
    )
    return path


def read_checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """Metadata of one of our checkpoints: ``preset``, ``task``, ``extra`` (decoded), ``bands``
    (a :class:`~sam2unext.bands.BandConfig`), ...

    Raises:
        CheckpointError: missing/unreadable file or no sam2unext-geo metadata.
    """
    metadata = read_safetensors_metadata(path)
    if metadata.get("format") != FORMAT_TAG:
        raise CheckpointError(f"{path} is not a sam2unext-geo checkpoint (no format metadata)")
    return {
        "format": metadata["format"],
        "preset": metadata.get("preset"),
        "preset_config": json.loads(metadata.get("preset_config") or "{}"),
        "task": metadata.get("task") or None,
        "extra": json.loads(metadata.get("extra") or "{}"),
        "bands": BandConfig.from_json(
            metadata.get("bands"), int(json.loads(metadata.get("preset_config") or "{}").get("in_chans", 3))
        ),
    }


def checkpoint_bands(checkpoint: str | Path | None) -> BandConfig:
    """The input a checkpoint expects, read from its metadata only (no weights loaded).

    Our multispectral checkpoints store it; ``"demo"``, upstream ``.pth`` files, our older
    files and None (a preset) take RGB.

    Raises:
        CheckpointError: a missing or unreadable ``.safetensors`` file.
    """
    if checkpoint is None:
        return BandConfig()
    path = DEMO_WEIGHTS if str(checkpoint) == "demo" else checkpoint if is_remote(checkpoint) else Path(checkpoint)
    if PurePosixPath(str(path)).suffix != ".safetensors":
        return BandConfig()
    metadata = read_safetensors_metadata(path)
    if metadata.get("format") != FORMAT_TAG:
        return BandConfig()
    config = _metadata_preset(path, metadata)
    return BandConfig.from_json(metadata.get("bands"), int(config.in_chans))
