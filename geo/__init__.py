"""Geospatial processor: large rasters → tile pairs → batched model → seamless COG → polygons.

Public API::

    from sam2unext.geo import predict_raster, vectorize_raster, describe_raster, PredictResult
"""

from .api import PredictResult, check_scene, describe_raster, predict_raster
from .progress import BarProgress, JsonProgress, Progress, make_progress
from .vectorize import VectorResult, vectorize_raster

__all__ = [
    "BarProgress",
    "JsonProgress",
    "PredictResult",
    "check_scene",
    "Progress",
    "VectorResult",
    "describe_raster",
    "make_progress",
    "predict_raster",
    "vectorize_raster",
]
