"""Which scene bands a model reads, and how they are stretched: from the model's band config.

A multispectral checkpoint says how many bands it takes, which raster bands it was trained on,
which of them carry the pretrained R, G, B kernels and which stretch it was trained with
(:class:`sam2unext.bands.BandConfig`); :func:`make_model_plan` turns that and the user's
choices into the scene's :class:`~sam2unext.geo.reading.plan.ReadPlan`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Union

from sam2unext.bands import BandConfig
from sam2unext.errors import InputError, option
from sam2unext.geo.reading.array_raster import ArraySource
from sam2unext.geo.reading.plan import ReadPlan, make_plan

#: Bands the user picks: 1-based band numbers or band descriptions (``"red"``, ``"nir"``).
BandChoice = Sequence[Union[int, str]]
#: A stretch the user gives: one ``(min, max)`` for all bands, or one pair per band.
StretchChoice = Union[tuple[float, float], Sequence[tuple[float, float]]]


def make_model_plan(
    path: str | Path | ArraySource,
    config: BandConfig | None = None,
    *,
    bands: BandChoice | None = None,
    stretch: StretchChoice | None = None,
    resolution: float | None = None,
    rgb_bands: Sequence[int] | None = None,
    warn: Callable[[str], None] | None = None,
) -> ReadPlan:
    """The read plan of a scene for the model that will run on it.

    ``config``: the model's bands (:meth:`sam2unext.geo.models.ModelChoice.band_config`;
    None: unknown, an RGB model).

    An RGB model (or one whose bands are unknown) reads as before (1 or 3 bands). A model
    that takes N bands reads N: ``bands`` when given, else the bands it was trained on, else
    all bands of an N-band scene; the stretch is ``stretch`` when given, else the one stored
    in the checkpoint (None there: the scene-wide per-band 2-98 % stretch).

    Raises:
        InputError: a band count other than the model's (both counts named), or
            ``rgb_bands`` that differ from the model's R, G, B mapping.
    """
    if config is None or (config.in_chans == 3 and config.source_bands is None):
        plan = make_plan(path, bands=bands, stretch=stretch, resolution=resolution, rgb_bands=rgb_bands, warn=warn)
        if plan.rgb_channels not in (None, (0, 1, 2)):
            raise InputError(
                f"rgb bands {','.join(map(str, rgb_bands or ()))} are not the bands read "
                f"({','.join(map(str, plan.bands))}) in order, and this RGB model reads its bands as R, G, B; "
                f"pass {option('bands', ','.join(map(str, rgb_bands or ())))} instead"
            )
        return plan
    plan = make_plan(
        path,
        bands=bands,
        stretch=stretch if stretch is not None else config.stretch,
        resolution=resolution,
        n_bands=config.in_chans,
        default_bands=config.source_bands,
        rgb_bands=rgb_bands,
        warn=warn,
    )
    if plan.rgb_channels is not None and tuple(plan.rgb_channels) != tuple(config.rgb_channels):
        model_rgb = ",".join(str(plan.bands[c]) for c in config.rgb_channels)
        raise InputError(
            f"rgb bands {','.join(map(str, rgb_bands or ()))} differ from the model's R, G, B mapping "
            f"(bands {model_rgb} of {','.join(map(str, plan.bands))}); drop rgb_bands or pass {model_rgb}"
        )
    return plan
