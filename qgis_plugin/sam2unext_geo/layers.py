"""Add the run's outputs to the project: a styled probability raster and the polygons, grouped."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Optional

from qgis.core import (
    Qgis,
    QgsColorRampShader,
    QgsFillSymbol,
    QgsLayerTreeGroup,
    QgsProject,
    QgsRaster,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

# Transparent at 0, then a magma-like ramp that becomes opaque towards certainty.
_RAMP = (
    (0.00, (0, 0, 4, 0)),
    (0.25, (81, 18, 124, 90)),
    (0.50, (183, 55, 121, 170)),
    (0.75, (252, 137, 97, 220)),
    (1.00, (252, 253, 191, 255)),
)


def scene_name(path: str) -> str:
    """The group name for a scene: its file name without extension."""
    base = os.path.basename(str(path).split("|")[0])
    return os.path.splitext(base)[0] or base


def result_group_name(scene: str, started: datetime) -> str:
    """The layer-tree group of a run: the scene and when the run started (two runs are told apart),
    and what it holds, unlike the input layer's own name."""
    return f"{scene} — SAM2-UNeXT {started:%Y-%m-%d %H:%M:%S}"


def unique_group_name(root, name: str) -> str:
    """``name``, or ``name (2)``, ``(3)`` … when the layer tree already has a group of that name."""
    taken = {group.name() for group in root.findGroups(True)} if hasattr(root, "findGroups") else set()
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name} ({n})"
    return candidate


def probability_max(layer: QgsRasterLayer) -> float:
    """255 for integer probability rasters (scaled 0–255), 1.0 for float ones."""
    dtype = layer.dataProvider().dataType(1)
    return 1.0 if dtype in (Qgis.DataType.Float32, Qgis.DataType.Float64) else 255.0


def mask_band(layer: QgsRasterLayer) -> int:
    """The band through which QGIS shows the raster's nodata mask, or -1.

    The command writes a uint8 probability with nodata as GDAL's internal mask (nodata pixels are 0
    underneath). QGIS (3.22 at least) does not read that mask as nodata: it adds it as an extra
    alpha band (``Band 2``, 0 where nodata). A renderer that does not use that band draws nodata
    pixels as probability 0.
    """
    alpha = getattr(Qgis, "RasterColorInterpretation", None)
    alpha = alpha.AlphaBand if alpha is not None else QgsRaster.ColorInterpretation.AlphaBand
    provider = layer.dataProvider()
    return next((b for b in range(2, layer.bandCount() + 1) if provider.colorInterpretation(b) == alpha), -1)


def style_probability(layer: QgsRasterLayer) -> None:
    """Pseudocolor (interpolated, transparent near 0) over band 1; nodata (outside the area of
    interest, invalid input pixels) is not drawn: the mask band is the renderer's alpha band."""
    vmax = probability_max(layer)
    ramp = QgsColorRampShader(0.0, vmax)
    ramp.setColorRampType(QgsColorRampShader.Type.Interpolated)
    ramp.setColorRampItemList(
        [QgsColorRampShader.ColorRampItem(f * vmax, QColor(*rgba), f"{f:.2f}") for f, rgba in _RAMP]
    )
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(vmax)
    renderer.setAlphaBand(mask_band(layer))
    layer.setRenderer(renderer)
    layer.triggerRepaint()


def style_polygons(layer: QgsVectorLayer) -> None:
    """Cyan outline with a faint fill, readable over imagery and over the probability ramp."""
    symbol = QgsFillSymbol.createSimple(
        {"color": "0,255,255,40", "outline_color": "0,229,255,255", "outline_width": "0.5"}
    )
    layer.renderer().setSymbol(symbol)
    layer.triggerRepaint()


def add_result_layers(
    probability: str,
    vector: Optional[str],
    scene: str,
    project: Optional[QgsProject] = None,
    started: Optional[datetime] = None,
) -> tuple:
    """Load the outputs and add them on top of the layer tree in a new, expanded group.

    Args:
        probability: path of the probability GeoTIFF.
        vector: path of the polygon GeoPackage, or ``None``.
        scene: the scene's name (see :func:`scene_name`); the group is :func:`result_group_name`
            (made unique in the layer tree).
        project: defaults to ``QgsProject.instance()``.
        started: when the run started (default: now).

    Returns:
        ``(group, raster_layer, vector_layer_or_None)``.

    Raises:
        RuntimeError: an output cannot be opened by QGIS.
    """
    project = project or QgsProject.instance()
    raster = QgsRasterLayer(probability, f"{scene} probability", "gdal")
    if not raster.isValid():
        raise RuntimeError(f"QGIS cannot open the probability raster {probability}.")
    style_probability(raster)
    polygons = None
    if vector:
        polygons = QgsVectorLayer(vector, f"{scene} polygons", "ogr")
        if not polygons.isValid():
            raise RuntimeError(f"QGIS cannot open the polygon layer {vector}.")
        style_polygons(polygons)
    root = project.layerTreeRoot()
    name = unique_group_name(root, result_group_name(scene, started or datetime.now()))
    group: QgsLayerTreeGroup = root.insertGroup(0, name)
    group.setExpanded(True)
    for layer in (polygons, raster):
        if layer is not None:
            project.addMapLayer(layer, False)
            group.addLayer(layer)
    return group, raster, polygons
