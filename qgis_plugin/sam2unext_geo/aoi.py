"""Area of interest from QGIS: the map extent as ``--bbox``, selected features as a temporary ``--aoi`` file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from typing import Optional

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransformContext,
    QgsFeature,
    QgsFields,
    QgsRectangle,
    QgsVectorFileWriter,
    QgsWkbTypes,
)


def crs_text(crs: QgsCoordinateReferenceSystem) -> str:
    """What ``--bbox-crs`` gets: the authority id (``EPSG:32633``), else the WKT."""
    return crs.authid() or crs.toWkt()


def extent_bbox(extent: QgsRectangle) -> tuple:
    """``(minx, miny, maxx, maxy)`` of a rectangle.

    Raises:
        ValueError: an empty or null rectangle.
    """
    if extent is None or extent.isNull() or extent.isEmpty():
        raise ValueError("The map extent is empty; zoom to the area to segment.")
    return (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())


def write_polygons(
    features: Iterable[QgsFeature], crs: QgsCoordinateReferenceSystem, folder: Optional[str] = None
) -> str:
    """Write the features' geometries to a new temporary GeoPackage; returns its path.

    The caller removes it with :func:`remove_file` when the run ends.

    Raises:
        ValueError: no polygon among the features, or the file cannot be written.
    """
    fd, path = tempfile.mkstemp(prefix="sam2unext_aoi_", suffix=".gpkg", dir=folder)
    os.close(fd)
    os.remove(path)  # the writer creates it
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "aoi"
    writer = QgsVectorFileWriter.create(
        path, QgsFields(), QgsWkbTypes.Type.MultiPolygon, crs, QgsCoordinateTransformContext(), options
    )
    if writer.hasError() != QgsVectorFileWriter.WriterError.NoError:
        message = writer.errorMessage()
        del writer
        remove_file(path)
        raise ValueError(f"Cannot write the area of interest to {path}: {message}")
    count = 0
    for feature in features:
        geom = feature.geometry()
        if geom.isNull() or geom.type() != QgsWkbTypes.GeometryType.PolygonGeometry:
            continue
        geom.convertToMultiType()
        out = QgsFeature()
        out.setGeometry(geom)
        writer.addFeature(out)
        count += 1
    del writer  # closes the file
    if count == 0:
        remove_file(path)
        raise ValueError("The area of interest has no polygons: select polygon features (or choose the map extent).")
    return path


def selected_polygons(layer) -> str:
    """The selected features of a polygon layer in a temporary GeoPackage (see :func:`write_polygons`).

    Raises:
        ValueError: no layer, or nothing selected.
    """
    if layer is None:
        raise ValueError("Choose a polygon layer for the area of interest.")
    if layer.selectedFeatureCount() == 0:
        raise ValueError(f"No features are selected in {layer.name()}; select the polygons to segment within.")
    return write_polygons(layer.getSelectedFeatures(), layer.crs())


def remove_file(path: Optional[str]) -> None:
    """Remove a temporary GeoPackage and its SQLite side files, quietly."""
    if not path:
        return
    for p in (path, path + "-wal", path + "-shm", path + "-journal"):
        try:
            os.remove(p)
        except OSError:
            pass
