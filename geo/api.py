"""The Python API: ``predict_raster``, ``vectorize_raster`` (re-exported), ``describe_raster``.

Example (notebook)::

    from sam2unext.geo import predict_raster

    res = predict_raster("scene.tif", "scene_prob.tif", checkpoint="demo",
                         tile_size=256, batch_size=8, as_xarray=True, as_geodataframe=True)
    res.data_array.plot()            # probability (0..255 for uint8 output), CRS attached
    res.geodataframe.explore()       # polygons with area, perimeter, mean/max probability
"""

from __future__ import annotations

import inspect
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from sam2unext.errors import InputError, OutputError, option
from sam2unext.geo.model_contract import ModelSource
from sam2unext.geo.models import load_local, model_factory, spread_devices, weights_fingerprint
from sam2unext.geo.progress import Progress, make_progress
from sam2unext.geo.reading.aoi import resolve_aoi
from sam2unext.geo.reading.bands import default_bands
from sam2unext.geo.reading.model_bands import BandChoice, StretchChoice, make_model_plan
from sam2unext.geo.reading.opening import open_raster
from sam2unext.geo.running.chunks import make_chunk_grid, tile_computations
from sam2unext.geo.running.device import CPU_BATCH, auto_batch_size
from sam2unext.geo.running.execution import (
    local_lanes,
    measure_seconds_per_tile,
)
from sam2unext.geo.running.scene import (
    SceneRun,
    check_outputs,
    check_tiling,
    remove_leftovers,
    scene_manifest,
    warn_about,
)
from sam2unext.geo.running.tiling import (
    check_scene_size,
    clamp_tile,
    make_grid,
    overlap_pixels,
)
from sam2unext.geo.storage import (
    as_target,
    check_remote_output,
    is_url,
    name_of,
    output_exists,
    publish,
    remove_output,
    staging_path,
    stem_of,
    with_name,
)
from sam2unext.geo.vectors.vectorize import default_vector_path, format_from, vectorize_raster
from sam2unext.geo.writing.cog import OUT_DTYPES, check_output, remove_quietly
from sam2unext.geo.writing.store import RunStore, store_path_for
from sam2unext.geo.xarray_io import Source, open_probability, source_path
from sam2unext.loader import ModelLoader, weights_note

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr
    from distributed import Client
    from matplotlib.figure import Figure

#: Tile side ``describe_raster`` assumes without a model (the input size of the real presets).
DEFAULT_TILE = 1024

#: Tile overlap: a fraction of the tile in [0, 1), or pixels as ``"64px"``.
Overlap = Union[float, str]


@dataclass
class PredictResult:
    """What :func:`predict_raster` produced.

    Attributes:
        probability: path of the probability COG.
        vector: path of the polygons, or None.
        tiles_run, tiles_skipped: tiles of the scene sent to the model / skipped as all-nodata.
        seconds: wall time of the call.
        area: total polygon area in map units (0 without polygons).
        data_array: the probability raster as a lazy ``xarray.DataArray`` (``as_xarray``).
        geodataframe: the polygons (``as_geodataframe``).
        tiles_computed: forward passes this call made (tiles at chunk borders count once per
            chunk; chunks finished by an earlier, resumed run count nothing).
        chunks, chunks_resumed: output chunks of the scene / taken over from an earlier run.
        scene_tiles: tiles of the whole scene's grid (with an ``aoi``, against ``tiles_run``).
        scene: the source raster's path (None for a DataArray source); drawn by :meth:`quicklook`.
        bands: the 1-based input bands used as red, green, blue.
    """

    probability: Path | str  # a str for an s3:// or gs:// output
    vector: Path | str | None
    tiles_run: int
    tiles_skipped: int
    seconds: float
    area: float
    data_array: xr.DataArray | None = None
    geodataframe: gpd.GeoDataFrame | None = None
    tiles_computed: int = 0
    chunks: int = 0
    chunks_resumed: int = 0
    scene_tiles: int = 0
    bands: tuple[int, ...] = ()
    scene: str | Path | None = None

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


