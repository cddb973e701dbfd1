"""One scene's run: output checks, tiling check, resume manifest, the chunked run and its COG."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rasterio
from rasterio.errors import NotGeoreferencedWarning

from sam2unext.errors import ClusterError, InputError, OutputError, option
from sam2unext.geo.model_contract import ModelFactory, TileModel
from sam2unext.geo.progress import Progress
from sam2unext.geo.reading.aoi import AreaOfInterest
from sam2unext.geo.reading.opening import is_georeferenced
from sam2unext.geo.reading.plan import ReadPlan
from sam2unext.geo.running.chunks import ChunkGrid, tile_computations
from sam2unext.geo.running.execution import (
    ChunkJob,
    ChunkStatus,
    RunStats,
    local_lanes,
    measure_seconds_per_tile,
    run_local,
)
from sam2unext.geo.running.fingerprint import environment_fingerprint, scene_fingerprint
from sam2unext.geo.running.tiling import (
    TileGrid,
    available_memory,
    estimate_memory,
    make_grid,
)
from sam2unext.geo.storage import Location, check_remote_output, is_url, name_of, output_exists, parent_of
from sam2unext.geo.vectors.vectorize import leftover_vector_temporaries
from sam2unext.geo.writing.cog import (
    ProbabilityWriter,
    check_output,
    leftover_temporaries,
    remove_quietly,
    write_from_store,
)
from sam2unext.geo.writing.store import RunStore, disk_full_error, store_path_for

if TYPE_CHECKING:
    from distributed import Client

#: GDAL block cache while running, in bytes (rasterio passes the value to GDAL as bytes):
#: bounded so memory does not grow with the scene.
GDAL_CACHE_BYTES = 32 * 2**20


#: Share of the available memory a run may plan to use (tile size x batch estimate).
MEMORY_SHARE = 0.8


def check_tiling(plan: ReadPlan, tile_size: int, overlap: float | str, batch_size: int) -> TileGrid:
    """The tile grid, after refusing tilings that cannot run.

    Raises:
        InputError: a bad overlap, or a tile size and batch whose memory (see
            :func:`~sam2unext.geo.running.tiling.estimate_memory`) exceeds the memory available.
    """
    grid = make_grid(plan.height, plan.width, tile_size, overlap)
    source_bytes = 3 if plan.stretch is None else 12  # uint8, else up to float32 per band
    need = estimate_memory(tile_size, batch_size, plan.width, source_bytes)
    free = available_memory()
    if free is not None and need > MEMORY_SHARE * free:
        raise InputError(
            f"tile_size {tile_size} with batch_size {batch_size} needs about {need / 1e9:.1f} GB of memory but "
            f"{free / 1e9:.1f} GB are available; use a smaller {option('tile_size', 1024)} or "
            f"{option('batch_size', 1)}"
        )
    return grid


def output_tags(plan: ReadPlan) -> dict[str, str]:
    """GDAL metadata items of the probability raster: the input bands used as red, green, blue."""
    return {"SAM2UNEXT_BANDS": ",".join(map(str, plan.bands))}


def check_outputs(out: str | Path, overwrite: bool, resume: bool, discard: bool = True) -> tuple[str | Path, RunStore]:
    """The checked output path (or ``s3://``/``gs://`` URL) and its run store; refuses what would lose or mix work.

    ``discard``: remove an unfinished run's store when ``overwrite`` (False: only check).

    Raises:
        OutputError: an unfinished run without resume/overwrite, nothing to resume, an existing
            output without overwrite, an unwritable folder; for a URL also a missing bucket,
            no credentials or denied access.
    """
    store = RunStore(store_path_for(out))

    def check(target: str | Path, replace: bool) -> str | Path:
        return check_remote_output(str(target), replace) if is_url(target) else check_output(target, replace)

    if resume:
        if not store.exists():
            done = " (the output is complete)" if output_exists(out) else ""
            raise OutputError(
                f"nothing to resume for {out}: no unfinished run in {store.folder}{done}; drop {option('resume')}"
            )
        return check(out, True), store
    if store.present():
        if not overwrite:
            raise OutputError(
                f"an unfinished run of {out} is in {store.folder}; pass {option('resume')} to "
                f"continue it or {option('overwrite')} to discard it and start over"
            )
        if discard:
            store.remove()
    return check(out, overwrite), store


def remove_leftovers(out: str | Path, vector: str | Path | None) -> None:
    """Remove the temporary files a killed run of these outputs left beside them (a resume's own).

    Only the names this package makes for these outputs (:func:`leftover_temporaries`,
    :func:`leftover_vector_temporaries`) are removed; outputs at URLs are built in a scratch
    folder and leave nothing beside them.
    """
    found = [] if is_url(out) else leftover_temporaries(Path(out))
    if vector is not None and not is_url(vector):
        found += leftover_vector_temporaries(Path(vector))
    remove_quietly(*found)


def scene_manifest(
    src_path: str | Path,
    plan: ReadPlan,
    grid: TileGrid,
    chunks: ChunkGrid,
    out_dtype: str,
    weights: dict[str, Any],
    area: AreaOfInterest | None = None,
) -> dict[str, Any]:
    """What must match for a resume: input, grid, AOI, tiles, chunks, output type, weights, versions.

    The input is fingerprinted by its content, never its path, so a run folder moved or mounted
    elsewhere, or a DataArray written to a new temporary file, resumes: a local scene by
    :func:`scene_fingerprint` (size, sampled bytes, GDAL's header), an object by its size and
    version tag (ETag or generation: one HEAD request).
    """
    if is_url(src_path):
        inp = dict(Location(parent_of(str(src_path)), output=False).info(name_of(str(src_path))))
    else:
        inp = scene_fingerprint(src_path)
    return {
        "input": inp,
        "grid": {
            "height": plan.height,
            "width": plan.width,
            "transform": list(plan.transform)[:6],
            "crs": plan.crs,
            "bands": list(plan.bands),
            "stretch": [list(p) for p in plan.stretch] if plan.stretch else None,
            "resample": plan.resample,
            "masked": plan.masked,
            "offset": list(plan.offset),
        },
        "aoi": None if area is None else hashlib.blake2b(area.geometry.wkb, digest_size=16).hexdigest(),
        "tiles": {"tile_size": grid.tile_size, "overlap_px": grid.overlap_px},
        "chunk_size": chunks.size,
        "out_dtype": out_dtype,
        "weights": json.loads(json.dumps(weights, default=str)),
        "environment": environment_fingerprint(),
    }


def warn_about(reporter: Progress, scene: str, plan: ReadPlan, grid: TileGrid, vector: bool) -> None:
    """Warnings that do not stop a run: seams with overlap 0, no georeferencing."""
    if grid.overlap_px == 0 and len(grid) > 1:
        reporter.warning(
            f"overlap 0: tile edges will show as seams in {scene}; {option('overlap', 0.25)} blends them away"
        )
    if not is_georeferenced(plan.crs, plan.transform):
        reporter.warning(
            f"{scene} has no georeferencing (no CRS, no geotransform): the probability raster has none "
            f"either"
            + (
                ", and the polygons are in pixel units (x = column, y = -row, where QGIS shows such a raster)"
                if vector
                else ""
            )
        )


#: Measured seconds per tile by (model id, tile size), so several scenes measure once.
_SECONDS_PER_TILE: dict[tuple[int, int], float] = {}


class SceneRun:
    """One scene's chunked run: store, chunk tasks, counts and progress, the final COG."""

    def __init__(
        self,
        plan: ReadPlan,
        grid: TileGrid,
        chunks: ChunkGrid,
        store: RunStore,
        batch_size: int,
        out_dtype: str,
        reporter: Progress,
        area: AreaOfInterest | None = None,
    ):
        self.plan, self.grid, self.chunks, self.store, self.area = plan, grid, chunks, store, area
        self.batch_size, self.out_dtype, self.reporter = int(batch_size), out_dtype, reporter
        self.stats = RunStats()
        self.todo: list[int] = []
        self.total = tile_computations(grid, chunks)
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
        finished = self.store.finished()
        for status in finished.values():
            self.stats.count(status, resumed=True)
        self._tiles = self.stats.computed
        self.todo = [k for k in range(len(self.chunks)) if k not in finished]

    def announce(self, scene: str, local_model: TileModel | None, scene_tiles: int | None = None) -> None:
        """The ``start`` event: tiles, chunks, recomputation and, when measurable, the estimated time."""
        info: dict[str, Any] = {
            "bands": list(self.plan.bands),
            "chunks": len(self.chunks),
            "computations": self.total,
            "resumed_chunks": self.stats.chunks_resumed,
            "estimated_seconds": None,
        }
        if scene_tiles is not None:
            info["scene_tiles"] = scene_tiles  # tiles of the whole scene, against those of the AOI window
        remaining = self.total - self.stats.computed
        if local_model is not None and remaining > 8 * self.batch_size:
            key = (id(local_model), self.grid.tile_size)
            if key not in _SECONDS_PER_TILE:  # once per model and tile size; one tile (little memory)
                _SECONDS_PER_TILE[key] = measure_seconds_per_tile(
                    local_model, self.grid.tile_size, 1, lanes=local_lanes(local_model)
                )
            per_tile = _SECONDS_PER_TILE[key]
            info.update(seconds_per_tile=round(per_tile, 6), estimated_seconds=round(per_tile * remaining, 1))
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
            run_local(model, self.job, self.todo, on_done=self.stats.count, on_tiles=self._on_tiles, tick=self._tick)
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
            self._on_tiles(status.computed)

        try:
            with DistributedRun(
                scheduler, factory, key, warn=self.reporter.warning, worker_timeout=worker_timeout
            ) as cluster:
                cluster.run(self.job, self.todo, on_done=on_done, tick=self._tick)
        except ClusterError:
            self._keep = True  # its message says to rerun with resume once workers are back
            raise
        self._tick()

    def write_cog(self, out: Path, replace: bool) -> None:
        """Build the probability COG from the finished store (streamed chunk row by chunk row) at the local ``out``.

        Raises:
            OutputError: the disk is full (the store is kept for a resume).
        """
        height = self.plan.height
        self.reporter.update("write", 0, height)
        try:
            with (
                run_gdal_env(),
                ProbabilityWriter(
                    out,
                    height=height,
                    width=self.plan.width,
                    transform=self.plan.transform,
                    crs=self.plan.crs,
                    out_dtype=self.out_dtype,
                    overwrite=replace,
                    masked=self.plan.masked,
                    tags=output_tags(self.plan),
                ) as writer,
            ):
                write_from_store(
                    self.store,
                    writer,
                    self.chunks.size,
                    on_rows=lambda rows: self.reporter.update("write", rows, height),
                )
                writer.commit()
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
        done = len(self.store.finished())
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
