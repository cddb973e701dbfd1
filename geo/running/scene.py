"""One scene's run: output checks, the resume manifest, the chunked run, its COG and polygons.

:func:`run_scene` follows a :class:`~sam2unext.geo.scene_plan.ScenePlan`: it checks the
outputs, loads the model, lays the final tiling, opens (or resumes) the run store, runs the
chunks here or on a cluster, writes the COG and vectorizes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rasterio
from rasterio.errors import NotGeoreferencedWarning

from sam2unext.errors import ClusterError, OutputError, option
from sam2unext.geo.model_contract import ModelFactory, TileModel
from sam2unext.geo.models import ModelChoice
from sam2unext.geo.options import SceneOptions
from sam2unext.geo.progress import Progress
from sam2unext.geo.reading.opening import is_georeferenced
from sam2unext.geo.reading.plan import ReadPlan
from sam2unext.geo.result import PredictResult
from sam2unext.geo.running.chunk_task import ChunkJob, ChunkStatus
from sam2unext.geo.running.chunks import ChunkGrid, OverlapLayout, default_chunk_size, make_chunk_grid
from sam2unext.geo.running.device import auto_batch_size
from sam2unext.geo.running.fingerprint import environment_fingerprint, scene_fingerprint
from sam2unext.geo.running.forward import measure_seconds_per_tile
from sam2unext.geo.running.pools import local_lanes
from sam2unext.geo.running.schedule import RunStats, StepSchedule, run_local
from sam2unext.geo.running.tta import TTAModel, forward_passes, tta_factory, with_tta
from sam2unext.geo.scene_plan import ScenePlan, plan_scene
from sam2unext.geo.storage import (
    Location,
    is_url,
    name_of,
    parent_of,
    publish,
    remove_output,
    staging_path,
)
from sam2unext.geo.vectors.units import area_unit_of
from sam2unext.geo.vectors.vectorize import (
    vectorize_raster,
)
from sam2unext.geo.writing.cog import remove_quietly, write_probability_cog
from sam2unext.geo.writing.pyramid import chunk_levels, finish_pyramid, level_count
from sam2unext.geo.writing.store import RunStore, disk_full_error
from sam2unext.geo.writing.targets import Outputs, check_outputs, default_output, remove_leftovers
from sam2unext.geo.xarray_io import Source, open_probability, scene_source

if TYPE_CHECKING:
    from distributed import Client


#: GDAL block cache while running, in bytes (rasterio passes the value to GDAL as bytes):
#: bounded so memory does not grow with the scene.
GDAL_CACHE_BYTES = 32 * 2**20


def output_tags(plan: ReadPlan) -> dict[str, str]:
    """GDAL metadata items of the probability raster: the input bands used as red, green, blue."""
    return {"SAM2UNEXT_BANDS": ",".join(map(str, plan.bands))}


def scene_manifest(plan: ScenePlan, from_array: bool, weights: dict[str, Any]) -> dict[str, Any]:
    """What must match for a resume: input, grid, AOI, tiles, chunks, output type, weights, versions.

    The input is fingerprinted by its content, never its path, so a run folder moved or mounted
    elsewhere, or a DataArray written to a new temporary file (``from_array``), resumes: a local
    scene by :func:`scene_fingerprint` (size, sampled bytes, GDAL's header), an object by its size
    and version tag (ETag or generation: one HEAD request).
    """
    read, area, grid, chunks = plan.read, plan.area, plan.grid, plan.chunks
    assert grid is not None and chunks is not None, "tiles not laid yet"
    if is_url(plan.source):  # size and version tag (ETag/generation) of the object: one HEAD request
        src = str(plan.source)
        inp = dict(Location(parent_of(src), output=False).info(name_of(src)))
    else:
        inp = scene_fingerprint(plan.source)
    return {
        "input": inp,
        "grid": {
            "height": read.height,
            "width": read.width,
            "transform": list(read.transform)[:6],
            "crs": read.crs,
            "bands": list(read.bands),
            "stretch": [list(p) for p in read.stretch] if read.stretch else None,
            "resample": read.resample,
            "masked": read.masked,
            "offset": list(read.offset),
        },
        "aoi": None if area is None else hashlib.blake2b(area.geometry.wkb, digest_size=16).hexdigest(),
        "tiles": {"tile_size": grid.tile_size, "overlap_px": grid.overlap_px},
        "chunk_size": chunks.size,
        "out_dtype": plan.options.out_dtype,
        "weights": json.loads(json.dumps(weights, default=str)),
        "environment": environment_fingerprint(),
    }


def warn_about(reporter: Progress, plan: ScenePlan) -> None:
    """Warnings that do not stop a run: seams with overlap 0, no georeferencing."""
    scene, grid, read = plan.name, plan.grid, plan.read
    assert grid is not None, "tiles not laid yet"
    if grid.overlap_px == 0 and len(grid) > 1:
        reporter.warning(
            f"overlap 0: tile edges will show as seams in {scene}; {option('overlap', 0.25)} blends them away"
        )
    if not is_georeferenced(read.crs, read.transform):
        reporter.warning(
            f"{scene} has no georeferencing (no CRS, no geotransform): the probability raster has none "
            f"either"
            + (
                ", and the polygons are in pixel units (x = column, y = -row, where QGIS shows such a raster)"
                if plan.options.vector
                else ""
            )
        )


#: Measured seconds per tile by (model id, TTA mode, tile size), so several scenes measure once.
_SECONDS_PER_TILE: dict[tuple[int, str, int], float] = {}


class SceneRun:
    """One scene's chunked run: store, chunk tasks, counts and progress, the final COG."""

    def __init__(self, plan: ScenePlan, store: RunStore, reporter: Progress):
        assert plan.grid is not None and plan.chunks is not None and plan.batch_size is not None, "tiles not laid"
        self.plan, self.grid, self.chunks, self.store, self.area = plan.read, plan.grid, plan.chunks, store, plan.area
        self.batch_size, self.out_dtype, self.reporter = int(plan.batch_size), plan.options.out_dtype, reporter
        self.tta = plan.options.tta
        self.stats = RunStats()
        self.total = plan.computations
        self._tiles = 0  # tile computations finished (progress)
        self._lock = threading.Lock()
        self._created = False
        self._keep = False  # keep the store even without a finished chunk (a resume was promised)
        self._opened = False  # the store is this run's: created, or checked and taken over

    def open(self, manifest: dict, resume: bool) -> None:
        """Create the store, or check it against ``manifest`` and count its finished chunks."""
        if resume:
            self.store.check_manifest(manifest)
        else:
            self.store.create(
                manifest,
                height=self.plan.height,
                width=self.plan.width,
                chunk_width=self.chunks.size,
                out_dtype=self.out_dtype,
                masked=self.plan.masked,
            )
            self._created = True
        self._opened = True
        summed, finished = self.store.summed(), self.store.finished()
        for status in [*summed.values(), *finished.values()]:
            self.stats.count(status, resumed=True)
        self._tiles = self.stats.tiles_run + self.stats.tiles_skipped
        self.schedule = StepSchedule(OverlapLayout.of(self.grid, self.chunks), summed, finished)
        for k, strips in self.schedule.unneeded():  # strips an earlier run left and no chunk needs
            self.store.remove_halo(k, strips)

    def announce(self, scene: str, local_model: TileModel | None, scene_tiles: int | None = None) -> None:
        """The ``start`` event: tiles, chunks, recomputation and, when measurable, the estimated time."""
        info: dict[str, Any] = {
            "bands": list(self.plan.bands),
            "chunks": len(self.chunks),
            "computations": self.total,
            "forward_passes": self.total * forward_passes(self.tta),
            "resumed_chunks": self.stats.chunks_resumed,
            "estimated_seconds": None,
        }
        if scene_tiles is not None:
            info["scene_tiles"] = scene_tiles  # tiles of the whole scene, against those of the AOI window
        remaining = self.total - self._tiles
        if local_model is not None and remaining > 8 * self.batch_size:
            per_tile = _seconds_per_tile(local_model, self.grid.tile_size)
            info.update(seconds_per_tile=round(per_tile, 6), estimated_seconds=round(per_tile * remaining, 1))
        if local_model is not None:  # which precision runs and why (of the model inside a TTA wrapper)
            from sam2unext import precision_facts  # the model is loaded: torch is imported

            info.update(
                precision_facts(getattr(local_model, "model", local_model) if self.tta != "none" else local_model)
            )
        self.reporter.start(scene, len(self.grid), self.plan.width, self.plan.height, **info)
        self.reporter.update("predict", self._tiles, self.total)

    def job(self, index: int) -> ChunkJob:
        return ChunkJob(
            self.plan, self.grid, self.chunks, index, self.batch_size, str(self.store.folder), self.out_dtype, self.area
        )

    def _on_tiles(self, n: int) -> None:
        with self._lock:
            self._tiles += n

    def _tick(self) -> None:
        self.reporter.update("predict", min(self._tiles, self.total), self.total)

    def run_local(self, model: TileModel) -> None:
        """Run the unfinished chunks in this process."""
        with run_gdal_env():
            run_local(
                model,
                self.job,
                self.schedule,
                on_done=self.stats.count,
                on_tiles=self._on_tiles,
                tick=self._tick,
                on_unneeded=self.store.remove_halo,
            )
        self._tick()

    def run_distributed(
        self, scheduler: str | Client, factory: ModelFactory, key: str, worker_timeout: float | None = None
    ) -> None:
        """Run the unfinished chunks on a ``dask.distributed`` cluster.

        Raises:
            ClusterError: no worker connected for ``worker_timeout`` seconds.
        """
        from sam2unext.geo.running.cluster import DistributedRun

        def on_done(status: ChunkStatus) -> None:
            self.stats.count(status)
            self._on_tiles(status.tiles_run + status.tiles_skipped)

        try:
            with DistributedRun(
                scheduler, factory, key, warn=self.reporter.warning, worker_timeout=worker_timeout
            ) as cluster:
                cluster.run(
                    self.job, self.schedule, on_done=on_done, tick=self._tick, on_unneeded=self.store.remove_halo
                )
        except ClusterError:
            self._keep = True  # its message says to rerun with resume once workers are back
            raise
        self._tick()

    def write_cog(self, out: Path, replace: bool) -> None:
        """Build the probability COG at the local ``out`` from the finished store: the client makes the
        coarse overview levels the chunks did not (:func:`finish_pyramid`), GDAL copies the rest.

        Raises:
            OutputError: the disk is full (the store is kept for a resume).
        """
        height, width = self.plan.height, self.plan.width
        levels = level_count(height, width)
        self.reporter.update("write", 0, levels + 1)
        try:
            with run_gdal_env():
                finish_pyramid(
                    self.store,
                    height,
                    width,
                    chunk_levels(self.chunks.size, height, width),
                    on_level=lambda k: self.reporter.update("write", k, levels + 1),
                )
                write_probability_cog(
                    self.store,
                    out,
                    height=height,
                    width=width,
                    transform=self.plan.transform,
                    crs=self.plan.crs,
                    out_dtype=self.out_dtype,
                    masked=self.plan.masked,
                    overwrite=replace,
                    tags=output_tags(self.plan),
                )
            self.reporter.update("write", levels + 1, levels + 1)
        except Exception as exc:  # noqa: BLE001 (GDAL reports a full disk as a plain I/O error)
            if "No space left" in str(exc) or disk_full_error(out.parent, exc) is not None:
                raise OutputError(
                    f"no space left on the device of {out.parent}; free space there, then rerun "
                    f"with {option('resume')} (the finished chunks are kept)"
                ) from None
            raise

    def keep_or_discard(self, scene: str) -> None:
        """After a failure or cancel: keep a store that holds finished chunks (and say so), else remove it.

        A store this run did not open (a refused resume) is left as it is, without a word: the
        refusal said how to continue it.
        """
        if not self._opened or not self.store.exists():
            return
        done = len(self.store.summed())  # chunks whose tiles are computed
        if done:
            self.reporter.warning(
                f"{done} of {len(self.chunks)} chunks of {scene} are kept in {self.store.folder}; "
                f"rerun with {option('resume')} to continue, or {option('overwrite')} to start over"
            )
        elif self._created and not self._keep:
            self.store.remove()


def run_gdal_env() -> contextlib.ExitStack:
    """GDAL settings while running: a bounded block cache, no georeferencing warnings."""
    stack = contextlib.ExitStack()
    stack.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore", NotGeoreferencedWarning)
    return stack


def run_scene(
    source: Source,
    output: str | Path | None,
    options: SceneOptions,
    models: ModelChoice,
    reporter: Progress,
    plan: ScenePlan | None = None,
) -> PredictResult:
    """Segment one scene (see :func:`sam2unext.geo.predict_raster`); ``plan``: its pre-flight plan, if made."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sam2unext-geo-") as tmp:
        src_path, scene = scene_source(source, Path(tmp), windowed=options.resolution is None)
        made_dir = None  # a folder made here for a DataArray's output; removed on failure
        if output is None and not isinstance(source, (str, Path)):
            made_dir = Path(tempfile.mkdtemp(prefix="sam2unext-geo-out-"))
            output = made_dir / "prediction_prob.tif"
        elif output is None:
            assert isinstance(src_path, (str, Path))  # a DataArray took the branch above
            output = default_output(src_path)
        created: list[Path] = []  # local files written (a URL output's staging copy)
        published: list[str | Path] = []  # outputs uploaded before a later step failed
        run: SceneRun | None = None
        try:
            outputs = check_outputs(output, options)
            if options.resume:  # what a killed run of these outputs left beside them
                remove_leftovers(outputs.probability, outputs.vector)
            if plan is None:
                plan = plan_scene(src_path, options, models, name=scene, warn=reporter.warning)
            run, plan, local_model = _start(plan, outputs.store, models, reporter, not isinstance(source, (str, Path)))
            _execute(run, plan, models, local_model)
            # a URL output is built in the scratch folder and uploaded whole once finished
            local_out = staging_path(outputs.probability, Path(tmp))
            created.append(local_out)
            run.write_cog(local_out, options.overwrite or options.resume)
            polygon_area, gdf, area_unit = _vectorize(outputs, local_out, plan, reporter, Path(tmp), created, published)
            if is_url(outputs.probability):
                publish(local_out, outputs.probability)  # last: the probability raster marks a finished scene
            outputs.store.remove()
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
    return _result(source, outputs, plan, run.stats, seconds, (polygon_area, area_unit), gdf, reporter)


def _seconds_per_tile(model: TileModel, tile_size: int) -> float:
    """Measured seconds per tile of ``model`` (once per model, TTA mode and tile size; one tile, little memory)."""
    tta = model.mode if isinstance(model, TTAModel) else "none"
    key = (id(getattr(model, "model", model) if tta != "none" else model), tta, tile_size)
    if key not in _SECONDS_PER_TILE:
        _SECONDS_PER_TILE[key] = measure_seconds_per_tile(model, tile_size, 1, lanes=local_lanes(model))
    return _SECONDS_PER_TILE[key]


def _default_chunks(plan: ScenePlan, store: RunStore, local_model: TileModel | None) -> ChunkGrid:
    """The chunks of a run without ``chunk_size``: those of the store it resumes, else a few
    minutes of work each at the measured time per tile (:func:`default_chunk_size`)."""
    assert plan.grid is not None and plan.batch_size is not None
    read, grid = plan.read, plan.grid
    size = None
    if plan.options.resume and store.exists():
        with contextlib.suppress(OutputError):  # an unreadable store is refused when opened
            size = store.read_manifest().get("chunk_size")
    if size is None:
        per_tile = None
        if local_model is not None and len(grid) > 8 * plan.batch_size:  # the start event measures it too
            per_tile = _seconds_per_tile(local_model, grid.tile_size)
        stride = grid.tile_size - grid.overlap_px
        size = default_chunk_size(grid.tile_size, stride=stride, seconds_per_tile=per_tile)
        if plan.options.scheduler is not None:  # a cluster: enough chunks for every worker
            size = default_chunk_size(
                grid.tile_size, stride=stride, seconds_per_tile=per_tile, height=read.height, width=read.width
            )
    return make_chunk_grid(read.height, read.width, grid.tile_size, int(size))


def _start(
    plan: ScenePlan, store: RunStore, models: ModelChoice, reporter: Progress, from_array: bool
) -> tuple[SceneRun, ScenePlan, TileModel | None]:
    """Load the model (when this process runs it or its input size decides the tile), lay the
    final tiling, open or resume the run store and announce the run."""
    options = plan.options
    note = models.weights_note()
    if note:
        reporter.warning(note)
    local_model = None
    if options.scheduler is None or options.tile_size is None:
        reporter.update("load", 0, 1)
        local_model = with_tta(models.load(), options.tta)
        reporter.update("load", 1, 1)
    if local_model is not None:
        plan = plan.for_model(local_model.input_size, lambda tile: auto_batch_size(local_model, tile))
    else:
        plan = plan.for_model(None)
    if options.chunk_size is None:  # sized by time; a resumed run keeps its store's chunks
        plan = replace(plan, chunks=_default_chunks(plan, store, local_model))
    warn_about(reporter, plan)
    run = SceneRun(plan, store, reporter)
    weights = models.fingerprint(getattr(local_model, "model", local_model) if options.tta != "none" else local_model)
    if options.tta != "none":  # the averaged views change the pixels (no key without TTA: older stores resume)
        weights = {**weights, "tta": options.tta}
    run.open(scene_manifest(plan, from_array, weights), options.resume)
    run.announce(plan.name, local_model, plan.scene_tiles if plan.area is not None else None)
    return run, plan, local_model


def _execute(run: SceneRun, plan: ScenePlan, models: ModelChoice, local_model: TileModel | None) -> None:
    """Run the unfinished chunks: here, on one worker per GPU, or on the given cluster."""
    scheduler = plan.options.scheduler
    spread = models.spread() if scheduler is None else None
    if spread is not None:  # several GPUs: one worker process each, through the cluster path
        from sam2unext.geo.running.cluster import PerWorkerDevice, device_workers

        devices, loader = spread
        factory, key = ModelChoice(PerWorkerDevice(loader, devices)).factory()
        factory = tta_factory(factory, plan.options.tta)
        local_model = None  # the workers load their own copies: free this one's GPU memory
        loader.release()
        with device_workers(len(devices)) as client:
            run.run_distributed(client, factory, key)
    elif scheduler is None:
        assert local_model is not None  # loaded whenever scheduler is None
        run.run_local(local_model)
    else:
        factory, key = models.factory()
        run.run_distributed(scheduler, tta_factory(factory, plan.options.tta), key, plan.options.worker_timeout)
    if run.stats.tiles_run == 0:
        run.reporter.warning(
            f"{plan.name} has no valid pixel (nodata, NaN/inf, alpha or mask everywhere in bands "
            f"{','.join(map(str, dict.fromkeys(plan.read.bands)))}); the probability raster is all "
            f"nodata"
        )


def _vectorize(
    outputs: Outputs,
    local_out: Path,
    plan: ScenePlan,
    reporter: Progress,
    tmp: Path,
    created: list[Path],
    published: list[str | Path],
) -> tuple[float, Any, str]:
    """Polygons of the finished COG (``local_out``), clipped to the AOI: (area, GeoDataFrame or None,
    area unit); (0, None, the scene's area unit) without. A URL target is written in ``tmp`` and
    uploaded (then listed in ``published``)."""
    if outputs.vector is None:
        return 0.0, None, area_unit_of(plan.read.crs, plan.read.transform)
    options, area = plan.options, plan.area
    local_vec = staging_path(outputs.vector, tmp)
    vres = vectorize_raster(
        local_out,
        local_vec,
        threshold=options.threshold,
        min_area=options.min_area,
        fill_holes=options.fill_holes,
        simplify=options.simplify,
        regularize=options.regularize,
        vector_format=outputs.vector_format,
        overwrite=options.overwrite or options.resume,  # a resume replaces its own killed run's polygons
        progress=reporter,
        as_geodataframe=options.as_geodataframe,
        clip=area.geometry if area is not None else None,
    )
    created.append(local_vec)
    if is_url(outputs.vector):
        publish(local_vec, outputs.vector)
        published.append(outputs.vector)
    return vres.area, vres.geodataframe, vres.area_unit


def _result(
    source: Source,
    outputs: Outputs,
    plan: ScenePlan,
    stats: RunStats,
    seconds: float,
    area: tuple[float, str],
    gdf: Any,
    reporter: Progress,
) -> PredictResult:
    """The ``done`` event and the :class:`PredictResult` of a finished scene (``area``: total and unit)."""
    out, vec_path = outputs.probability, outputs.vector
    polygon_area, area_unit = area
    reporter.done(
        plan.name,
        str(out),
        str(vec_path) if vec_path else None,
        stats.tiles_run,
        stats.tiles_skipped,
        seconds,
        polygon_area,
        tiles_computed=stats.tiles_computed,
        tiles_resumed=stats.tiles_resumed,
        area_unit=area_unit,
    )
    return PredictResult(
        out,
        vec_path,
        stats.tiles_run,
        stats.tiles_skipped,
        seconds,
        polygon_area,
        open_probability(out) if plan.options.as_xarray else None,
        gdf,
        tiles_computed=stats.tiles_computed,
        tiles_resumed=stats.tiles_resumed,
        chunks=len(plan.chunks or ()),
        chunks_resumed=stats.chunks_resumed,
        scene_tiles=plan.scene_tiles,
        scene=source if isinstance(source, (str, Path)) else None,
        bands=tuple(plan.read.bands),
        area_unit=area_unit,
    )