def predict_raster(
    source: Source,
    output: str | Path | None = None,
    *,
    model: ModelSource = None,
    checkpoint: str | Path | None = None,
    preset: str | None = None,
    tile_size: int | None = None,
    overlap: Overlap = 0.25,
    batch_size: int | None = None,
    device: str = "auto",
    bands: BandChoice | None = None,
    stretch: StretchChoice | None = None,
    resolution: float | None = None,
    threshold: float = 0.5,
    vector: bool | str | Path | None = True,
    vector_format: str = "gpkg",
    min_area: float = 0.0,
    fill_holes: bool = False,
    simplify: float = 0.0,
    out_dtype: str = "uint8",
    scheduler: str | Client | None = None,
    worker_timeout: float | None = None,
    overwrite: bool = False,
    resume: bool = False,
    chunk_size: int | None = None,
    aoi: Any = None,
    aoi_crs: Any = None,
    progress: str | Progress | None = "bar",
    as_xarray: bool = False,
    as_geodataframe: bool = False,
    rgb_bands: Sequence[int] | None = None,
) -> PredictResult:
    """Segment a raster of any size: tiles → batched model → seamless probability COG → polygons.

    The scene is computed in output chunks that are kept in a run store beside the output
    (``<output name>.partial``) until the COG is written, so an interrupted run continues with
    ``resume=True`` and computes only the unfinished chunks; the result is bit-identical to an
    uninterrupted run, local or on a cluster.

    Args:
        source: raster path (anything GDAL opens; an ``s3://``, ``gs://`` or ``https://`` URL
            is read with range requests) or an ``xarray.DataArray`` (rioxarray).
        output: probability GeoTIFF (default ``<source stem>_prob.tif`` next to the source;
            a new temporary folder for a DataArray); may be an ``s3://``/``gs://`` object, built
            locally and uploaded whole, with its run store beside it.
        model: an object with ``predict``/``input_size``/``low_res_size``, or a picklable
            zero-argument factory returning one; None loads ``checkpoint``/``preset``.
        checkpoint, preset, device: passed to ``sam2unext.load_model`` when ``model`` is None.
        tile_size: tile side (default the model's ``input_size``); clamped to the scene's longer
            side (or the model's input size if larger); refused when the estimated memory of
            a batch of such tiles exceeds what is available.
        overlap: tile overlap: a fraction of the tile in [0, 1) (``0.25``) or pixels as
            ``"64px"``; other values are refused. 0 warns (seams show at tile edges).
        batch_size: tiles per forward pass; None: 4 on a CPU, what fits the free memory of a GPU
            (:func:`~sam2unext.geo.running.device.auto_batch_size`; 4 for a cluster run without a local model).
        bands: 1-based bands, e.g. ``(3, 2, 1)``, or band descriptions (``("red", "green",
            "blue")``); default: the bands declared red/green/blue, else 1, 2, 3 (a warning
            names them when the scene has more than three), or grey x3 for one band. A
            multispectral model takes as many bands as it was trained on (e.g. ``(4, 3, 2, 8)``;
            default: the bands stored in its checkpoint); another count is an ``InputError``.
        stretch: None (uint8 as is, others 2-98 % percentile stretch), ``(min, max)`` or one
            pair per band.
        resolution: resample to this pixel size (map units) before tiling.
        threshold, min_area, fill_holes, simplify: polygon options (see ``vectorize_raster``).
        vector: True (default path), False/None (no polygons) or a path.
        vector_format: ``gpkg``, ``geojson``, ``fgb`` or ``parquet``.
        out_dtype: ``"uint8"`` (0..255, masked nodata) or ``"float32"`` (0..1, NaN nodata).
        scheduler: None (threads in this process) or a ``dask.distributed`` address / Client;
            the workers read the source and write the run store themselves, so both must be at
            ``s3://``/``gs://`` URLs or on a filesystem every worker sees.
        worker_timeout: with a ``scheduler``: seconds the run waits while no worker is connected
            (it warns as soon as none is) before it stops with a ``ClusterError``, keeping the
            finished chunks for ``resume``; None (default) waits until a worker connects.
        overwrite: replace existing outputs (and discard an unfinished run of them).
        resume: continue the unfinished run of ``output`` (same input, weights and parameters).
        chunk_size: side of the output chunks in pixels (multiple of 512; default
            ``max(4096, 8 x tile_size)``).
        aoi: segment only this area: a shapely geometry, a GeoDataFrame, a vector file or a bbox
            ``(minx, miny, maxx, maxy)``. The output covers its bounding window on the scene grid,
            pixels outside it are nodata, tiles that do not touch it are never read or run, and
            polygons are clipped to it.
        aoi_crs: CRS of ``aoi`` when it carries none (default: the scene's).
        progress: ``"bar"``, ``"json"``, ``"none"`` or a ``Progress`` instance.
        as_xarray: attach the probability raster as a lazy ``xarray.DataArray``.
        as_geodataframe: attach the polygons as a ``GeoDataFrame``.
        rgb_bands: which of ``bands`` carry the pretrained R, G, B kernels; checked against
            the model's mapping (None: the model's).

    Returns:
        :class:`PredictResult`.

    Raises:
        InputError: unreadable source, bad bands/stretch/resolution/overlap/chunk size.
        OutputError: existing output without ``overwrite``, an unfinished run without
            ``resume``/``overwrite``, nothing to resume, a mismatched resume, an unwritable
            folder or a full disk, bad format.
        PresetError, CheckpointError: from ``sam2unext.load_model``.
        ClusterError: no worker connected to the ``scheduler`` for ``worker_timeout`` seconds.
    """
    t0 = time.perf_counter()
    reporter = make_progress(progress)
    if out_dtype not in OUT_DTYPES:
        raise InputError(f"out_dtype {out_dtype!r} must be one of {', '.join(OUT_DTYPES)}")
    if batch_size is not None and int(batch_size) < 1:
        raise InputError(f"batch_size {batch_size} must be at least 1")
    check_worker_timeout(worker_timeout)
    with tempfile.TemporaryDirectory(prefix="sam2unext-geo-") as tmp:
        src_path, scene = source_path(source, Path(tmp))
        made_dir = None  # a folder made here for a DataArray's output; removed on failure
        if output is None and not isinstance(source, (str, Path)):
            made_dir = Path(tempfile.mkdtemp(prefix="sam2unext-geo-out-"))
            output = made_dir / "prediction_prob.tif"
        elif output is None:
            output = default_output(src_path)
        created: list[Path] = []
        published: list[str | Path] = []  # outputs uploaded before a later step failed
        run: SceneRun | None = None
        try:
            out, store = check_outputs(as_target(output), overwrite, resume)
            vec_path = None
            if vector:
                fmt = format_from(None if vector is True else vector, vector_format if vector is True else None)
                vec_path = check_vector_output(out, vector, fmt, overwrite or resume)  # a resume's own
            if resume:  # what a killed run of these outputs left beside them
                remove_leftovers(out, vec_path)
            plan = make_model_plan(
                src_path,
                model=model,
                checkpoint=checkpoint,
                bands=bands,
                stretch=stretch,
                resolution=resolution,
                rgb_bands=rgb_bands,
                warn=reporter.warning,
            )
            area = resolve_aoi(
                aoi, aoi_crs, crs=plan.crs, transform=plan.transform, height=plan.height, width=plan.width
            )
            if area is not None:
                plan = plan.within(area.window)
            check_scene_size(plan.height, plan.width, scene)
            if tile_size is not None:  # refuse a bad overlap or tile size before the model loads
                check_tiling(
                    plan, clamp_tile(int(tile_size), plan.height, plan.width), overlap, int(batch_size or CPU_BATCH)
                )
            note = weights_note(checkpoint, preset) if model is None else None
            if note:
                reporter.warning(note)
            local_model = None
            if scheduler is None or tile_size is None:
                reporter.update("load", 0, 1)
                local_model = load_local(model, checkpoint, preset, device)
                reporter.update("load", 1, 1)
            input_size = local_model.input_size if local_model is not None else None
            requested = tile_size or input_size
            assert requested is not None  # the model is loaded here whenever tile_size is None
            tile = clamp_tile(int(requested), plan.height, plan.width, input_size)
            if batch_size is None:
                batch_size = auto_batch_size(local_model, tile) if local_model is not None else CPU_BATCH
            grid = check_tiling(plan, tile, overlap, int(batch_size))
            warn_about(reporter, scene, plan, grid, bool(vector))
            run = SceneRun(
                plan,
                grid,
                make_chunk_grid(plan.height, plan.width, tile, chunk_size),
                store,
                batch_size,
                out_dtype,
                reporter,
                area,
            )
            weights = weights_fingerprint(model, checkpoint, preset, device, local_model)
            run.open(scene_manifest(src_path, plan, grid, run.chunks, out_dtype, weights, area), resume)
            scene_tiles = len(make_grid(*area.full_size, tile, overlap)) if area is not None else len(grid)
            run.announce(scene, local_model, scene_tiles if area is not None else None)
            spread = spread_devices(model, checkpoint, preset, device) if scheduler is None else None
            if spread is not None:  # several GPUs: one worker process each, through the cluster path
                from sam2unext.geo.running.cluster import PerWorkerDevice, device_workers

                devices, loader = spread
                factory, key = model_factory(PerWorkerDevice(loader, devices), None, None, device)
                local_model = None  # the workers load their own copies: free this one's GPU memory
                loader.release()
                with device_workers(len(devices)) as client:
                    run.run_distributed(client, factory, key)
            elif scheduler is None:
                assert local_model is not None  # loaded above whenever scheduler is None
                run.run_local(local_model)
            else:
                factory, key = model_factory(model, checkpoint, preset, device)
                run.run_distributed(scheduler, factory, key, worker_timeout)
            if run.stats.tiles_run == 0:
                reporter.warning(
                    f"{scene} has no valid pixel (nodata, NaN/inf, alpha or mask everywhere in bands "
                    f"{','.join(map(str, dict.fromkeys(plan.bands)))}); the probability raster is all "
                    f"nodata"
                )
            # a URL output is built in the scratch folder and uploaded whole once finished
            local_out = staging_path(out, Path(tmp))
            created.append(local_out)
            run.write_cog(local_out, overwrite or resume)
            polygon_area, gdf = 0.0, None
            if vec_path is not None:
                local_vec = staging_path(vec_path, Path(tmp))
                vres = vectorize_raster(
                    local_out,
                    local_vec,
                    threshold=threshold,
                    min_area=min_area,
                    fill_holes=fill_holes,
                    simplify=simplify,
                    vector_format=fmt,
                    overwrite=overwrite or resume,
                    progress=reporter,
                    as_geodataframe=as_geodataframe,
                    clip=area.geometry if area is not None else None,
                )
                polygon_area, gdf = vres.area, vres.geodataframe
                created.append(local_vec)
                if is_url(vec_path):
                    publish(local_vec, vec_path)
                    published.append(vec_path)
            if is_url(out):
                publish(local_out, out)  # last: the probability raster marks a finished scene
            store.remove()
        except BaseException:
            remove_quietly(*(p for p in created if p.suffix == ".tif"))
            for target in published:
                remove_output(target)
            if run is not None:
                run.keep_or_discard(scene)
            if made_dir is not None:
                shutil.rmtree(made_dir, ignore_errors=True)
            raise
        finally:
            reporter.close()
    seconds = time.perf_counter() - t0
    stats = run.stats
    reporter.done(
        scene,
        str(out),
        str(vec_path) if vec_path else None,
        stats.tiles_run,
        stats.tiles_skipped,
        seconds,
        polygon_area,
    )
    data_array = open_probability(out) if as_xarray else None
    return PredictResult(
        out,
        vec_path,
        stats.tiles_run,
        stats.tiles_skipped,
        seconds,
        polygon_area,
        data_array,
        gdf,
        tiles_computed=stats.computed_now,
        chunks=len(run.chunks),
        chunks_resumed=stats.chunks_resumed,
        scene_tiles=scene_tiles,
        scene=source if isinstance(source, (str, Path)) else None,
        bands=tuple(plan.bands),
    )


