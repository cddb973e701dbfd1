"""Geospatial processor: large rasters → tile pairs → batched model → seamless COG → polygons.

Public API::

    from sam2unext.geo import predict_raster, predict_scenes, vectorize_raster, describe_raster, PredictResult
"""

from .api import PredictResult, check_scene, default_output, describe_raster, predict_raster, predict_scenes
from .progress import BarProgress, JsonProgress, Progress, make_progress
from .vectorize import VectorResult, vectorize_raster

__all__ = [
    "BarProgress",
    "JsonProgress",
    "PredictResult",
    "check_scene",
    "default_output",
    "Progress",
    "VectorResult",
    "describe_raster",
    "make_progress",
    "predict_raster",
    "predict_scenes",
    "vectorize_raster",
]
