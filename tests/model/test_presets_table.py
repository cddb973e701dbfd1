"""The preset table is data: every preset and its parameter count, frozen as they were when the
table was written (issue 21 turned the generating loops into one row per preset; nothing changed).

A change here is a change of a released preset: it changes the model a name builds, so make it on
purpose, in both places. A new preset needs nothing here."""

from sam2unext.presets import PARAMETER_COUNTS, PRESETS, Preset, list_presets

#: Every field of every preset, in the order of ``list_presets``.
FROZEN = {
    "sam2unext-large": {
        "name": "sam2unext-large",
        "family": "sam2unext",
        "hiera": "sam2_hiera_large",
        "hiera_embed_dim": 144,
        "input_size": 1024,
        "decoder_channels": 128,
        "dinov2": "vit_large_patch14_dinov2",
        "dinov2_width": 1024,
        "low_res_size": 448,
        "hiera_kwargs": {},
        "dinov2_kwargs": {},
        "sam2_checkpoint": "sam2_hiera_large.pt",
        "description": "SAM2-UNeXT: Hiera-large (1024) + DINOv2-large (448)",
        "in_chans": 3,
    },
    "sam2unext-base_plus": {
        "name": "sam2unext-base_plus",
        "family": "sam2unext",
        "hiera": "sam2_hiera_base_plus",
        "hiera_embed_dim": 112,
        "input_size": 1024,
        "decoder_channels": 128,
        "dinov2": "vit_base_patch14_dinov2",
        "dinov2_width": 768,
        "low_res_size": 448,
        "hiera_kwargs": {},
        "dinov2_kwargs": {},
        "sam2_checkpoint": "sam2_hiera_base_plus.pt",
        "description": "SAM2-UNeXT: Hiera-base_plus (1024) + DINOv2-base (448)",
        "in_chans": 3,
    },
    "sam2unext-small": {
        "name": "sam2unext-small",
        "family": "sam2unext",
        "hiera": "sam2_hiera_small",
        "hiera_embed_dim": 96,
        "input_size": 1024,
        "decoder_channels": 128,
        "dinov2": "vit_small_patch14_dinov2",
        "dinov2_width": 384,
        "low_res_size": 448,
        "hiera_kwargs": {},
        "dinov2_kwargs": {},
        "sam2_checkpoint": "sam2_hiera_small.pt",
        "description": "SAM2-UNeXT: Hiera-small (1024) + DINOv2-small (448)",
        "in_chans": 3,
    },
    "sam2unext-tiny": {
        "name": "sam2unext-tiny",
        "family": "sam2unext",
        "hiera": "sam2_hiera_tiny",
        "hiera_embed_dim": 96,
        "input_size": 1024,
        "decoder_channels": 128,
        "dinov2": "vit_small_patch14_dinov2",
        "dinov2_width": 384,
        "low_res_size": 448,
        "hiera_kwargs": {},
        "dinov2_kwargs": {},
        "sam2_checkpoint": "sam2_hiera_tiny.pt",
        "description": "SAM2-UNeXT: Hiera-tiny (1024) + DINOv2-small (448)",
        "in_chans": 3,
    },
    "sam2unet-large": {
        "name": "sam2unet-large",
        "family": "sam2unet",
        "hiera": "sam2_hiera_large",
        "hiera_embed_dim": 144,
        "input_size": 352,
        "decoder_channels": 64,
        "dinov2": None,
        "dinov2_width": 0,
        "low_res_size": None,
        "hiera_kwargs": {},
        "dinov2_kwargs": {},
        "sam2_checkpoint": "sam2_hiera_large.pt",
        "description": "SAM2-UNet: Hiera-large at 352 (its public training size)",
        "in_chans": 3,
    },
    "sam2unet-base_plus": {
        "name": "sam2unet-base_plus",
        "family": "sam2unet",
        "hiera": "sam2_hiera_base_plus",
        "hiera_embed_dim": 112,
        "input_size": 352,
        "decoder_channels": 64,
        "dinov2": None,
        "dinov2_width": 0,
        "low_res_size": None,
        "hiera_kwargs": {},
        "dinov2_kwargs": {},
        "sam2_checkpoint": "sam2_hiera_base_plus.pt",
        "description": "SAM2-UNet: Hiera-base_plus at 352 (its public training size)",
        "in_chans": 3,
    },
    "sam2unet-small": {
        "name": "sam2unet-small",
        "family": "sam2unet",
        "hiera": "sam2_hiera_small",
        "hiera_embed_dim": 96,
        "input_size": 352,
        "decoder_channels": 64,
        "dinov2": None,
        "dinov2_width": 0,
        "low_res_size": None,
        "hiera_kwargs": {},
        "dinov2_kwargs": {},
        "sam2_checkpoint": "sam2_hiera_small.pt",
        "description": "SAM2-UNet: Hiera-small at 352 (its public training size)",
        "in_chans": 3,
    },
    "sam2unet-tiny": {
        "name": "sam2unet-tiny",
        "family": "sam2unet",
        "hiera": "sam2_hiera_tiny",
        "hiera_embed_dim": 96,
        "input_size": 352,
        "decoder_channels": 64,
        "dinov2": None,
        "dinov2_width": 0,
        "low_res_size": None,
        "hiera_kwargs": {},
        "dinov2_kwargs": {},
        "sam2_checkpoint": "sam2_hiera_tiny.pt",
        "description": "SAM2-UNet: Hiera-tiny at 352 (its public training size)",
        "in_chans": 3,
    },
    "sam2unext-test": {
        "name": "sam2unext-test",
        "family": "sam2unext",
        "hiera": "sam2_hiera_tiny",
        "hiera_embed_dim": 16,
        "input_size": 256,
        "decoder_channels": 32,
        "dinov2": "vit_small_patch14_dinov2",
        "dinov2_width": 32,
        "low_res_size": 112,
        "hiera_kwargs": {
            "embed_dim": 16,
            "num_heads": 1,
            "stages": (1, 1, 2, 1),
            "global_att_blocks": (3,),
            "window_spec": (8, 4, 8, 8),
            "global_pos_size": (7, 7),
        },
        "dinov2_kwargs": {"embed_dim": 32, "depth": 2, "num_heads": 2},
        "sam2_checkpoint": None,
        "description": "tiny random SAM2-UNeXT for tests and the demo (256 / 112)",
        "in_chans": 3,
    },
    "sam2unet-test": {
        "name": "sam2unet-test",
        "family": "sam2unet",
        "hiera": "sam2_hiera_tiny",
        "hiera_embed_dim": 16,
        "input_size": 256,
        "decoder_channels": 16,
        "dinov2": None,
        "dinov2_width": 0,
        "low_res_size": None,
        "hiera_kwargs": {
            "embed_dim": 16,
            "num_heads": 1,
            "stages": (1, 1, 2, 1),
            "global_att_blocks": (3,),
            "window_spec": (8, 4, 8, 8),
            "global_pos_size": (7, 7),
        },
        "dinov2_kwargs": {},
        "sam2_checkpoint": None,
        "description": "tiny random SAM2-UNet for tests (256)",
        "in_chans": 3,
    },
}

FROZEN_PARAMETER_COUNTS = {
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


def test_every_preset_is_as_frozen():
    """A new row may come anywhere; the frozen presets keep their fields and their order."""
    assert [name for name in list_presets() if name in FROZEN] == list(FROZEN)
    for name, fields in FROZEN.items():
        assert PRESETS[name].to_dict() == fields, name
        assert PRESETS[name] == Preset(**fields), name


def test_parameter_counts_are_as_frozen():
    assert {name: PARAMETER_COUNTS[name] for name in FROZEN_PARAMETER_COUNTS} == FROZEN_PARAMETER_COUNTS
    assert list(PARAMETER_COUNTS) == list_presets()


def test_rows_do_not_share_mutable_fields():
    """The two tiny presets each hold their own ``hiera_kwargs`` (changing one must not change the other)."""
    assert PRESETS["sam2unext-test"].hiera_kwargs is not PRESETS["sam2unet-test"].hiera_kwargs