def default_output(source: str | Path) -> str | Path:
    """The probability raster written when none is named: ``<source stem>_prob.tif`` next to the source.

    Beside a URL scene it is a URL (an ``https://`` scene needs an explicit output).
    """
    if is_url(source):
        return with_name(str(source), stem_of(source) + "_prob.tif")
    return Path(str(source)).with_name(Path(str(source)).stem + "_prob.tif")


def check_vector_output(out: str | Path, vector: bool | str | Path, fmt: str, overwrite: bool) -> str | Path:
    """The checked polygon output: ``<probability stem>_polygons.<ext>`` beside ``out``, or the path/URL given.

    Raises:
        OutputError: an existing output without ``overwrite``, an unwritable folder or bucket.
    """
    if vector is True:
        name = default_vector_path(Path(name_of(out)), fmt).name
        target: str | Path = with_name(out, name)
    else:
        target = as_target(vector)  # type: ignore[arg-type]
    return check_remote_output(str(target), overwrite) if is_url(target) else check_output(target, overwrite)


def predict_scenes(
    sources: Sequence[str | Path],
    outputs: Sequence[str | Path | None] | None = None,
    *,
    model: ModelSource = None,
    checkpoint: str | Path | None = None,
    preset: str | None = None,
    device: str = "auto",
    resume: bool = False,
    progress: str | Progress | None = "bar",
    on_result: Callable[[str | Path, PredictResult], None] | None = None,
    **options: Any,
) -> list[PredictResult]:
    """Segment several scenes with one model, loaded once.

    Every scene is checked (:func:`check_scene`) before the model loads, so a bad third scene
    is reported before the first is written. With ``resume``, scenes with an unfinished run
    are resumed, finished ones (output present, no unfinished run) are skipped with a warning,
    and the others start.

    Args:
        sources: scene paths.
        outputs: one probability path per scene (None: :func:`default_output` for each).
        model, checkpoint, preset, device: as :func:`predict_raster`.
        resume: as above.
        progress: one reporter for all scenes (``"bar"``, ``"json"``, ``"none"`` or a ``Progress``).
        on_result: called with each scene and its result as soon as it is done.
        **options: any other :func:`predict_raster` argument, applied to every scene.

    Returns:
        The results of the scenes that ran, in order.

    Raises:
        InputError, OutputError: a scene fails its checks (nothing is written), or ``resume``
            finds nothing to resume.
    """
    targets = list(outputs) if outputs is not None else [None] * len(sources)
    if len(targets) != len(sources):
        raise InputError(f"{len(targets)} outputs for {len(sources)} scenes; give one output per scene")
    reporter = make_progress(progress) if not isinstance(progress, Progress) else progress
    modes = _resume_modes(sources, targets) if resume and len(sources) > 1 else [resume] * len(sources)
    if model is None:  # one loader: the model loads once, for the first scene
        note = weights_note(checkpoint, preset)
        if note:
            reporter.warning(note)
        model = ModelLoader(checkpoint=checkpoint, preset=preset, device=device)
    checks = inspect.signature(check_scene).parameters  # the options check_scene checks too
    checked = {k: v for k, v in options.items() if k in checks}
    for source, target, mode in zip(sources, targets, modes):
        if mode is not None:
            check_scene(source, target, resume=mode, model=model, checkpoint=checkpoint, **checked)
    results = []
    for source, target, mode in zip(sources, targets, modes):
        if mode is None:
            reporter.warning(f"{source}: already complete, skipped")
            continue
        res = predict_raster(source, target, model=model, device=device, resume=mode, progress=reporter, **options)
        results.append(res)
        if on_result is not None:
            on_result(source, res)
    return results


