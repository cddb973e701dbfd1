"""A scene's :class:`ReadPlan`: everything a tile read needs, gathered once per scene (picklable).

The same plan drives threaded reads in this process and reads on ``dask.distributed`` workers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from sam2unext.geo.reading.array_raster import ArrayDataset, ArraySource
from sam2unext.geo.reading.bands import (
    STATS_SIDE,
    Stretch,
    apply_stretch,
    band_choice_warning,
    compute_stretch,
    float_bands,
    rgb_channels_of,
    select_bands,
)
from sam2unext.geo.reading.opening import (
    check_readable,
    close_dataset,
    open_source,
    read_error,
    resampled_grid,
    resampled_view,
)


@dataclass(frozen=True)
class ReadPlan:
    """Everything needed to read model-ready tiles from one scene (picklable).

    Attributes:
        path: raster path (for a dask-backed array, its name in messages).
        bands: 1-based band indexes, one per model channel (three for RGB).
        stretch: per-band (min, max) mapped to 0..255, or None for uint8 used as is.
        height, width: size of the processing grid (after optional resampling).
        transform: geotransform of the processing grid.
        crs: CRS (WKT) or None.
        resample: True when reading through a resampling (warped) view.
        masked: False when every pixel of the bands is valid: GDAL reports no nodata, alpha
            or mask, and no band is floating point (NaN and ±inf are invalid pixels), so
            validity reads are skipped.
        finite_check: some band is floating point: tiles whose pixels are all NaN/inf are
            skipped (uint8 scenes never pay for this check).
        offset: (row, column) of this grid's origin in the opened dataset (an area of interest).
        rgb_channels: 0-based positions in ``bands`` of the bands mapped to the pretrained
            R, G, B kernels (None: not given).
        array: a dask-backed array read in place of ``path`` (window by window; pickled
            with its graph, never its pixels).
    """

    path: str
    bands: tuple[int, ...]
    stretch: Stretch | None
    height: int
    width: int
    transform: Affine
    crs: str | None
    resample: bool = False
    masked: bool = True
    offset: tuple[int, int] = (0, 0)
    rgb_channels: tuple[int, int, int] | None = None
    finite_check: bool = False
    array: ArraySource | None = None

    def source_window(self, window: Window) -> Window:
        """``window`` of this plan's grid as a window of the dataset :meth:`open` returns."""
        if self.offset == (0, 0):
            return window
        return Window(window.col_off + self.offset[1], window.row_off + self.offset[0], window.width, window.height)

    def within(self, window: Window) -> ReadPlan:
        """The plan of a sub-window of this grid (an area of interest): its size, transform and offset."""
        row0, col0 = int(window.row_off), int(window.col_off)
        return replace(
            self,
            height=int(window.height),
            width=int(window.width),
            transform=self.transform @ Affine.translation(col0, row0),
            offset=(self.offset[0] + row0, self.offset[1] + col0),
            masked=True,
        )

    def open(self):
        """Open a dataset for this plan: the file, or a resampled view of it.

        Close it with :func:`close_dataset` (which also closes the file under a view).
        """
        src = open_source(self.array if self.array is not None else self.path)
        if not self.resample:
            return src
        assert not isinstance(src, ArrayDataset), "a dask-backed array is not resampled"
        vrt = resampled_view(src, self.transform, self.height, self.width)
        vrt._sam2unext_parent = src  # keep the parent open as long as the view
        return vrt


