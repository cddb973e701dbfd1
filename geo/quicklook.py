"""Quick-look of a result: the scene, its probability and the polygon outlines side by side.

Every raster is read decimated to at most ``max_side`` pixels a side with ``out_shape``, so GDAL
serves the read from the nearest overview of a COG (the probability rasters written here have
overviews down to one 512 block): a 16k x 16k scene draws in about a second without reading its
full resolution. Scenes without overviews are still read at every pixel (GDAL decimates while
reading), which is slower on large files. The figure is a plain ``matplotlib.figure.Figure`` (no
pyplot state, no backend switch), so a notebook displays the returned figure once and a script
can save it anywhere.

Example:
    >>> from sam2unext.geo.quicklook import draw_quicklook
    >>> fig = draw_quicklook("scene.tif", "scene_prob.tif", "scene_prob_polygons.gpkg")
    >>> fig.savefig("scene_quicklook.png")
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window, from_bounds

from sam2unext.geo.reading.bands import DEFAULT_PERCENTILES, Stretch, apply_stretch, select_bands
from sam2unext.geo.reading.opening import open_raster
from sam2unext.geo.vectors.vectorize import probability_scale

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Longest side of each panel's raster, in pixels.
MAX_SIDE = 900
#: Figure resolution (dots per inch); a 3-panel figure is about 1500 x 550 px.
DPI = 110
#: Colour of the polygon outlines.
OUTLINE_COLOUR = "#00e5ff"


def decimated_shape(height: int, width: int, max_side: int) -> tuple[int, int]:
    """``(rows, cols)`` of a read that fits ``max_side`` (never larger than the raster)."""
    scale = max(1.0, max(height, width) / max_side)
    return max(1, int(round(height / scale))), max(1, int(round(width / scale)))


def read_probability(path: str | Path, max_side: int = MAX_SIDE) -> tuple[np.ndarray, tuple[float, ...], str]:
    """Decimated probabilities in [0, 1] (NaN where masked), the ``(left, right, bottom, top)`` extent, the CRS."""
    with open_raster(path) as src:
        data = src.read(
            1, out_shape=decimated_shape(src.height, src.width, max_side), masked=True, resampling=Resampling.average
        )
        prob = np.ma.filled(data.astype(np.float32) / np.float32(probability_scale(src.dtypes[0])), np.nan)
        b = src.bounds
        crs = src.crs.to_string() if src.crs else "no CRS"
    return prob, (b.left, b.right, b.bottom, b.top), crs


def read_scene_rgb(
    path: str | Path,
    bounds: tuple[float, float, float, float] | None = None,
    *,
    bands: Sequence[int] | int | None = None,
    max_side: int = MAX_SIDE,
) -> tuple[np.ndarray, tuple[float, ...]]:
    """Decimated RGBA uint8 picture of a scene (transparent where masked) and its extent.

    Args:
        path: scene raster.
        bounds: ``(left, bottom, right, top)`` to draw (a result's grid, e.g. an AOI run); the
            whole scene when None or when the scene is rotated.
        bands: 1-based bands shown as RGB (one band: grey); default as ``predict_raster``.
        max_side: longest side of the read.

    Non-uint8 bands get a 2-98 % percentile stretch computed on the decimated pixels.
    """
    with open_raster(path) as src:
        sel = select_bands(src, bands)
        window = Window(0, 0, src.width, src.height)
        if bounds is not None and src.transform.b == 0 and src.transform.d == 0:
            wanted = from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths()
            try:
                window = wanted.intersection(window)
            except rasterio.errors.WindowError:  # the result does not overlap the scene
                pass
        unique = sorted(set(sel))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            data = src.read(
                unique,
                window=window,
                masked=True,
                resampling=Resampling.average,
                out_shape=(len(unique), *decimated_shape(window.height, window.width, max_side)),
            )
        left, top = src.transform @ (window.col_off, window.row_off)  # not window_bounds: it warns on affine 3
        right, bottom = src.transform @ (window.col_off + window.width, window.row_off + window.height)
        dtypes = [src.dtypes[b - 1] for b in sel]
    bands_data = np.ma.stack([data[unique.index(b)] for b in sel])
    valid = ~np.ma.getmaskarray(bands_data).any(axis=0)
    stretch: Stretch | None = None
    if any(d != "uint8" for d in dtypes):
        pairs = []
        for band in bands_data:
            values = np.asarray(band)[valid]
            values = values[np.isfinite(values)].astype(np.float64)
            lo, hi = np.percentile(values, DEFAULT_PERCENTILES) if values.size else (0.0, 1.0)
            pairs.append((float(lo), float(hi) if hi > lo else float(lo) + 1.0))
        stretch = tuple(pairs)
    rgb = apply_stretch(np.ma.filled(bands_data, 0), stretch)
    alpha = np.where(valid, 255, 0).astype(np.uint8)[None]
    return np.concatenate([rgb, alpha]).transpose(1, 2, 0), (
        min(left, right),
        max(left, right),
        min(bottom, top),
        max(bottom, top),
    )


def read_outlines(path: str | Path, tolerance: float = 0.0) -> list[np.ndarray]:
    """Polygon outlines of a vector file as ``(N, 2)`` coordinate arrays, simplified to ``tolerance``."""
    import shapely

    p = Path(path)
    if p.suffix.lower() == ".parquet":
        import geopandas as gpd

        geoms = gpd.read_parquet(p, columns=["geometry"]).geometry.values
    else:
        import pyogrio

        geoms = pyogrio.read_dataframe(p, columns=[]).geometry.values
    geoms = np.asarray(geoms, dtype=object)
    if geoms.size == 0:
        return []
    if tolerance > 0:
        geoms = shapely.simplify(geoms, tolerance, preserve_topology=False)
    rings = shapely.get_parts(shapely.get_parts(shapely.boundary(geoms)))
    coords, index = shapely.get_coordinates(rings, return_index=True)
    return [c for c in np.split(coords, np.flatnonzero(np.diff(index)) + 1) if len(c) > 1]


def draw_quicklook(
    scene: str | Path | None,
    probability: str | Path,
    vector: str | Path | None = None,
    *,
    bands: Sequence[int] | int | None = None,
    title: str | None = None,
    max_side: int = MAX_SIDE,
) -> Figure:
    """Draw the quick-look: scene | probability | polygon outlines on the scene, in map coordinates.

    Args:
        scene: the input raster, or None (then two panels: probability, and outlines on it).
        probability: probability raster (uint8 0..255 or float 0..1).
        vector: polygon file, or None.
        bands: scene bands shown as RGB (default: as ``predict_raster`` picks them).
        title: figure title (default: the probability file's name).
        max_side: longest side of each panel's raster in pixels.

    Returns:
        A ``matplotlib.figure.Figure`` (not registered with pyplot).
    """
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    prob, extent, crs = read_probability(probability, max_side)
    rgb = None
    if scene is not None:
        left, right, bottom, top = extent
        rgb, _ = read_scene_rgb(scene, (left, bottom, right, top), bands=bands, max_side=max_side)
    panels = 3 if rgb is not None else 2
    fig = Figure(figsize=(4.6 * panels, 5.0), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, panels)
    if rgb is not None:
        axes[0].imshow(rgb, extent=extent)
        axes[0].set_title("scene")
    shown = axes[-2].imshow(prob, extent=extent, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
    axes[-2].set_title("probability")
    fig.colorbar(shown, ax=axes[-2], fraction=0.046, pad=0.02)
    if rgb is not None:
        axes[-1].imshow(rgb, extent=extent)
    else:
        axes[-1].imshow(prob, extent=extent, cmap="gray", vmin=0, vmax=2.5, interpolation="nearest")
    axes[-1].set_title("polygons")
    if vector is not None:
        pixel = max(extent[1] - extent[0], extent[3] - extent[2]) / max_side
        lines = read_outlines(vector, tolerance=pixel / 2)
        axes[-1].add_collection(LineCollection(lines, colors=OUTLINE_COLOUR, linewidths=0.8))
        axes[-1].set_title(f"polygons ({_count(vector)})")
    for i, ax in enumerate(axes):
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7, labelleft=i == 0, labelbottom=i == 0)
        ax.ticklabel_format(useOffset=False, style="plain")
    axes[0].set_xlabel(crs, fontsize=8)
    fig.suptitle(title if title is not None else Path(str(probability)).name)
    _hook_notebook_display()
    return fig


def write_quicklook(
    scene: str | Path | None,
    probability: str | Path,
    vector: str | Path | None,
    output: str | Path,
    *,
    bands: Sequence[int] | int | None = None,
    title: str | None = None,
    max_side: int = MAX_SIDE,
) -> Path:
    """Draw the quick-look (see :func:`draw_quicklook`) and save it as a PNG at ``output``."""
    fig = draw_quicklook(scene, probability, vector, bands=bands, title=title, max_side=max_side)
    fig.savefig(output)
    return Path(output)


def _count(vector: str | Path) -> int:
    """Number of features in a vector file."""
    p = Path(vector)
    if p.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(p).metadata.num_rows
    import pyogrio

    return int(pyogrio.read_info(p, force_feature_count=True)["features"])


def _hook_notebook_display() -> None:
    """In an IPython kernel, make sure a returned Figure is rendered (inline backend formatters)."""
    import sys

    if "IPython" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
        import matplotlib.pyplot  # noqa: F401 (the inline backend registers the Figure formatters on import)
