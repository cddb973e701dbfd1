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


_HIERA_SIZES = ("large", "base_plus", "small", "tiny")
# DINOv2 partner of each Hiera size (paper: L+L; T+S is its 51 M-parameter variant).
_DINO_FOR_HIERA = {"large": "large", "base_plus": "base", "small": "small", "tiny": "small"}

# Tiny random configurations for tests and the synthetic demo: a real (trainable) small
# network that runs a 256x256 forward pass on CPU in well under a second.
_TEST_HIERA_KWARGS = dict(
    embed_dim=16,
    num_heads=1,
    stages=(1, 1, 2, 1),
    global_att_blocks=(3,),
    window_spec=(8, 4, 8, 8),
    global_pos_size=(7, 7),
)
_TEST_DINO_KWARGS = dict(embed_dim=32, depth=2, num_heads=2)


def _real_presets() -> dict[str, Preset]:
    presets: dict[str, Preset] = {}
    for size in _HIERA_SIZES:
        dino = _DINO_FOR_HIERA[size]
        presets[f"sam2unext-{size}"] = Preset(
            name=f"sam2unext-{size}",
            family="sam2unext",
            hiera=f"sam2_hiera_{size}",
            hiera_embed_dim=HIERA_EMBED_DIMS[size],
            input_size=1024,
            decoder_channels=128,
            dinov2=f"vit_{dino}_patch14_dinov2",
            dinov2_width=DINOV2_WIDTHS[dino],
            low_res_size=448,
            sam2_checkpoint=f"sam2_hiera_{size}.pt",
            description=f"SAM2-UNeXT: Hiera-{size} (1024) + DINOv2-{dino} (448)",
        )
    for size in _HIERA_SIZES:
        presets[f"sam2unet-{size}"] = Preset(
            name=f"sam2unet-{size}",
            family="sam2unet",
            hiera=f"sam2_hiera_{size}",
            hiera_embed_dim=HIERA_EMBED_DIMS[size],
            input_size=352,
            decoder_channels=64,
            sam2_checkpoint=f"sam2_hiera_{size}.pt",
            description=f"SAM2-UNet: Hiera-{size} at 352 (its public training size)",
        )
    return presets


def _test_presets() -> dict[str, Preset]:
    common: dict[str, Any] = dict(
        hiera="sam2_hiera_tiny",
        hiera_embed_dim=_TEST_HIERA_KWARGS["embed_dim"],
        input_size=256,
        hiera_kwargs=dict(_TEST_HIERA_KWARGS),
    )
    return {
        "sam2unext-test": Preset(
            name="sam2unext-test",
            family="sam2unext",
            decoder_channels=32,
            dinov2="vit_small_patch14_dinov2",
            dinov2_width=_TEST_DINO_KWARGS["embed_dim"],
            low_res_size=112,
            dinov2_kwargs=dict(_TEST_DINO_KWARGS),
            description="tiny random SAM2-UNeXT for tests and the demo (256 / 112)",
            **common,
        ),
        "sam2unet-test": Preset(
            name="sam2unet-test",
            family="sam2unet",
            decoder_channels=16,
            description="tiny random SAM2-UNet for tests (256)",
            **common,
        ),
    }


PRESETS: dict[str, Preset] = {**_real_presets(), **_test_presets()}

#: Parameter count of each preset as defined here (three input bands), measured by building it
#: on the meta device with the pinned timm; tests/model/test_model_structure.py rebuilds every
#: preset and checks these figures. Kept as data so that listing the presets needs no torch.
PARAMETER_COUNTS: dict[str, int] = {
    "sam2unext-large": 522_120_081,
    "sam2unext-base_plus": 158_836_737,
    "sam2unext-small": 58_632_865,
    "sam2unext-tiny": 51_435_041,
    "sam2unet-large": 216_529_891,
    "sam2unet-base_plus": 71_836_979,
    "sam2unet-small": 36_745_539,
    "sam2unet-tiny": 29_547_715,
    "sam2unext-test": 472_113,
    "sam2unet-test": 453_843,
}


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
