"""Reading, converting and strictly loading weights; our safetensors format.

Supported sources:

1. Meta's ``sam2_hiera_*.pt`` / ``sam2.1_hiera_*.pt`` (``{"model": ...}``, trunk under
   ``image_encoder.trunk.``) into the Hiera trunk (:func:`sam2_to_timm_hiera`, timm's
   own ``hieradet_sam2.checkpoint_filter_fn``).
2. DINOv2: timm's ``model.safetensors`` or Meta's ``dinov2_vit*14_pretrain.pth``, converted
   and position-resampled by timm's own ``checkpoint_filter_fn``.
3. Whole models saved by the public SAM2-UNeXT / SAM2-UNet training code
   (:func:`upstream_to_ours`).
4. Our format: safetensors + metadata (``format``, ``preset``, ``preset_config``, ``task``,
   ``extra``, ``bands``).

Nothing here ever unpickles arbitrary objects: ``.pt``/``.pth`` go through
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import json
import pickle
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn as nn

from sam2unext.errors import CheckpointError
from sam2unext.remote_files import cached_copy, is_remote, safetensors_metadata

FORMAT_TAG = "sam2unext-geo"
SAM2_TRUNK_PREFIX = "image_encoder.trunk."
# Hiera MLP names: public code (Meta's ``mlp.layers.N``) -> timm (``mlp.fc1/fc2``).
_MLP_RENAMES = (("mlp.layers.0.", "mlp.fc1."), ("mlp.layers.1.", "mlp.fc2."))
# Where the public SAM2-UNeXT / SAM2-UNet models keep the (adapted) Hiera blocks.
_ADAPTED_BLOCKS = ("sam.blocks.", "encoder.blocks.")
# Keys a full DINOv2 checkpoint has that the features-only (pruned) ViT does not.
_DINO_DROPPABLE = re.compile(r"^(norm\.|fc_norm\.|head\.|head_drop\.|mask_token$)")


def require_file(path: str | Path) -> Path:
    """``path`` as a :class:`Path` if it is an existing file; a URL's local copy (fetched once per machine).

    Raises:
        CheckpointError: the file does not exist, or the URL cannot be read.
    """
    if is_remote(path):
        return cached_copy(str(path))
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; check the path")
    return path


def torch_load_safe(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True`` on CPU; unsafe pickles are refused.

    Raises:
        CheckpointError: missing file, a pickle payload that is not plain tensors/containers,
            or a file torch cannot read as a checkpoint (truncated, random bytes, another format).
    """
    path = require_file(path)
    try:
        with warnings.catch_warnings():  # torch's note on an unusual pickle protocol says nothing useful here
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unpickler_reason(str(exc))
        if _holds_objects(path, reason):
            raise CheckpointError(
                f"refusing {path}: it holds pickled Python objects, and pickled objects are refused (they can run "
                f"code when loaded; only plain tensors are read: {reason}); re-save it as a plain state_dict, "
                f"e.g. torch.save(model.state_dict(), path)"
            ) from None
        raise _unreadable(path, reason) from None
    except (RuntimeError, EOFError, OSError, ValueError, LookupError) as exc:
        # Random or truncated bytes reach torch's unpickler as any of these (IndexError,
        # KeyError, UnicodeDecodeError, ...); none of them means the file holds objects.
        raise _unreadable(path, _unpickler_reason(str(exc)) or type(exc).__name__) from None


#: What torch's weights-only unpickler says of a real object in a pickle (a class, a function).
_REFUSED_GLOBAL = re.compile(r"\bUnsupported global\b|\bGLOBAL\b|\bnot an allowed global\b")
#: Longest quote of torch's own words in a message.
_QUOTE_CHARS = 160


def _holds_objects(path: Path, reason: str) -> bool:
    """Whether a file torch's weights-only unpickler refused is a pickle of Python objects.

    True for a file that starts as a binary pickle (protocol 2 to 5: a ``pickle.dump`` of
    objects), or a torch zip archive whose pickle names a class or function. Random bytes
    make the unpickler fail in the same way, but start as neither.
    """
    with open(path, "rb") as handle:
        head = handle.read(4)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    return head.startswith(b"PK\x03\x04") and _REFUSED_GLOBAL.search(reason) is not None


def _unpickler_reason(text: str) -> str:
    """The one sentence of a ``torch.load`` error that says what is wrong, cut at a word boundary.

    torch wraps the reason (``Unsupported operand 154``, ``Trying to load unsupported GLOBAL
    posix.system ...``) in several lines of advice about ``weights_only``; only the reason is
    quoted.
    """
    import textwrap

    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    found = re.search(r"(?:Unsupported|Trying to load unsupported)[^\n]*", text)
    reason = found.group(0) if found else (text.strip().splitlines() or [""])[0]
    reason = reason.strip()
    first = re.match(r"(.+?\.)(\s|$)", reason)  # the first sentence
    reason = first.group(1) if first else reason
    return textwrap.shorten(reason, _QUOTE_CHARS, placeholder=" ...")