def _resume_modes(sources: Sequence[str | Path], targets: Sequence[str | Path | None]) -> list[bool | None]:
    """Per scene: True (resume its unfinished run), None (finished: skip) or False (start).

    Raises:
        OutputError: no scene has anything to resume.
    """
    modes: list[bool | None] = []
    for source, target in zip(sources, targets):
        out = as_target(target) if target is not None else default_output(source)
        if RunStore(store_path_for(out)).present():
            modes.append(True)
        elif output_exists(out):
            modes.append(None)
        else:
            modes.append(False)
    if True not in modes:
        raise OutputError(
            f"nothing to resume: none of the {len(sources)} scenes has an unfinished run (<output>.partial); "
            f"drop {option('resume')}"
        )
    return modes


def check_worker_timeout(worker_timeout: float | None) -> None:
    """Refuse a ``worker_timeout`` that is not a positive number of seconds (None: wait for ever).

    Raises:
        InputError: zero, negative or not a number.
    """
    if worker_timeout is not None and not float(worker_timeout) > 0:
        raise InputError(f"worker_timeout {worker_timeout} must be a positive number of seconds")


def check_scene(
    source: str | Path,
    output: str | Path | None = None,
    *,
    bands: BandChoice | None = None,
    stretch: StretchChoice | None = None,
    resolution: float | None = None,
    tile_size: int | None = None,
    overlap: Overlap = 0.25,
    batch_size: int | None = 4,
    vector: bool | str | Path | None = True,
    vector_format: str = "gpkg",
    overwrite: bool = False,
    resume: bool = False,
    aoi: Any = None,
    aoi_crs: Any = None,
    model: ModelSource = None,
    checkpoint: str | Path | None = None,
    rgb_bands: Sequence[int] | None = None,
    worker_timeout: float | None = None,
) -> None:
    """Every check :func:`predict_raster` makes before it loads the model, without running or changing anything.

    A front end with several scenes calls it on each first, so that a bad third scene is
    reported before the first two are written. Arguments as :func:`predict_raster` (a path
    source only).

    Raises:
        InputError, OutputError: as :func:`predict_raster` would, before loading the model.
    """
    check_worker_timeout(worker_timeout)
    out = as_target(output) if output is not None else default_output(source)
    check_outputs(out, overwrite, resume, discard=False)
    if vector:
        fmt = format_from(None if vector is True else vector, vector_format if vector is True else None)
        check_vector_output(out, vector, fmt, overwrite or resume)
    plan = make_model_plan(
        source,
        model=model,
        checkpoint=checkpoint,
        bands=bands,
        stretch=stretch,
        resolution=resolution,
        rgb_bands=rgb_bands,
    )
    area = resolve_aoi(aoi, aoi_crs, crs=plan.crs, transform=plan.transform, height=plan.height, width=plan.width)
    if area is not None:
        plan = plan.within(area.window)
    check_scene_size(plan.height, plan.width, name_of(source))
    if tile_size is not None:
        check_tiling(plan, clamp_tile(int(tile_size), plan.height, plan.width), overlap, int(batch_size or CPU_BATCH))
    else:
        overlap_pixels(2**31, overlap)  # its form; the tile size is the model's, known once loaded


