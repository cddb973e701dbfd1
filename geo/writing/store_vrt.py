"""The finished run store as GDAL VRT files: the raster, its mask and its overview pyramid.

GDAL's COG driver copies from these (``OVERVIEWS=FORCE_USE_EXISTING``): it reads the store's
Zarr arrays through GDAL's Zarr driver (on disk or through ``/vsis3/``/``/vsigs/``) and writes
only the output file. Each overview level is its own small VRT with its own mask band, since the
COG driver takes the mask of an overview from the overview.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

from affine import Affine

from sam2unext.geo.writing.pyramid import level_count, level_shape

if TYPE_CHECKING:
    from sam2unext.geo.writing.store import RunStore

GDAL_TYPES = {"uint8": "Byte", "float32": "Float32"}


def _band(parent: ET.Element, tag: str, source: str, shape: tuple[int, int], dtype: str, number: bool) -> ET.Element:
    """A band (or a mask band's band) whose one simple source is the whole of ``source``."""
    band = ET.SubElement(parent, tag, dataType=GDAL_TYPES[dtype], **({"band": "1"} if number else {}))
    if dtype == "float32":
        ET.SubElement(band, "NoDataValue").text = "nan"
    simple = ET.SubElement(band, "SimpleSource")
    ET.SubElement(simple, "SourceFilename", relativeToVRT="0").text = source
    ET.SubElement(simple, "SourceBand").text = "1"
    rows, cols = shape
    rect = {"xOff": "0", "yOff": "0", "xSize": str(cols), "ySize": str(rows)}
    ET.SubElement(simple, "SrcRect", **rect)
    ET.SubElement(simple, "DstRect", **rect)
    return band


def _dataset(
    store: RunStore, level: int, shape: tuple[int, int], dtype: str, masked: bool
) -> tuple[ET.Element, ET.Element]:
    """A VRT dataset of one level of the store, and its band."""
    rows, cols = shape
    root = ET.Element("VRTDataset", rasterXSize=str(cols), rasterYSize=str(rows))
    band = _band(root, "VRTRasterBand", store.gdal_array("prob", level), shape, dtype, True)
    if masked:
        mask = ET.SubElement(root, "MaskBand")
        _band(mask, "VRTRasterBand", store.gdal_array("valid", level), shape, "uint8", False)
    return root, band


def _georeference(root: ET.Element, transform: Affine | None, crs: Any, tags: dict[str, str]) -> None:
    """SRS, geotransform (none for a missing or identity one) and metadata items, first in the dataset."""
    items: list[ET.Element] = []
    if crs is not None:
        srs = ET.Element("SRS")
        srs.text = crs.to_wkt() if hasattr(crs, "to_wkt") else str(crs)
        items.append(srs)
    if transform is not None and not Affine(*transform[:6]).is_identity:
        t = Affine(*transform[:6])
        gt = ET.Element("GeoTransform")
        gt.text = ", ".join(repr(float(v)) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
        items.append(gt)
    if tags:
        meta = ET.Element("Metadata")
        for key, value in tags.items():
            ET.SubElement(meta, "MDI", key=str(key)).text = str(value)
        items.append(meta)
    for i, item in enumerate(items):
        root.insert(i, item)


def write_store_vrt(
    store: RunStore,
    folder: Path,
    *,
    height: int,
    width: int,
    transform: Affine | None,
    crs: Any,
    dtype: str,
    masked: bool,
    tags: dict[str, str] | None = None,
) -> Path:
    """Write ``scene.vrt`` (and one ``level_K.vrt`` per overview) into ``folder``; returns the main VRT.

    ``masked``: the store keeps ``valid`` arrays (a masked uint8 output), which become the mask band.
    """
    if dtype not in GDAL_TYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {sorted(GDAL_TYPES)}")
    root, band = _dataset(store, 0, (height, width), dtype, masked)
    _georeference(root, transform, crs, tags or {})
    for level in range(1, level_count(height, width) + 1):
        shape = level_shape(height, width, level)
        sub, _ = _dataset(store, level, shape, dtype, masked)
        path = folder / f"level_{level}.vrt"
        ET.ElementTree(sub).write(path, encoding="utf-8")
        overview = ET.SubElement(band, "Overview")
        ET.SubElement(overview, "SourceFilename", relativeToVRT="0").text = str(path)
        ET.SubElement(overview, "SourceBand").text = "1"
    main = folder / "scene.vrt"
    ET.ElementTree(root).write(main, encoding="utf-8")
    return main
