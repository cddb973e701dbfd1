"""Reference computations for the geo tests."""

from __future__ import annotations

import numpy as np
import rasterio

from sam2unext.geo.reading import apply_stretch, make_plan
from sam2unext.geo.testing import pixel_function
from sam2unext.geo.writing import quantize_probability


def whole_scene_probability(path, **plan_kwargs) -> tuple[np.ndarray, np.ndarray]:
    """The stand-in's function on the whole scene (float32 [H, W]) and the validity mask."""
    plan = make_plan(path, **plan_kwargs)
    with rasterio.open(path) as src:
        unique = sorted(set(plan.bands))
        data = src.read(unique)[[unique.index(b) for b in plan.bands]]
        valid = np.all(src.read_masks(unique) > 0, axis=0)
    u8 = apply_stretch(data, plan.stretch)
    prob = pixel_function(u8[None].astype(np.float32) / np.float32(255.0))[0, 0]
    return prob, valid


def expected_uint8(path, **plan_kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Expected uint8 output and validity for the stand-in."""
    prob, valid = whole_scene_probability(path, **plan_kwargs)
    return quantize_probability(prob), valid
