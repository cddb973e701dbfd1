"""Named model configurations (presets) for SAM2-UNeXT and SAM2-UNet.

A preset says which timm Hiera trunk and which timm DINOv2 ViT to build, at which input
sizes, and how wide the decoder is. It is plain data: importing this module imports no torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sam2unext.errors import PresetError

#: Bottleneck width of the adapter put in front of every Hiera block (public code: 32).
ADAPTER_DIM = 32

#: Hiera first-stage width of each timm ``sam2_hiera_*`` model (stages double it).
HIERA_EMBED_DIMS = {"tiny": 96, "small": 96, "base_plus": 112, "large": 144}
#: Width of each timm DINOv2 ViT.
DINOV2_WIDTHS = {"small": 384, "base": 768, "large": 1024}


@dataclass(frozen=True)
class Preset:
    """One buildable model configuration.

    Attributes:
        name: Preset name, e.g. ``"sam2unext-large"``.
        family: ``"sam2unext"`` (Hiera + DINOv2) or ``"sam2unet"`` (Hiera only).
        hiera: timm model name of the Hiera trunk (``sam2_hiera_*``).
        hiera_embed_dim: Width of the first Hiera stage; stage ``i`` has ``dim * 2**i``.
        input_size: Side of the square tile the model sees (pixels).
        decoder_channels: Decoder width (128 for SAM2-UNeXT, 64 for SAM2-UNet upstream).
        dinov2: timm model name of the DINOv2 ViT, or None for SAM2-UNet.
        dinov2_width: Embedding width of the DINOv2 ViT (0 without one).
        low_res_size: Side of the DINOv2 input (448 upstream), None for SAM2-UNet.
        hiera_kwargs: Extra keyword arguments for ``timm.create_model`` of the trunk.
        dinov2_kwargs: Extra keyword arguments for ``timm.create_model`` of the ViT.
        sam2_checkpoint: File name of Meta's matching SAM2 checkpoint (documentation).
        description: One line for ``list_presets``.
        in_chans: Input channels of both encoders (3: RGB; other counts are adapted from
            the RGB weights, see :mod:`sam2unext.bands`).
    """

    name: str
    family: str
    hiera: str
    hiera_embed_dim: int
    input_size: int
    decoder_channels: int
    dinov2: str | None = None
    dinov2_width: int = 0
    low_res_size: int | None = None
    hiera_kwargs: dict[str, Any] = field(default_factory=dict)
    dinov2_kwargs: dict[str, Any] = field(default_factory=dict)
    sam2_checkpoint: str | None = None
    description: str = ""
    in_chans: int = 3

    @property
    def stage_channels(self) -> tuple[int, int, int, int]:
        """Channels of the four Hiera stage outputs."""
        d = self.hiera_embed_dim
        return (d, 2 * d, 4 * d, 8 * d)

    @property
    def stage_strides(self) -> tuple[int, int, int, int]:
        """Down-sampling factor of the four Hiera stage outputs."""
        return (4, 8, 16, 32)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (stored in checkpoint metadata)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preset:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def with_overrides(self, **changes: Any) -> Preset:
        """A copy with some fields changed (e.g. ``decoder_channels=64`` for a wider demo)."""
        return dataclasses.replace(self, **changes)


# Tiny random networks for tests and the synthetic demo: real (trainable) small networks that
# run a 256x256 forward pass on CPU in well under a second.
_TINY_HIERA_KWARGS: dict[str, Any] = dict(
    embed_dim=16,
    num_heads=1,
    stages=(1, 1, 2, 1),
    global_att_blocks=(3,),
    window_spec=(8, 4, 8, 8),
    global_pos_size=(7, 7),
)
_TINY_DINOV2_KWARGS: dict[str, Any] = dict(embed_dim=32, depth=2, num_heads=2)


def _sam2unext(hiera: str, dinov2: str) -> dict[str, Any]:
    """A SAM2-UNeXT row: timm ``sam2_hiera_<hiera>`` at 1024 + ``vit_<dinov2>_patch14_dinov2`` at 448, decoder 128."""
    return dict(
        family="sam2unext",
        hiera=f"sam2_hiera_{hiera}",
        hiera_embed_dim=HIERA_EMBED_DIMS[hiera],
        input_size=1024,
        decoder_channels=128,
        dinov2=f"vit_{dinov2}_patch14_dinov2",
        dinov2_width=DINOV2_WIDTHS[dinov2],
        low_res_size=448,
        sam2_checkpoint=f"sam2_hiera_{hiera}.pt",
        description=f"SAM2-UNeXT: Hiera-{hiera} (1024) + DINOv2-{dinov2} (448)",
    )


def _sam2unet(hiera: str) -> dict[str, Any]:
    """A SAM2-UNet row: timm ``sam2_hiera_<hiera>`` alone at 352 (its public training size), decoder 64."""
    return dict(
        family="sam2unet",
        hiera=f"sam2_hiera_{hiera}",
        hiera_embed_dim=HIERA_EMBED_DIMS[hiera],
        input_size=352,
        decoder_channels=64,
        sam2_checkpoint=f"sam2_hiera_{hiera}.pt",
        description=f"SAM2-UNet: Hiera-{hiera} at 352 (its public training size)",
    )


def _tiny(family: str, decoder_channels: int, description: str) -> dict[str, Any]:
    """A tiny random row at 256 px; a SAM2-UNeXT one adds a 2-block DINOv2 at 112 px."""
    row: dict[str, Any] = dict(
        family=family,
        hiera="sam2_hiera_tiny",
        hiera_embed_dim=_TINY_HIERA_KWARGS["embed_dim"],
        input_size=256,
        decoder_channels=decoder_channels,
        hiera_kwargs=dict(_TINY_HIERA_KWARGS),
        description=description,
    )
    if family == "sam2unext":
        row.update(
            dinov2="vit_small_patch14_dinov2",
            dinov2_width=_TINY_DINOV2_KWARGS["embed_dim"],
            low_res_size=112,
            dinov2_kwargs=dict(_TINY_DINOV2_KWARGS),
        )
    return row


#: Every preset, one row each: name -> (fields, parameter count with three input bands). The
#: order is the order of ``list_presets``. A new size is one row; a new timm trunk or ViT also
#: gives its width in :data:`HIERA_EMBED_DIMS` / :data:`DINOV2_WIDTHS`. Parameter counts are
#: measured by building the preset on the meta device with the pinned timm:
#: tests/model/test_model_structure.py rebuilds every preset and checks them.
_TABLE: dict[str, tuple[dict[str, Any], int]] = {
    # SAM2-UNeXT (paper: Hiera-L + DINOv2-L; Hiera-T + DINOv2-S is its 51 M-parameter variant)
    "sam2unext-large": (_sam2unext("large", dinov2="large"), 522_120_081),
    "sam2unext-base_plus": (_sam2unext("base_plus", dinov2="base"), 158_836_737),
    "sam2unext-small": (_sam2unext("small", dinov2="small"), 58_632_865),
    "sam2unext-tiny": (_sam2unext("tiny", dinov2="small"), 51_435_041),
    # SAM2-UNet
    "sam2unet-large": (_sam2unet("large"), 216_529_891),
    "sam2unet-base_plus": (_sam2unet("base_plus"), 71_836_979),
    "sam2unet-small": (_sam2unet("small"), 36_745_539),
    "sam2unet-tiny": (_sam2unet("tiny"), 29_547_715),
    # tests and the synthetic demo
    "sam2unext-test": (_tiny("sam2unext", 32, "tiny random SAM2-UNeXT for tests and the demo (256 / 112)"), 472_113),
    "sam2unet-test": (_tiny("sam2unet", 16, "tiny random SAM2-UNet for tests (256)"), 453_843),
}

PRESETS: dict[str, Preset] = {name: Preset(name=name, **fields) for name, (fields, _) in _TABLE.items()}

#: Parameter count of each preset (three input bands), from the table: kept as data so that
#: listing the presets needs no torch.
PARAMETER_COUNTS: dict[str, int] = {name: count for name, (_, count) in _TABLE.items()}


def list_presets() -> list[str]:
    """Names of all presets, in a stable order."""
    return list(PRESETS)


def get_preset(name: str | Preset) -> Preset:
    """Look a preset up by name.

    Args:
        name: A preset name (see :func:`list_presets`) or a :class:`Preset`.

    Returns:
        The preset.

    Raises:
        PresetError: unknown name.
    """
    if isinstance(name, Preset):
        return name
    try:
        return PRESETS[name]
    except KeyError:
        raise PresetError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
