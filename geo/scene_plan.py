"""What a scene run will do, decided before it runs: :func:`plan_scene` → :class:`ScenePlan`.

One plan serves the run (``predict_raster``), the pre-flight check of several scenes
(``check_scene`` / ``predict_scenes``, whose plans the runs then follow) and ``describe_raster``
(the command's ``info``): it reads the scene's header, chooses bands and stretch, resolves
the area of interest, lays the tile grid and the output chunks, and counts the forward passes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sam2unext.errors import InputError, option
from sam2unext.geo.options import SceneOptions
from sam2unext.geo.reading.aoi import AreaOfInterest, resolve_aoi
from sam2unext.geo.reading.array_raster import ArraySource
from sam2unext.geo.reading.model_bands import make_model_plan
from sam2unext.geo.reading.plan import ReadPlan
from sam2unext.geo.running.chunks import ChunkGrid, make_chunk_grid, tile_computations
from sam2unext.geo.running.device import CPU_BATCH
from sam2unext.geo.running.tiling import (
    TileGrid,
    available_memory,
    check_scene_size,
    clamp_tile,
    estimate_memory,
    make_grid,
)
from sam2unext.geo.storage import name_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from sam2unext.geo.models import ModelChoice

#: Share of the available memory a run may plan to use (tile size x batch estimate).
MEMORY_SHARE = 0.8


@dataclass(frozen=True)
class ScenePlan:
    """One scene's plan.

    Attributes:
        name: the scene's name in messages (a file name, or the DataArray's name).
        source: the raster read: a path, or for a dask-backed DataArray its
            :class:`~sam2unext.geo.reading.array_raster.ArraySource` (another DataArray: the
            GeoTIFF it was written to).
        read: bands, stretch and grid of the reads (the AOI's window with an ``aoi``).
        options: the run's options.
        area: the area of interest on the scene grid, or None.
        tile_size, batch_size, grid, chunks: the tiling, once the tile size is known (from
            ``options.tile_size`` or the model's input size; None before).
        checked: the (tile size, batch) whose memory was checked against what is available.
    """

    name: str
    source: str | Path | ArraySource
    read: ReadPlan
    options: SceneOptions
    area: AreaOfInterest | None = None
    tile_size: int | None = None
    batch_size: int | None = None
    grid: TileGrid | None = None
    chunks: ChunkGrid | None = None
    checked: tuple[int, int] | None = None

    def with_tiles(self, tile_size: int, batch_size: int, *, check: bool = True) -> ScenePlan:
        """This plan with tiles of ``tile_size`` run ``batch_size`` at a time, and its chunks.

        Args:
            check: refuse a tiling whose memory exceeds what is available (once per tile
                size and batch: a tiling checked before is not checked again).

        Raises:
            InputError: a bad overlap, chunk size, or a tiling over the memory.
        """
        tile, batch = int(tile_size), int(batch_size)
        if check and self.checked != (tile, batch):
            grid = check_tiling(self.read, tile, self.options.overlap, batch)
            checked: tuple[int, int] | None = (tile, batch)
        else:
            grid, checked = make_grid(self.read.height, self.read.width, tile, self.options.overlap), self.checked
        chunks = make_chunk_grid(self.read.height, self.read.width, tile, self.options.chunk_size)
        return replace(self, tile_size=tile, batch_size=batch, grid=grid, chunks=chunks, checked=checked)

    def for_model(self, input_size: int | None, batch_size: Callable[[int], int] | int | None = None) -> ScenePlan:
        """The run's tiling once the model is known: the tile clamped to the scene (or the model's
        input size if larger), the batch given, else ``batch_size(tile)`` (e.g. what fits a GPU).

        Raises:
            InputError: as :meth:`with_tiles`.
        """
        requested = self.options.tile_size or input_size
        if requested is None:
            raise ValueError("the tile size is unknown: pass options.tile_size or the model's input size")
        tile = clamp_tile(int(requested), self.read.height, self.read.width, input_size)
        batch = self.options.batch_size
        if batch is None:
            batch = batch_size(tile) if callable(batch_size) else (batch_size or CPU_BATCH)
        return self.with_tiles(tile, int(batch))

    @property
    def computations(self) -> int:
        """Forward passes of the whole run (tiles at chunk borders count once per chunk)."""
        assert self.grid is not None and self.chunks is not None, "tiles not laid yet"
        return tile_computations(self.grid, self.chunks)

    @property
    def scene_tiles(self) -> int:
        """Tiles of the whole scene's grid (with an AOI, the scene around its window)."""
        assert self.grid is not None and self.tile_size is not None, "tiles not laid yet"
        if self.area is None:
            return len(self.grid)
        return len(make_grid(*self.area.full_size, self.tile_size, self.options.overlap))


def plan_scene(
    source: str | Path | ArraySource,
    options: SceneOptions,
    models: ModelChoice | None = None,
    *,
    name: str | None = None,
    warn: Callable[[str], None] | None = None,
    for_run: bool = True,
) -> ScenePlan:
    """Plan a scene: header, bands and stretch (the model's, or chosen), AOI, and the tiling
    when ``options.tile_size`` is given (else :meth:`ScenePlan.for_model` lays it).

    Args:
        source: a raster path, or a dask-backed array (:func:`~sam2unext.geo.xarray_io.scene_source`).
        options: the run's options.
        models: the model (its bands decide how many are read); None: an RGB model.
        name: the scene's name in messages (default: the file name).
        warn: receives warnings that do not stop the run (bands picked by position).
        for_run: True: the refusals of a run (a scene too small to segment, a tiling over the
            memory) and the tile clamped to the scene; False: the scene as ``describe_raster``
            reports it, nothing refused but unreadable input and bad options.

    Raises:
        InputError: unreadable source, bad bands/stretch/resolution/AOI, a scene too small, a
            tiling over the memory.
    """
    from sam2unext.geo.models import ModelChoice

    models = models if models is not None else ModelChoice()
    if name is None:
        name = source.name if isinstance(source, ArraySource) else name_of(source)
    read = make_model_plan(
        source,
        models.band_config(),
        bands=options.bands,
        stretch=options.stretch,
        resolution=options.resolution,
        rgb_bands=options.rgb_bands,
        warn=warn,
    )
    area = resolve_aoi(
        options.aoi, options.aoi_crs, crs=read.crs, transform=read.transform, height=read.height, width=read.width
    )
    if area is not None:
        read = read.within(area.window)
    plan = ScenePlan(name, source, read, options, area)
    if not for_run:
        return plan
    check_scene_size(read.height, read.width, name)
    if options.tile_size is not None:  # refuse a bad tiling before the model loads
        tile = clamp_tile(int(options.tile_size), read.height, read.width)
        plan = plan.with_tiles(tile, int(options.batch_size or CPU_BATCH))
    return plan


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