def describe_raster(
    path: str | Path,
    *,
    tile_size: int | None = None,
    overlap: Overlap = 0.25,
    bands: BandChoice | None = None,
    resolution: float | None = None,
    chunk_size: int | None = None,
    model: ModelSource = None,
    checkpoint: str | Path | None = None,
    preset: str | None = None,
    device: str = "auto",
    batch_size: int = 4,
) -> dict[str, Any]:
    """What :func:`predict_raster` would do with a scene: size, bands, CRS, stretch, tiles, chunks, time.

    With a model (``model``, or ``checkpoint``/``preset``) the time per tile is measured on
    ``device`` (one warm-up and one timed batch of random tiles, as the pipeline runs them) and
    the whole scene's time is estimated.

    Args:
        tile_size: tile side (default: the model's input size, else 1024).
        overlap, bands, resolution, chunk_size, batch_size: as for :func:`predict_raster`.

    Raises:
        InputError: unreadable raster, bad bands/resolution.
        PresetError, CheckpointError: from ``sam2unext.load_model``.
    """
    with open_raster(path) as src:
        facts = {
            "path": str(path),
            "driver": src.driver,
            "width": src.width,
            "height": src.height,
            "count": src.count,
            "dtypes": list(src.dtypes),
            "crs": src.crs.to_string() if src.crs else None,
            "transform": list(src.transform)[:6],
            "resolution": [
                float(np.hypot(src.transform.a, src.transform.d)),
                float(np.hypot(src.transform.b, src.transform.e)),
            ],
            "bounds": list(src.bounds),
            "nodata": src.nodata,
            "colorinterp": [ci.name for ci in src.colorinterp],
            "default_bands": list(default_bands(src)),
            "overviews": src.overviews(1),
        }
    plan = make_model_plan(path, model=model, checkpoint=checkpoint, bands=bands, resolution=resolution)
    loaded = None
    if model is not None or checkpoint is not None or preset is not None:
        loaded = load_local(model, checkpoint, preset, device)
    tile = int(tile_size or (loaded.input_size if loaded is not None else DEFAULT_TILE))
    grid = make_grid(plan.height, plan.width, tile, overlap)
    chunks = make_chunk_grid(plan.height, plan.width, tile, chunk_size)
    facts.update(
        {
            "bands_used": list(plan.bands),
            "stretch": [list(p) for p in plan.stretch] if plan.stretch else None,
            "grid": [plan.height, plan.width],
            "tile_size": tile,
            "overlap": overlap,
            "tiles": len(grid),
            "chunk_size": chunks.size,
            "chunks": len(chunks),
            "computations": tile_computations(grid, chunks),
        }
    )
    if loaded is not None:
        per_tile = measure_seconds_per_tile(loaded, tile, batch_size, lanes=local_lanes(loaded))
        params = list(getattr(loaded, "parameters", list)())  # a torch module's; none for a stand-in
        first = params[0] if params else None
        facts.update(
            {
                "device": str(first.device) if first is not None else "cpu",
                "model": getattr(loaded, "preset", type(loaded).__name__),
                "parameters": sum(p.numel() for p in params) if first is not None else None,
                "seconds_per_tile": per_tile,
                "estimated_seconds": per_tile * facts["computations"],
            }
        )
    return facts