def _unreadable(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(
        f"cannot read checkpoint {path}: it is not a checkpoint torch can read (torch.load says: {reason}); "
        f"give the .safetensors, .pt or .pth file the weights were saved to"
    )


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and string metadata of a ``.safetensors`` file.

    Raises:
        CheckpointError: missing or malformed file.
    """
    from safetensors import safe_open

    path = require_file(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises its own SafetensorError / OSError
        raise CheckpointError(f"cannot read safetensors file {path}: {exc}") from None
    return tensors, metadata


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file (tensors are not read).

    Raises:
        CheckpointError: missing or malformed file.
    """
    from safetensors import safe_open

    if is_remote(path):
        return safetensors_metadata(str(path))  # the header only: no download of the weights
    path = require_file(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return dict(handle.metadata() or {})
    except Exception as exc:  # safetensors raises its own SafetensorError / OSError
        raise CheckpointError(f"cannot read safetensors file {path}: {exc}") from None


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """A state dict from ``.safetensors`` or (safely) from a torch ``.pt``/``.pth`` file.

    Raises:
        CheckpointError: missing, unsafe or unreadable file, or not a mapping.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path)[0]
    data = torch_load_safe(path)
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a state_dict")
    return dict(data)


def _rename_mlp(key: str, renames: tuple[tuple[str, str], ...] = _MLP_RENAMES) -> str:
    for old, new in renames:
        key = key.replace(old, new)
    return key


def sam2_to_timm_hiera(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Meta SAM2/SAM2.1 checkpoint -> timm ``HieraDet`` state dict (pure function).

    Keeps only keys under ``image_encoder.trunk.``, strips that prefix and renames the MLP
    (``mlp.layers.0/1`` -> ``mlp.fc1/fc2``). Accepts the ``{"model": ...}`` wrapper or the
    inner dict. This is timm's own ``hieradet_sam2.checkpoint_filter_fn`` with the SAM2
    trunk prefix (timm 1.0.31, pinned in pyproject.toml); the official key layouts of all
    four sizes are checked against it in ``tests/model/test_model_checkpoints.py``.
    """
    from timm.models.hieradet_sam2 import checkpoint_filter_fn

    return checkpoint_filter_fn(dict(checkpoint), prefix=SAM2_TRUNK_PREFIX)


def upstream_to_ours(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Public SAM2-UNeXT/SAM2-UNet ``state_dict`` -> ours (pure function).

    Only the Hiera MLP inside the adapted blocks is renamed; every other key is identical.
    """
    return {_rename_mlp(k) if k.startswith(_ADAPTED_BLOCKS) else k: v for k, v in state.items()}


def ours_to_upstream(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`upstream_to_ours` (for exporting to the public code)."""
    inverse = tuple((new, old) for old, new in _MLP_RENAMES)
    return {_rename_mlp(k, inverse) if k.startswith(_ADAPTED_BLOCKS) else k: v for k, v in state.items()}


def sam2_key_in_file(key: str) -> str:
    """Where a timm Hiera trunk key comes from in Meta's SAM2 checkpoint (inverse renaming)."""
    return SAM2_TRUNK_PREFIX + key.replace("mlp.fc1.", "mlp.layers.0.").replace("mlp.fc2.", "mlp.layers.1.")


def upstream_key_in_file(key: str) -> str:
    """Where one of our whole-model keys comes from in a public SAM2-UNeXT/SAM2-UNet file."""
    return next(iter(ours_to_upstream({key: None})))


def check_state_dict(
    expected: Mapping[str, Any],
    state: Mapping[str, Any],
    *,
    preset: str,
    source: str | Path,
    what: str,
    key_in_file: Callable[[str], str] | None = None,
    fitting: Callable[[], list[str]] | None = None,
) -> None:
    """Require ``state`` to have exactly the keys and shapes of ``expected``.

    Args:
        expected: Target keys -> tensors (or anything with ``.shape``; meta tensors work).
        state: Converted state dict (values with ``.shape``).
        preset: Preset name (for the error message).
        source: File the weights came from (for the error message).
        what: What the file should be, e.g. ``"SAM2 Hiera checkpoint"``.
        key_in_file: Maps a converted key back to its name in the user's file, so that the
            message names the key as the user sees it (default: unchanged).
        fitting: Called on a mismatch: the presets whose keys and shapes the file does fit.

    Raises:
        CheckpointError: one line naming the first missing/unexpected/mis-shaped key (as in the
            file), the preset, the file, and the presets the file fits when there are any.
    """
    named = key_in_file or (lambda k: k)

    def advice(default: str) -> str:
        fits = [p for p in (fitting() if fitting else []) if p != preset]
        if fits:
            return f"its keys and shapes fit preset {' / '.join(map(repr, fits))}; pass that preset"
        return default

    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        raise CheckpointError(
            f"{source}: missing key {named(missing[0])!r} ({len(missing)} missing) for preset {preset!r}; "
            + advice(f"is it a {what} for this preset?")
        )
    if unexpected:
        raise CheckpointError(
            f"{source}: unexpected key {named(unexpected[0])!r} ({len(unexpected)} unexpected) for "
            f"preset {preset!r}; " + advice(f"is it a {what} for this preset?")
        )
    for key, target in expected.items():
        value = state[key]
        if not hasattr(value, "shape"):
            raise CheckpointError(f"{source}: key {named(key)!r} is not a tensor (preset {preset!r})")
        if tuple(value.shape) != tuple(target.shape):
            raise CheckpointError(
                f"{source}: key {named(key)!r} has shape {tuple(value.shape)} but preset {preset!r} "
                f"needs {tuple(target.shape)}; " + advice(f"pick the preset this {what} was made for")
            )


def fits(expected: Mapping[str, tuple[int, ...]], state: Mapping[str, Any]) -> bool:
    """True when ``state`` has exactly the keys of ``expected`` with those shapes."""
    return state.keys() == expected.keys() and all(
        tuple(getattr(state[k], "shape", ())) == tuple(v) for k, v in expected.items()
    )


def load_strict(
    module: nn.Module,
    state: Mapping[str, Any],
    *,
    preset: str,
    source: str | Path,
    what: str,
    key_in_file: Callable[[str], str] | None = None,
    fitting: Callable[[], list[str]] | None = None,
) -> None:
    """Load ``state`` into ``module`` after :func:`check_state_dict` (same keys and shapes).

    Raises:
        CheckpointError: see :func:`check_state_dict`.
    """
    check_state_dict(
        module.state_dict(), state, preset=preset, source=source, what=what, key_in_file=key_in_file, fitting=fitting
    )
    module.load_state_dict(state, strict=True)


def load_sam2_hiera(
    trunk: nn.Module, path: str | Path, preset: str, fitting: Callable[[Mapping[str, Any]], list[str]] | None = None
) -> None:
    """Load Meta's ``sam2_hiera_*.pt`` (SAM2 or SAM2.1) into a plain timm Hiera trunk.

    ``fitting(state)`` names the presets whose trunk the converted state fits (for the message).

    Raises:
        CheckpointError: unreadable/unsafe file, no trunk keys, or a mismatch.
    """
    raw = read_state_dict(path)
    state = sam2_to_timm_hiera(raw)
    if not state:
        raise CheckpointError(
            f"{path}: no '{SAM2_TRUNK_PREFIX}*' keys; pass Meta's sam2_hiera_*.pt as the Hiera "
            f"checkpoint for preset {preset!r}"
        )
    load_strict(
        trunk,
        state,
        preset=preset,
        source=path,
        what="SAM2 Hiera checkpoint",
        key_in_file=sam2_key_in_file,
        fitting=(lambda: fitting(state)) if fitting else None,
    )


def load_dinov2(dino: nn.Module, path: str | Path, preset: str) -> None:
    """Load a DINOv2 checkpoint (timm safetensors or Meta ``.pth``) into the feature getter.

    timm's ``checkpoint_filter_fn`` converts Meta's keys and resamples the positional
    embedding to the model's grid (bicubic, antialiased: what the public code's timm
    ``pretrained=True`` loading does). The final norm/head, absent from the features-only
    model, are dropped.

    Raises:
        CheckpointError: unreadable/unsafe file or a mismatch.
    """
    from timm.models.vision_transformer import checkpoint_filter_fn

    raw = read_state_dict(path)
    vit = cast(Any, dino).model  # the ViT inside timm's FeatureGetterNet
    try:
        state = checkpoint_filter_fn(dict(raw), vit)
    except Exception as exc:  # malformed tensors make timm's resampling fail
        raise CheckpointError(f"{path}: not a DINOv2 checkpoint for preset {preset!r} ({exc})") from None
    expected = vit.state_dict()
    state = {k: v for k, v in state.items() if k in expected or not _DINO_DROPPABLE.match(k)}
    load_strict(vit, state, preset=preset, source=path, what="DINOv2 checkpoint")


def save_state_with_metadata(state: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, str]) -> None:
    """Write tensors + string metadata as safetensors (contiguous CPU copies)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    save_file(tensors, str(path), metadata=dict(metadata))


def make_metadata(
    preset_config: dict, task: str | None, extra: dict | None, bands: str | None = None
) -> dict[str, str]:
    """Our metadata block: every value a string, as safetensors requires.

    ``bands`` is the JSON of the model's :class:`~sam2unext.bands.BandConfig` (band count,
    RGB mapping, normalization); absent in checkpoints from before multispectral models,
    which read as RGB.
    """
    metadata = {
        "format": FORMAT_TAG,
        "preset": preset_config["name"],
        "preset_config": json.dumps(preset_config),
        "task": task or "",
        "extra": json.dumps(extra or {}),
    }
    if bands is not None:
        metadata["bands"] = bands
    return metadata
