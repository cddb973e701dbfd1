"""Geospatial processor: large rasters → tile pairs → batched model → seamless COG → polygons.

Public API::

    from sam2unext.geo import predict_raster, predict_scenes, vectorize_raster, describe_raster, PredictResult
    from sam2unext.geo import SceneOptions, plan_scene, check_scene   # one scene's options and plan

The names are imported on first use, so that importing a light submodule (e.g.
``sam2unext.geo.progress`` for the command's help) does not import torch and GDAL.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sam2unext.geo.api import (
        check_scene,
        default_output,
        describe_raster,
        predict_raster,
        predict_scenes,
    )
    from sam2unext.geo.options import SceneOptions
    from sam2unext.geo.progress import BarProgress, JsonProgress, Progress, make_progress
    from sam2unext.geo.result import PredictResult
    from sam2unext.geo.scene_plan import ScenePlan, plan_scene
    from sam2unext.geo.vectors.vectorize import VectorResult, vectorize_raster

#: Public name → the submodule that defines it.
_HOME = {
    "PredictResult": "result",
    "SceneOptions": "options",
    "ScenePlan": "scene_plan",
    "plan_scene": "scene_plan",
    "check_scene": "api",
    "default_output": "api",
    "describe_raster": "api",
    "predict_raster": "api",
    "predict_scenes": "api",
    "BarProgress": "progress",
    "JsonProgress": "progress",
    "Progress": "progress",
    "make_progress": "progress",
    "VectorResult": "vectors.vectorize",
    "vectorize_raster": "vectors.vectorize",
}

__all__ = [
    "BarProgress",
    "JsonProgress",
    "PredictResult",
    "Progress",
    "SceneOptions",
    "ScenePlan",
    "VectorResult",
    "check_scene",
    "default_output",
    "describe_raster",
    "make_progress",
    "plan_scene",
    "predict_raster",
    "predict_scenes",
    "vectorize_raster",
]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
        globals()[name] = value  # later lookups are plain attribute reads
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
