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
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from sam2unext.errors import InputError, option

from .execution import RunStats, run_local
from .progress import make_progress
from .reading import close_dataset, default_bands, is_georeferenced, make_plan, open_raster, read_valid
from .stitching import RowBandStitcher
from .tiling import available_memory, check_scene_size, clamp_tile, estimate_memory, make_grid, overlap_pixels
from .vectorize import default_vector_path, format_from, vectorize_raster
from .writing import OUT_DTYPES, ProbabilityWriter, check_output, remove_quietly

#: GDAL block cache while running, in bytes (rasterio passes the value to GDAL as bytes):
#: bounded so memory does not grow with the scene.
GDAL_CACHE_BYTES = 64 * 2**20
#: Share of the available memory a run may plan to use (tile size x batch estimate).
MEMORY_SHARE = 0.8


@dataclass
class PredictResult:
    """What :func:`predict_raster` produced.

    Attributes:
        probability: path of the probability COG.
        vector: path of the polygons, or None.
        tiles_run, tiles_skipped: tiles sent to the model / skipped as all-nodata.
        seconds: wall time of the call.
        area: total polygon area in map units (0 without polygons).
        bands: the 1-based input bands used as red, green, blue.
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
    bands: tuple[int, ...] = ()


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


#: Block side of the temporary GeoTIFF a DataArray is written to.
XARRAY_BLOCK = 256


def exact_transform(da):
    """The geotransform of a rioxarray DataArray, exact.

    ``rio.transform()`` rebuilds it from the coordinates, which differ from the file's in the
    last digits; the transform stored with the array (``recalc=False``, the file's own) is used
    when it places the first pixel centre where the coordinates say, shifted by whole pixels
    for a slice of the original array. Otherwise the rebuilt one is the only one there is.
    """
    rebuilt = da.rio.transform()
    cached = da.rio.transform(recalc=False)
    if cached.b or cached.d:  # rotated: coordinates cannot express it, the stored one is right
        return cached
    x, y = da.rio.x_dim, da.rio.y_dim
    try:
        x0, y0 = float(da[x].values[0]), float(da[y].values[0])
    except (IndexError, KeyError):
        return rebuilt
    col = (x0 - cached.c) / cached.a - 0.5
    row = (y0 - cached.f) / cached.e - 0.5
    icol, irow = round(col), round(row)
    if abs(col - icol) > 1e-3 or abs(row - irow) > 1e-3 or not np.allclose(
            [cached.a, cached.e], [rebuilt.a, rebuilt.e], rtol=1e-9, atol=0):
        return rebuilt
    return cached @ Affine.translation(icol, irow) if (icol or irow) else cached


def _source_path(source, tmpdir: Path) -> tuple[str | Path, str]:
    """A raster path for ``source`` (an xarray DataArray is written to ``tmpdir``) and its name.

    A path is returned as given: ``Path()`` would turn ``/vsicurl/https://...`` into ``https:/``.
    A DataArray is written as a tiled GeoTIFF with its own block size (the source file's block
    shape, e.g. one row of a striped file, is not copied) and its exact geotransform.
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
        transform = exact_transform(da)
        da = da.rio.write_transform(transform)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            da.rio.to_raster(path, tiled=True, blockxsize=XARRAY_BLOCK, blockysize=XARRAY_BLOCK,
                             interleave="pixel", recalc_transform=False)
        return path, str(source.name or "dataarray")
    raise InputError(f"source must be a raster path or an xarray.DataArray, got {type(source).__name__}")


def _check_outputs(src_path, output, vector, vector_format, overwrite) -> tuple[Path, Path | None, str | None]:
    """(probability path, polygon path or None, vector format) after checking both can be written."""
    if output is None:
        output = Path(src_path).with_name(Path(src_path).stem + "_prob.tif")
    out = check_output(output, overwrite)
    vec_path = fmt = None
    if vector:
        fmt = format_from(None if vector is True else vector, vector_format if vector is True else None)
        vec_path = check_output(default_vector_path(out, fmt) if vector is True else vector, overwrite)
    return out, vec_path, fmt


def check_scene(source, output=None, *, bands=None, stretch=None, resolution=None, tile_size=None, overlap=0.25,
                batch_size=4, vector=True, vector_format="gpkg", overwrite=False) -> None:
    """Every check :func:`predict_raster` makes before it loads the model, without running anything.

    A front end with several scenes calls it on each first, so that a bad third scene is
    reported before the first two are written. Arguments as :func:`predict_raster` (a path
    source only).

    Raises:
        InputError, OutputError: as :func:`predict_raster` would, before loading the model.
    """
    _check_outputs(source, output, vector, vector_format, overwrite)
    plan = make_plan(source, bands=bands, stretch=stretch, resolution=resolution)
    check_scene_size(plan.height, plan.width, Path(str(source)).name)
    if tile_size is not None:
        check_tiling(plan, clamp_tile(int(tile_size), plan.height, plan.width), overlap, int(batch_size))
    else:
        overlap_pixels(2**31, overlap)  # its form; the tile size is the model's, known once loaded


def predict_raster(source, output=None, *, model=None, checkpoint=None, preset=None, tile_size=None, overlap=0.25,
                   batch_size=4, device="auto", bands=None, stretch=None, resolution=None, threshold=0.5,
                   vector=True, vector_format="gpkg", min_area=0.0, fill_holes=False, simplify=0.0,
                   out_dtype="uint8", scheduler=None, overwrite=False, progress="bar", as_xarray=False,
                   as_geodataframe=False) -> PredictResult:
    """Segment a raster of any size: tiles → batched model → seamless probability COG → polygons.

    Args:
        source: raster path (anything GDAL opens) or an ``xarray.DataArray`` (rioxarray).
        output: probability GeoTIFF (default ``<source stem>_prob.tif`` next to the source;
            a new temporary folder for a DataArray).
        model: an object with ``predict``/``input_size``/``low_res_size``, or a picklable
            zero-argument factory returning one; None loads ``checkpoint``/``preset``.
        checkpoint, preset, device: passed to ``sam2unext.load_model`` when ``model`` is None.
        tile_size: tile side (default the model's ``input_size``); clamped to the scene's longer
            side (or the model's input size if larger); refused when the estimated memory of
            a batch of such tiles exceeds what is available.
        overlap: tile overlap: a fraction of the tile in [0, 1) (``0.25``) or pixels as
            ``"64px"``; other values are refused. 0 warns (seams show at tile edges).
        batch_size: tiles per forward pass.
        bands: 1-based bands, e.g. ``(3, 2, 1)``, or band descriptions (``("red", "green",
            "blue")``); default: the bands declared red/green/blue, else 1, 2, 3 (a warning
            names them when the scene has more than three), or grey x3 for one band.
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
        created: list[Path] = []
        try:
            out, vec_path, fmt = _check_outputs(src_path, output, vector, vector_format, overwrite)
            plan = make_plan(src_path, bands=bands, stretch=stretch, resolution=resolution, warn=reporter.warning)
            check_scene_size(plan.height, plan.width, scene)
            if tile_size is not None:  # refuse a bad overlap or tile size before the model loads
                check_tiling(plan, clamp_tile(int(tile_size), plan.height, plan.width), overlap, int(batch_size))

            local_model = None
            if scheduler is None or tile_size is None:
                local_model = _load_local(model, checkpoint, preset, device)
            input_size = getattr(local_model, "input_size", None)
            tile = clamp_tile(int(tile_size or input_size), plan.height, plan.width, input_size)
            grid = check_tiling(plan, tile, overlap, int(batch_size))
            if grid.overlap_px == 0 and len(grid) > 1:
                reporter.warning(f"overlap 0: tile edges will show as seams in {scene}; an overlap of 0.25 blends "
                                 f"them away")
            if not is_georeferenced(plan.crs, plan.transform):
                reporter.warning(f"{scene} has no georeferencing (no CRS, no geotransform): the probability raster "
                                 f"has none either" + (", and the polygons are in pixel units (x = column, "
                                                       "y = -row, where QGIS shows such a raster)" if vector else ""))
            reporter.start(scene, len(grid), plan.width, plan.height, bands=plan.bands)
            stats = _predict_to(out, plan, grid, local_model, model, checkpoint, preset, device, scheduler,
                                batch_size, out_dtype, overwrite, reporter)
            created.append(out)
            if stats.tiles_run == 0:
                reporter.warning(f"{scene} has no valid pixel (nodata, NaN/inf, alpha or mask everywhere in bands "
                                 f"{','.join(map(str, dict.fromkeys(plan.bands)))}); the probability raster is all nodata")
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
    return PredictResult(out, vec_path, stats.tiles_run, stats.tiles_skipped, seconds, area, data_array, gdf,
                         tuple(plan.bands))


def check_tiling(plan, tile_size: int, overlap, batch_size: int):
    """The tile grid, after refusing tilings that cannot run.

    Raises:
        InputError: a bad overlap, or a tile size and batch whose memory (see
            :func:`~sam2unext.geo.tiling.estimate_memory`) exceeds the memory available.
    """
    grid = make_grid(plan.height, plan.width, tile_size, overlap)
    source_bytes = 3 if plan.stretch is None else 12  # uint8, else up to float32 per band
    need = estimate_memory(tile_size, batch_size, plan.width, source_bytes)
    free = available_memory()
    if free is not None and need > MEMORY_SHARE * free:
        raise InputError(
            f"tile_size {tile_size} with batch_size {batch_size} needs about {need / 1e9:.1f} GB of memory but "
            f"{free / 1e9:.1f} GB are available; use a smaller {option('tile_size', 1024)} or "
            f"{option('batch_size', 1)}")
    return grid


def output_tags(plan) -> dict[str, str]:
    """GDAL metadata items of the probability raster: the input bands used as red, green, blue."""
    return {"SAM2UNEXT_BANDS": ",".join(map(str, plan.bands))}


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
                                                           masked=plan.masked, tags=output_tags(plan)))

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
