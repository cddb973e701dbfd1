"""The Python API: ``predict_raster``, ``vectorize_raster`` (re-exported), ``describe_raster``.

Example (notebook)::

    from sam2unext.geo import predict_raster

    res = predict_raster("scene.tif", "scene_prob.tif", checkpoint="demo",
                         tile_size=256, batch_size=8, as_xarray=True, as_geodataframe=True)
    res.data_array.plot()            # probability (0..255 for uint8 output), CRS attached
    res.geodataframe.explore()       # polygons with area, perimeter, mean/max probability
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from sam2unext.errors import InputError

from .execution import RunStats, run_local
from .model_bands import make_model_plan
from .progress import make_progress
from .reading import close_dataset, default_bands, open_raster, read_valid
from .stitching import RowBandStitcher
from .tiling import make_grid
from .vectorize import default_vector_path, format_from, vectorize_raster
from .writing import OUT_DTYPES, ProbabilityWriter, check_output, remove_quietly

#: GDAL block cache while running, in bytes (rasterio passes the value to GDAL as bytes):
#: bounded so memory does not grow with the scene.
GDAL_CACHE_BYTES = 64 * 2**20


@dataclass
class PredictResult:
    """What :func:`predict_raster` produced.

    Attributes:
        probability: path of the probability COG.
        vector: path of the polygons, or None.
        tiles_run, tiles_skipped: tiles sent to the model / skipped as all-nodata.
        seconds: wall time of the call.
        area: total polygon area in map units (0 without polygons).
        data_array: the probability raster as a lazy ``xarray.DataArray`` (``as_xarray``).
        geodataframe: the polygons (``as_geodataframe``).
    """

    probability: Path
    vector: Path | None
    tiles_run: int
    tiles_skipped: int
    seconds: float
    area: float
    data_array: object | None = None
    geodataframe: object | None = None


class _Const:
    """Picklable zero-argument factory returning a fixed model."""

    def __init__(self, model):
        self.model = model

    def __call__(self):
        return self.model


def _is_factory(model) -> bool:
    return model is not None and callable(model) and not hasattr(model, "predict")


def _model_factory(model, checkpoint, preset, device):
    """(factory, cache key) for the model to run on workers."""
    if model is None:
        from sam2unext import load_model

        key = hashlib.sha1(repr((str(checkpoint), preset, device)).encode()).hexdigest()[:16]
        return functools.partial(load_model, checkpoint=checkpoint, preset=preset, device=device), key
    if _is_factory(model):
        return model, f"factory-{id(model):x}-{time.time_ns():x}"
    return _Const(model), f"object-{id(model):x}-{time.time_ns():x}"


def _load_local(model, checkpoint, preset, device):
    if model is None:
        from sam2unext import load_model

        return load_model(checkpoint=checkpoint, preset=preset, device=device)
    return model() if _is_factory(model) else model


def _source_path(source, tmpdir: Path) -> tuple[str | Path, str]:
    """A raster path for ``source`` (an xarray DataArray is written to ``tmpdir``) and its name.

    A path is returned as given: ``Path()`` would turn ``/vsicurl/https://...`` into ``https:/``.
    """
    if isinstance(source, (str, Path)):
        return source, Path(source).name
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover
        xr = None
    if xr is not None and isinstance(source, xr.DataArray):
        import rioxarray  # noqa: F401 (registers .rio)

        da = source if "band" in source.dims else source.expand_dims("band")
        path = tmpdir / "input.tif"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            da.rio.to_raster(path, tiled=True)
        return path, str(source.name or "dataarray")
    raise InputError(f"source must be a raster path or an xarray.DataArray, got {type(source).__name__}")


def predict_raster(source, output=None, *, model=None, checkpoint=None, preset=None, tile_size=None, overlap=0.25,
                   batch_size=4, device="auto", bands=None, stretch=None, resolution=None, threshold=0.5,
                   vector=True, vector_format="gpkg", min_area=0.0, fill_holes=False, simplify=0.0,
                   out_dtype="uint8", scheduler=None, overwrite=False, progress="bar", as_xarray=False,
                   as_geodataframe=False, rgb_bands=None) -> PredictResult:
    """Segment a raster of any size: tiles → batched model → seamless probability COG → polygons.

    Args:
        source: raster path (anything GDAL opens) or an ``xarray.DataArray`` (rioxarray).
        output: probability GeoTIFF (default ``<source stem>_prob.tif`` next to the source;
            a new temporary folder for a DataArray).
        model: an object with ``predict``/``input_size``/``low_res_size``, or a picklable
            zero-argument factory returning one; None loads ``checkpoint``/``preset``.
        checkpoint, preset, device: passed to ``sam2unext.load_model`` when ``model`` is None.
        tile_size: tile side (default the model's ``input_size``).
        overlap: tile overlap, fraction (< 1) or pixels.
        batch_size: tiles per forward pass.
        bands: 1-based bands, e.g. ``(3, 2, 1)``; default RGB or grey x3. A multispectral
            model takes as many bands as it was trained on (e.g. ``(4, 3, 2, 8)``; default:
            the bands stored in its checkpoint); another count is an ``InputError``.
        stretch: None (uint8 as is, others 2-98 % percentile stretch), ``(min, max)`` or one
            pair per band.
        resolution: resample to this pixel size (map units) before tiling.
        threshold, min_area, fill_holes, simplify: polygon options (see ``vectorize_raster``).
        vector: True (default path), False/None (no polygons) or a path.
        vector_format: ``gpkg``, ``geojson``, ``fgb`` or ``parquet``.
        out_dtype: ``"uint8"`` (0..255, masked nodata) or ``"float32"`` (0..1, NaN nodata).
        scheduler: None (local threads) or a ``dask.distributed`` address / Client; the
            workers read the source themselves, so its path must be readable on them.
        overwrite: replace existing outputs.
        progress: ``"bar"``, ``"json"``, ``"none"`` or a ``Progress`` instance.
        as_xarray: attach the probability raster as a lazy ``xarray.DataArray``.
        as_geodataframe: attach the polygons as a ``GeoDataFrame``.
        rgb_bands: which of ``bands`` carry the pretrained R, G, B kernels; checked against
            the model's mapping (None: the model's).

    Returns:
        :class:`PredictResult`.

    Raises:
        InputError: unreadable source, bad bands/stretch/resolution/overlap.
        OutputError: existing output without ``overwrite``, unwritable folder, bad format.
        PresetError, CheckpointError: from ``sam2unext.load_model``.
    """
    t0 = time.perf_counter()
    reporter = make_progress(progress)
    if out_dtype not in OUT_DTYPES:
        raise InputError(f"out_dtype {out_dtype!r} must be one of {', '.join(OUT_DTYPES)}")
    if int(batch_size) < 1:
        raise InputError(f"batch_size {batch_size} must be at least 1")
    with tempfile.TemporaryDirectory(prefix="sam2unext-geo-") as tmp:
        src_path, scene = _source_path(source, Path(tmp))
        made_dir = None  # a folder made here for a DataArray's output; removed on failure
        if output is None and not isinstance(source, (str, Path)):
            made_dir = Path(tempfile.mkdtemp(prefix="sam2unext-geo-out-"))
            output = made_dir / "prediction_prob.tif"
        elif output is None:
            output = Path(src_path).with_name(Path(src_path).stem + "_prob.tif")
        created: list[Path] = []
        try:
            out = check_output(output, overwrite)
            vec_path = None
            if vector:
                fmt = format_from(None if vector is True else vector, vector_format if vector is True else None)
                vec_path = check_output(default_vector_path(out, fmt) if vector is True else vector, overwrite)
            plan = make_model_plan(src_path, model=model, checkpoint=checkpoint, bands=bands, stretch=stretch,
                                   resolution=resolution, rgb_bands=rgb_bands)

            local_model = None
            if scheduler is None or tile_size is None:
                local_model = _load_local(model, checkpoint, preset, device)
            tile = int(tile_size or local_model.input_size)
            grid = make_grid(plan.height, plan.width, tile, overlap)
            reporter.start(scene, len(grid), plan.width, plan.height)
            stats = _predict_to(out, plan, grid, local_model, model, checkpoint, preset, device, scheduler,
                                batch_size, out_dtype, overwrite, reporter)
            created.append(out)
            area, gdf = 0.0, None
            if vec_path is not None:
                vres = vectorize_raster(out, vec_path, threshold=threshold, min_area=min_area,
                                        fill_holes=fill_holes, simplify=simplify, vector_format=fmt,
                                        overwrite=overwrite, progress=reporter, as_geodataframe=as_geodataframe)
                area, gdf = vres.area, vres.geodataframe
        except BaseException:
            remove_quietly(*created)
            if made_dir is not None:
                shutil.rmtree(made_dir, ignore_errors=True)
            raise
        finally:
            reporter.close()
    seconds = time.perf_counter() - t0
    reporter.done(scene, str(out), str(vec_path) if vec_path else None, stats.tiles_run, stats.tiles_skipped,
                  seconds, area)
    data_array = None
    if as_xarray:
        import rioxarray

        data_array = rioxarray.open_rasterio(out, masked=True, chunks=True).squeeze("band", drop=True)
    return PredictResult(out, vec_path, stats.tiles_run, stats.tiles_skipped, seconds, area, data_array, gdf)


def _predict_to(out, plan, grid, local_model, model, checkpoint, preset, device, scheduler, batch_size, out_dtype,
                overwrite, reporter) -> RunStats:
    """Run the tiles and write the stitched probability raster to ``out``."""
    n_tiles = len(grid)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with contextlib.ExitStack() as stack:
            mask_src = plan.open()
            stack.callback(close_dataset, mask_src)
            writer = stack.enter_context(ProbabilityWriter(out, height=plan.height, width=plan.width,
                                                           transform=plan.transform, crs=plan.crs,
                                                           out_dtype=out_dtype, overwrite=overwrite,
                                                           masked=plan.masked))

            def valid(row0: int, rows: int) -> np.ndarray | None:
                if not plan.masked:
                    return None  # every pixel valid
                return read_valid(mask_src, Window(0, row0, plan.width, rows), plan.bands)

            stitcher = RowBandStitcher(grid, writer.write_rows, valid)
            done = [0]

            def consume(result) -> None:
                for index, prob in result:
                    stitcher.add(index, prob)
                done[0] += len(result)
                reporter.update("predict", done[0], n_tiles)

            reporter.update("predict", 0, n_tiles)
            if scheduler is None:
                stats = run_local(local_model, plan, grid, consume, batch_size=batch_size)
            else:
                factory, key = _model_factory(model, checkpoint, preset, device)
                from .cluster import run_distributed

                stats = run_distributed(scheduler, factory, key, plan, grid, consume, batch_size=batch_size)
            if not stitcher.complete:
                raise RuntimeError(f"stitching ended after {stitcher.rows_written} of {plan.height} rows")
            reporter.update("write", 0, 1)
            writer.commit()
            reporter.update("write", 1, 1)
    return stats


def describe_raster(path, *, tile_size: int = 1024, overlap: float = 0.25) -> dict:
    """Summary of a raster for ``info``: size, bands, CRS, transform, nodata, default bands, tiles.

    Raises:
        InputError: unreadable raster.
    """
    with open_raster(path) as src:
        grid = make_grid(src.height, src.width, tile_size, overlap)
        return {
            "path": str(path),
            "driver": src.driver,
            "width": src.width,
            "height": src.height,
            "count": src.count,
            "dtypes": list(src.dtypes),
            "crs": src.crs.to_string() if src.crs else None,
            "transform": list(src.transform)[:6],
            "resolution": [float(np.hypot(src.transform.a, src.transform.d)),
                           float(np.hypot(src.transform.b, src.transform.e))],
            "bounds": list(src.bounds),
            "nodata": src.nodata,
            "colorinterp": [ci.name for ci in src.colorinterp],
            "default_bands": list(default_bands(src)),
            "overviews": src.overviews(1),
            "tiles": len(grid),
            "tile_size": tile_size,
            "overlap": overlap,
        }
