"""Choose a scene's bands (numbers, descriptions, colour interpretation) and its stretch to uint8."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.enums import ColorInterp, Resampling

from sam2unext.errors import InputError, option
from sam2unext.geo.reading.opening import Dataset

Stretch = tuple[tuple[float, float], ...]  # per selected band (min, max)


#: Percentiles of the automatic stretch for non-uint8 imagery.
DEFAULT_PERCENTILES = (2.0, 98.0)


#: Longest side of the decimated read used for stretch statistics.
STATS_SIDE = 1024


def alpha_band(src: Dataset) -> int | None:
    """1-based index of the band GDAL marks as alpha, or None."""
    for i, ci in enumerate(src.colorinterp, start=1):
        if ci == ColorInterp.alpha:
            return i
    return None


def _rgb_by_colorinterp(src: Dataset) -> tuple[int, int, int] | None:
    """The bands the file declares red, green and blue, or None."""
    interp: dict = {}
    for i, ci in enumerate(src.colorinterp, start=1):
        interp.setdefault(ci, i)
    if all(c in interp for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)):
        return interp[ColorInterp.red], interp[ColorInterp.green], interp[ColorInterp.blue]
    return None


def default_bands(src: Dataset) -> tuple[int, int, int]:
    """The bands used when none are chosen.

    Rules: the bands whose colour interpretation is red, green and blue when the file declares
    them; otherwise the first three non-alpha bands (see :func:`band_choice_warning` for the
    warning given with more than three); one colour band is used as grey x3.
    """
    rgb = _rgb_by_colorinterp(src)
    if rgb is not None:
        return rgb
    alpha = alpha_band(src)
    colour = [i for i in range(1, src.count + 1) if i != alpha]
    if len(colour) >= 3:
        return colour[0], colour[1], colour[2]
    return colour[0], colour[0], colour[0]


def band_label(src: Dataset, band: int) -> str:
    """``"3 (red)"``: a band index with its description or colour interpretation when known."""
    desc = (src.descriptions[band - 1] or "").strip()
    ci = src.colorinterp[band - 1]
    name = desc or (ci.name if ci not in (ColorInterp.undefined, ColorInterp.gray, ColorInterp.grey) else "")
    return f"{band} ({name})" if name else str(band)


def band_choice_warning(src: Dataset, bands_given: object) -> str | None:
    """The warning to give when the bands were picked by position in a scene of more than three.

    None when the user chose the bands, when the file declares red/green/blue, or when it has
    at most three colour bands (plus alpha).
    """
    if bands_given is not None or _rgb_by_colorinterp(src) is not None:
        return None
    alpha = alpha_band(src)
    colour = [i for i in range(1, src.count + 1) if i != alpha]
    if len(colour) <= 3:
        return None
    used = ", ".join(band_label(src, b) for b in default_bands(src))
    named = [d for d in src.descriptions if d]
    how = f"choose others with {option('bands', '4,3,2')}" + (
        f" (or by description: {', '.join(named[:8])})" if named else ""
    )
    return (
        f"{Path(src.name).name} has {len(colour)} bands and no red/green/blue colour interpretation; "
        f"using bands {used} as red, green, blue; {how}"
    )


def resolve_band_names(src: Dataset, bands: Sequence[int | str]) -> tuple[int, ...]:
    """Turn band numbers and names into 1-based band indexes.

    A name matches a band description (case-insensitive, e.g. ``red`` or ``B04``), else a colour
    interpretation (``red``, ``green``, ``blue``, ``alpha`` ...). Numbers are kept as given.

    Raises:
        InputError: a name that matches no band, or matches several.
    """
    out: list[int] = []
    for b in bands:
        if isinstance(b, (int, np.integer)) or (isinstance(b, str) and b.strip().isdigit()):
            out.append(int(b))
            continue
        name = str(b).strip().lower()
        hits = [i for i, d in enumerate(src.descriptions, start=1) if d and d.strip().lower() == name]
        if not hits:
            hits = [i for i, ci in enumerate(src.colorinterp, start=1) if ci.name.lower() == name]
        if len(hits) != 1:
            named = [f"{i}={d}" for i, d in enumerate(src.descriptions, start=1) if d]
            known = f"its band descriptions are {', '.join(named)}" if named else "it has no band descriptions"
            what = "matches no band" if not hits else f"matches bands {', '.join(map(str, hits))}"
            raise InputError(f"band {b!r} {what} of {Path(src.name).name}; {known}; use band numbers (1-based)")
        out.append(hits[0])
    return tuple(out)


def select_bands(
    src: Dataset,
    bands: Sequence[int | str] | int | str | None,
    n_bands: int = 3,
    default: Sequence[int] | None = None,
) -> tuple[int, ...]:
    """Validate a band selection (numbers or descriptions) and return 1-based band indexes.

    An RGB model (``n_bands`` 3) takes 1 or 3 bands and gets three indexes (grey x3 for one);
    a model that takes another count goes to :func:`select_n_bands`.

    Raises:
        InputError: wrong number of bands, an unknown band name, or an index outside ``1..count``.
    """
    if bands is not None:
        if isinstance(bands, (int, str, np.integer)):
            bands = [b for b in str(bands).replace(" ", "").split(",") if b] if isinstance(bands, str) else [bands]
        bands = resolve_band_names(src, list(bands))
    if n_bands != 3:
        return select_n_bands(src, bands, n_bands, default)
    if bands is None:
        return default_bands(src)
    sel = tuple(bands)
    if len(sel) not in (1, 3):
        raise InputError(f"bands {sel} must name 1 or 3 bands (1-based, e.g. 3,2,1)")
    for b in sel:
        if not 1 <= b <= src.count:
            raise InputError(f"band {b} is out of range for {src.name}, which has bands 1..{src.count}")
    return (sel * 3) if len(sel) == 1 else sel


def select_n_bands(
    src: Dataset,
    bands: Sequence[int] | int | None,
    n_bands: int,
    default: Sequence[int] | None = None,
) -> tuple[int, ...]:
    """The ``n_bands`` 1-based bands read for a multispectral model, in channel order.

    Without ``bands``: ``default`` (the bands the model was trained on) when given, else every
    non-alpha band of a scene that has exactly ``n_bands`` of them.

    Raises:
        InputError: a band count other than ``n_bands`` (the message names both counts), or
            an index outside ``1..count``.
    """
    trained = f" (trained on bands {','.join(map(str, default))})" if default else ""
    if bands is None:
        alpha = alpha_band(src)
        colour = tuple(i for i in range(1, src.count + 1) if i != alpha)
        if default:
            sel = tuple(int(b) for b in default)
            if max(sel) > src.count:
                raise InputError(
                    f"{src.name} has {len(colour)} bands but the model takes {n_bands}{trained}; pass "
                    f"{option('bands', ','.join(['B'] * n_bands))} naming {n_bands} bands of this scene"
                )
        elif len(colour) == n_bands:
            sel = colour
        else:
            raise InputError(
                f"{src.name} has {len(colour)} bands but the model takes {n_bands}; pass "
                f"{option('bands', ','.join(['B'] * n_bands))} naming {n_bands} bands of this scene"
            )
    else:
        sel = (bands,) if isinstance(bands, int) else tuple(int(b) for b in bands)
        if len(sel) != n_bands:
            raise InputError(
                f"bands {','.join(map(str, sel))} name {len(sel)} bands but the model takes {n_bands}{trained}; "
                f"give {n_bands} band numbers of {src.name}"
            )
    for b in sel:
        if not 1 <= b <= src.count:
            raise InputError(f"band {b} is out of range for {src.name}, which has bands 1..{src.count}")
    return sel


def rgb_channels_of(bands: Sequence[int], rgb_bands: Sequence[int]) -> tuple[int, int, int]:
    """0-based positions in ``bands`` of the three bands mapped to the pretrained R, G, B kernels.

    Raises:
        InputError: not three different bands, or one that is not among ``bands``.
    """
    rgb = tuple(int(b) for b in rgb_bands)
    listed = ",".join(map(str, bands))
    if len(rgb) != 3 or len(set(rgb)) != 3:
        raise InputError(f"rgb_bands {','.join(map(str, rgb))} must name three different bands, e.g. 4,3,2")
    missing = [b for b in rgb if b not in bands]
    if missing:
        raise InputError(
            f"rgb band {missing[0]} is not among the bands read ({listed}); pick the R, G, B bands from {listed}"
        )
    return tuple(list(bands).index(b) for b in rgb)  # type: ignore[return-value]


def compute_stretch(
    src: Dataset,
    bands: Sequence[int],
    stretch: Sequence[float] | Sequence[Sequence[float]] | None = None,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
) -> Stretch | None:
    """The scene-wide stretch of the selected bands to 0..255.

    Args:
        src: open dataset.
        bands: 1-based bands (any count).
        stretch: None (uint8 as is, else per-band percentiles from a decimated read, overviews
            used when present), one ``(min, max)`` for all bands, or one pair per band.
        percentiles: low/high percentiles of the automatic stretch.

    Returns:
        Per-band ``(min, max)``, or None when the data are used unchanged.

    Raises:
        InputError: malformed ``stretch``.
    """
    if stretch is not None:
        pairs: list[Any] = list(stretch)  # user input, checked below
        if len(pairs) == 2 and all(np.isscalar(v) for v in pairs):
            pairs = [tuple(pairs)] * len(bands)
        if len(pairs) != len(bands) or any(len(p) != 2 or float(p[1]) <= float(p[0]) for p in pairs):
            raise InputError(
                f"stretch {stretch!r} must be (min, max) with max > min, or one pair per band ({len(bands)} bands)"
            )
        return tuple((float(a), float(b)) for a, b in pairs)
    if all(src.dtypes[b - 1] == "uint8" for b in bands):
        return None
    scale = max(src.height, src.width) / STATS_SIDE
    shape = (max(1, int(src.height / scale)), max(1, int(src.width / scale))) if scale > 1 else (src.height, src.width)
    out = []
    unique = sorted(set(bands))
    data = src.read(unique, out_shape=(len(unique), *shape), masked=True, resampling=Resampling.nearest)
    valid_all = ~np.ma.getmaskarray(data).any(axis=0)
    for b in bands:
        values = np.asarray(data[unique.index(b)])[valid_all]
        values = values[np.isfinite(values)]
        if values.size == 0:
            out.append((0.0, 1.0))
            continue
        lo, hi = np.percentile(values.astype(np.float64), percentiles)
        if hi <= lo:
            hi = lo + 1.0
        out.append((float(lo), float(hi)))
    return tuple(out)


def apply_stretch(data: np.ndarray, stretch: Stretch | None) -> np.ndarray:
    """Map ``[C, H, W]`` band data to uint8 with the scene stretch (rounded, clipped), any C."""
    if stretch is None:
        return data.astype(np.uint8, copy=False)
    out = np.empty(data.shape, dtype=np.uint8)
    for i, (lo, hi) in enumerate(stretch):
        band = (data[i].astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
        np.rint(band, out=band)
        np.clip(band, 0, 255, out=band)
        band[~np.isfinite(band)] = 0
        out[i] = band
    return out


def float_bands(ds: Dataset, bands: Sequence[int]) -> list[int]:
    """The selected bands with a floating-point type (the only ones that can hold NaN/inf)."""
    return sorted(b for b in set(bands) if np.dtype(ds.dtypes[b - 1]).kind in "fc")
