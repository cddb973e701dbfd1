"""Processing provider exposing the ``predict`` and ``vectorize`` algorithms."""

from __future__ import annotations

import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import PredictAlgorithm, VectorizeAlgorithm

PROVIDER_ID = "sam2unext"


class Sam2UnextProvider(QgsProcessingProvider):
    """Algorithms ``sam2unext:predict`` and ``sam2unext:vectorize``."""

    def loadAlgorithms(self) -> None:  # noqa: N802 - QGIS API
        self.addAlgorithm(PredictAlgorithm())
        self.addAlgorithm(VectorizeAlgorithm())

    def id(self) -> str:
        return PROVIDER_ID

    def name(self) -> str:
        return "SAM2-UNeXT Geo"

    def longName(self) -> str:  # noqa: N802 - QGIS API
        return "SAM2-UNeXT Geo (segmentation of large scenes)"

    def icon(self) -> QIcon:
        return QIcon(os.path.join(os.path.dirname(__file__), "icon.png"))