def make_plan(
    path: str | Path | ArraySource,
    *,
    bands: Sequence[int | str] | int | str | None = None,
    stretch: Sequence[float] | Sequence[Sequence[float]] | None = None,
    resolution: float | None = None,
    n_bands: int = 3,
    default_bands: Sequence[int] | None = None,
    rgb_bands: Sequence[int] | None = None,
    warn: Callable[[str], None] | None = None,
) -> ReadPlan:
    """Open, validate and summarise a scene into a :class:`ReadPlan`.

    The first and last blocks of every band used are read, so a truncated or corrupt file is
    refused here, before any model is loaded.

    Args:
        path: the raster, or a dask-backed array (read in place, never resampled).
        bands: 1-based bands or band descriptions (None: the default choice, see :func:`select_bands`).
        stretch: see :func:`compute_stretch`.
        resolution: resample to this pixel size (map units).
        n_bands: bands the model takes (3 for RGB).
        default_bands: bands used when ``bands`` is None and ``n_bands`` is not 3 (the
            bands a multispectral model was trained on).
        rgb_bands: which of the bands carry the pretrained R, G, B kernels (stored as
            ``rgb_channels``).
        warn: receives warnings that do not stop the run (bands picked by position in a
            multispectral scene).

    Raises:
        InputError: unreadable input, bad bands (a count other than ``n_bands``), bad
            rgb bands, bad stretch or resolution.
    """
    array = path if isinstance(path, ArraySource) else None
    if array is not None and resolution:
        raise ValueError("a dask-backed array is not resampled: write it to a GeoTIFF first")
    with open_source(path) as src:
        sel = select_bands(src, bands, n_bands, default_bands)
        rgb_channels = rgb_channels_of(sel, rgb_bands) if rgb_bands is not None else None
        check_readable(src, sel)
        note = band_choice_warning(src, bands) if n_bands == 3 else None
        if note and warn is not None:
            warn(note)
        if resolution:
            transform, height, width = resampled_grid(src, float(resolution))
        else:
            transform, height, width = src.transform, src.height, src.width
        stats_src = src
        vrt = None
        if resolution:
            assert not isinstance(src, ArrayDataset)  # refused above
            vrt = resampled_view(src, transform, height, width)
            stats_src = vrt
        try:
            st = compute_stretch(stats_src, sel, stretch)
        except RasterioIOError as exc:
            raise read_error(src.name, Window(0, 0, src.width, src.height), exc) from None
        finally:
            if vrt is not None:
                vrt.close()
        crs = src.crs.to_wkt() if src.crs else None
        finite_check = bool(float_bands(src, sel))
        masked = (
            bool(resolution) or finite_check or any(src.mask_flag_enums[b - 1] != [MaskFlags.all_valid] for b in sel)
        )
        if isinstance(path, ArraySource):
            full = path.name
        else:  # workers may run elsewhere
            full = str(Path(path).resolve()) if Path(path).exists() else str(path)
        return ReadPlan(
            full,
            sel,
            st,
            height,
            width,
            transform,
            crs,
            bool(resolution),
            masked,
            rgb_channels=rgb_channels,
            finite_check=finite_check,
            array=array,
        )


def band_statistics(plan: ReadPlan) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Per-channel mean and standard deviation of a scene's model input (stretched, in [0, 1]).

    Read from a decimated view (at most :data:`STATS_SIDE` px a side) of the valid pixels,
    after the plan's stretch: the statistics a model normalizes its non-RGB bands with.
    None when the scene has no valid pixel.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        ds = plan.open()
    try:
        scale = max(plan.height, plan.width) / STATS_SIDE
        shape = (
            (max(1, int(plan.height / scale)), max(1, int(plan.width / scale)))
            if scale > 1
            else (plan.height, plan.width)
        )
        unique = sorted(set(plan.bands))
        data = ds.read(unique, out_shape=(len(unique), *shape), masked=True, resampling=Resampling.nearest)
    finally:
        close_dataset(ds)
    valid = ~np.ma.getmaskarray(data).any(axis=0)
    raw = np.asarray(data)[[unique.index(b) for b in plan.bands]]
    values = apply_stretch(raw, plan.stretch).astype(np.float64)[:, valid] / 255.0
    if values.shape[1] == 0:
        return None
    return tuple(float(v) for v in values.mean(axis=1)), tuple(float(v) for v in values.std(axis=1))
