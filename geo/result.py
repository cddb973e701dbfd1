"""What ``predict_raster`` returns: :class:`PredictResult`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr
    from matplotlib.figure import Figure


@dataclass
class PredictResult:
    """What :func:`predict_raster` produced.

    Attributes:
        probability: path (or s3://, gs:// URL) of the probability COG.
        vector: path (or URL) of the polygons, or None.
        tiles_run, tiles_skipped: tiles of the scene sent to the model / skipped as all-nodata.
        seconds: wall time of the call.
        area: total polygon area in ``area_unit`` (0 without polygons).
        area_unit: ``m²`` on any georeferenced scene (geodesic on a geographic CRS), ``px²``
            without georeferencing, ``map unit²`` for a geotransform without a CRS;
            :attr:`area_text` writes the total in m², ha or km².
        data_array: the probability raster as a lazy ``xarray.DataArray`` (``as_xarray``).
        geodataframe: the polygons (``as_geodataframe``).
        tiles_computed: tiles this call ran through the model (each tile once, at any chunking).
        tiles_resumed: tiles taken from the store of an earlier, resumed run
            (``tiles_run = tiles_computed + tiles_resumed``).
        chunks, chunks_resumed: output chunks of the scene / whose tiles came from an earlier run.
        scene_tiles: tiles of the whole scene's grid (with an ``aoi``, against ``tiles_run``).
        scene: the source raster's path (None for a DataArray source); drawn by :meth:`quicklook`.
        bands: the 1-based input bands used as red, green, blue.
    """

    probability: str | Path
    vector: str | Path | None
    tiles_run: int
    tiles_skipped: int
    seconds: float
    area: float
    data_array: xr.DataArray | None = None
    geodataframe: gpd.GeoDataFrame | None = None
    tiles_computed: int = 0
    tiles_resumed: int = 0
    chunks: int = 0
    chunks_resumed: int = 0
    scene_tiles: int = 0
    bands: tuple[int, ...] = ()
    scene: str | Path | None = None
    area_unit: str = "m²"

    @property
    def area_text(self) -> str:
        """The total polygon area as people write it: ``850 m²``, ``1.25 ha``, ``3.142 km²``."""
        from sam2unext.geo.vectors.units import format_area

        return format_area(self.area, self.area_unit)

    def quicklook(
        self, path: str | Path | None = None, *, bands: Sequence[int] | int | None = None, title: str | None = None
    ) -> Figure:
        """Draw the scene, the probability and the polygon outlines side by side, in map coordinates.

        Large results are read from the COG overviews (see :mod:`sam2unext.geo.quicklook`).

        Args:
            path: also save the figure as a PNG here (e.g. ``"scene_quicklook.png"``).
            bands: scene bands shown as RGB (default: as ``predict_raster`` picks them).
            title: figure title (default: the scene's name).

        Returns:
            The ``matplotlib.figure.Figure`` (a notebook displays it). Without ``scene`` (a
            DataArray source) the figure has two panels: probability, and outlines on it.
        """
        from sam2unext.geo.quicklook import draw_quicklook

        scene = self.scene
        title = title if title is not None else Path(str(scene if scene is not None else self.probability)).name
        fig = draw_quicklook(scene, self.probability, self.vector, bands=bands, title=title)
        if path is not None:
            fig.savefig(path)
        return fig
