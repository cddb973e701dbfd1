"""The Python API: ``predict_raster``, ``predict_scenes``, ``check_scene``, ``describe_raster``.

The façade: each function turns its keywords into one :class:`~sam2unext.geo.options.SceneOptions`
and one :class:`~sam2unext.geo.models.ModelChoice`, plans the scene
(:func:`~sam2unext.geo.scene_plan.plan_scene`) and runs it
(:func:`~sam2unext.geo.running.scene.run_scene`).

Example (notebook)::

    from sam2unext.geo import predict_raster

    res = predict_raster("scene.tif", "scene_prob.tif", checkpoint="demo",
                         tile_size=256, batch_size=8, as_xarray=True, as_geodataframe=True)
    res.data_array.plot()            # probability (0..255 for uint8 output), CRS attached
    res.geodataframe.explore()       # polygons with area, perimeter, mean/max probability
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sam2unext.errors import InputError, OutputError, option
from sam2unext.geo.model_contract import ModelSource
from sam2unext.geo.models import ModelChoice
from sam2unext.geo.options import Overlap, SceneOptions
from sam2unext.geo.progress import Progress, make_progress
from sam2unext.geo.reading.bands import default_bands
from sam2unext.geo.reading.opening import open_raster
from sam2unext.geo.result import PredictResult
from sam2unext.geo.running.device import CPU_BATCH
from sam2unext.geo.running.forward import measure_seconds_per_tile
from sam2unext.geo.running.pools import local_lanes
from sam2unext.geo.running.scene import run_scene
from sam2unext.geo.running.tta import forward_passes, with_tta
from sam2unext.geo.scene_plan import ScenePlan, plan_scene
from sam2unext.geo.storage import as_target, output_exists
from sam2unext.geo.vectors.units import units_of
from sam2unext.geo.writing.store import RunStore, store_path_for
from sam2unext.geo.writing.targets import check_outputs, default_output
from sam2unext.geo.xarray_io import Source

__all__ = [
    "DEFAULT_TILE",
    "Overlap",
    "PredictResult",
    "SceneOptions",
    "check_scene",
    "default_output",
    "describe_raster",
    "predict_raster",
    "predict_scenes",
]

#: Tile side ``describe_raster`` assumes without a model (the input size of the real presets).
DEFAULT_TILE = 1024


def predict_raster(
    source: Source,
    output: str | Path | None = None,
    *,
    model: ModelSource = None,
    checkpoint: str | Path | None = None,
    preset: str | None = None,
    progress: str | Progress | None = "bar",
    options: SceneOptions | None = None,
    **keywords: Any,
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
        checkpoint, preset: passed to ``sam2unext.load_model`` (with ``device`` and
            ``precision``) when ``model`` is None.
        progress: ``"bar"``, ``"json"``, ``"none"`` or a ``Progress`` instance.
        options: a :class:`~sam2unext.geo.options.SceneOptions` (default: all defaults).
        **keywords: scene options, each replacing the field of ``options`` of its name:
            ``tile_size``, ``overlap``, ``batch_size``, ``chunk_size``, ``bands``, ``rgb_bands``,
            ``stretch``, ``resolution``, ``aoi``, ``aoi_crs``, ``device``, ``precision``,
            ``scheduler``, ``out_dtype``, ``vector``, ``vector_format``, ``threshold``,
            ``min_area``, ``fill_holes``, ``simplify``, ``regularize``, ``tta``, ``overwrite``,
            ``resume``, ``as_xarray``, ``as_geodataframe`` (meanings and
            defaults: :class:`~sam2unext.geo.options.SceneOptions`).

    Returns:
        :class:`PredictResult`.

    Raises:
        TypeError: a keyword that is no scene option.
        InputError: unreadable source, bad bands/stretch/resolution/overlap/chunk size.
        OutputError: existing output without ``overwrite``, an unfinished run without
            ``resume``/``overwrite``, nothing to resume, a mismatched resume, an unwritable
            folder or a full disk, bad format.
        PresetError, CheckpointError: from ``sam2unext.load_model``.
    """
    opts = SceneOptions.build(options, **keywords)
    models = ModelChoice(model, checkpoint, preset, opts.device, opts.precision)
    return run_scene(source, output, opts, models, make_progress(progress))


def check_scene(
    source: str | Path,
    output: str | Path | None = None,
    *,
    model: ModelSource = None,
    checkpoint: str | Path | None = None,
    preset: str | None = None,
    options: SceneOptions | None = None,
    **keywords: Any,
) -> ScenePlan:
    """Every check :func:`predict_raster` makes before it loads the model, without running or changing anything.

    A front end with several scenes calls it on each first, so that a bad third scene is
    reported before the first two are written. Arguments as :func:`predict_raster` (a path
    source only).

    Returns:
        The scene's :class:`~sam2unext.geo.scene_plan.ScenePlan` (tiles laid when ``tile_size``
        is given), which a run can follow.

    Raises:
        InputError, OutputError: as :func:`predict_raster` would, before loading the model.
    """
    opts = SceneOptions.build(options, **keywords)
    models = ModelChoice(model, checkpoint, preset, opts.device, opts.precision)
    return _preflight(source, output, opts, models)


def _preflight(
    source: str | Path,
    output: str | Path | None,
    options: SceneOptions,
    models: ModelChoice,
    warn: Callable[[str], None] | None = None,
) -> ScenePlan:
    """The outputs checked (nothing discarded) and the scene planned (see :func:`check_scene`)."""
    check_outputs(output if output is not None else default_output(source), options, discard=False)
    return plan_scene(source, options, models, warn=warn)


def predict_scenes(
    sources: Sequence[str | Path],
    outputs: Sequence[str | Path | None] | None = None,
    *,
    model: ModelSource = None,
    checkpoint: str | Path | None = None,
    preset: str | None = None,
    progress: str | Progress | None = "bar",
    on_result: Callable[[str | Path, PredictResult], None] | None = None,
    options: SceneOptions | None = None,
    **keywords: Any,
) -> list[PredictResult]:
    """Segment several scenes with one model, loaded once.

    Every scene is checked and planned (:func:`check_scene`) before the model loads, so a bad
    third scene is reported before the first is written; each run then follows its plan. With
    ``resume``, scenes with an unfinished run are resumed, finished ones (output present, no
    unfinished run) are skipped with a warning, and the others start.

    Args:
        sources: scene paths.
        outputs: one probability path per scene (None: :func:`default_output` for each).
        model, checkpoint, preset, progress, options, **keywords: as :func:`predict_raster`,
            for every scene (one reporter for all scenes).
        on_result: called with each scene and its result as soon as it is done.

    Returns:
        The results of the scenes that ran, in order.

    Raises:
        InputError, OutputError: a scene fails its checks (nothing is written), or ``resume``
            finds nothing to resume.
    """
    opts = SceneOptions.build(options, **keywords)
    targets = list(outputs) if outputs is not None else [None] * len(sources)
    if len(targets) != len(sources):
        raise InputError(f"{len(targets)} outputs for {len(sources)} scenes; give one output per scene")
    reporter = make_progress(progress) if not isinstance(progress, Progress) else progress
    modes = _resume_modes(sources, targets) if opts.resume and len(sources) > 1 else [opts.resume] * len(sources)
    models = ModelChoice(model, checkpoint, preset, opts.device, opts.precision)
    if model is None:  # one loader: the model loads once, for the first scene
        note = models.weights_note()
        if note:
            reporter.warning(note)
        models = ModelChoice(models.loader(), checkpoint, preset, opts.device, opts.precision)
    plans = [
        _preflight(source, target, replace(opts, resume=mode), models, reporter.warning) if mode is not None else None
        for source, target, mode in zip(sources, targets, modes)
    ]
    results = []
    for source, target, mode, plan in zip(sources, targets, modes, plans):
        if mode is None:
            reporter.warning(f"{source}: already complete, skipped")
            continue
        res = run_scene(source, target, replace(opts, resume=mode), models, reporter, plan)
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


def describe_raster(
    path: str | Path,
    *,
    model: ModelSource = None,
    checkpoint: str | Path | None = None,
    preset: str | None = None,
    options: SceneOptions | None = None,
    **keywords: Any,
) -> dict[str, Any]:
    """What :func:`predict_raster` would do with a scene: size, bands, CRS, stretch, tiles, chunks, time.

    With a model (``model``, or ``checkpoint``/``preset``) the time per tile is measured on
    ``device`` (one warm-up and one timed batch of random tiles, as the pipeline runs them) at
    the model's precision (``precision`` and ``precision_reason`` in the result) and the whole
    scene's time is estimated.

    Args:
        model, checkpoint, preset, options, **keywords: as :func:`predict_raster`; of the
            options, those that shape the plan count (``tile_size``: default the model's input
            size, else 1024, not clamped to the scene; ``batch_size``: default 4; ``overlap``,
            ``chunk_size``, ``bands``, ``rgb_bands``, ``stretch``, ``resolution``, ``aoi``,
            ``aoi_crs``, ``device``, ``precision``), the output options do not.

    Raises:
        InputError: unreadable raster, bad bands/resolution.
        PresetError, CheckpointError: from ``sam2unext.load_model``.
    """
    opts = SceneOptions.build(options, **keywords)
    models = ModelChoice(model, checkpoint, preset, opts.device, opts.precision)
    facts = _header_facts(path)
    plan = plan_scene(path, opts, models, for_run=False)
    loaded = models.load() if models.named else None
    tile = int(opts.tile_size or (loaded.input_size if loaded is not None else DEFAULT_TILE))
    batch = int(opts.batch_size or CPU_BATCH)
    plan = plan.with_tiles(tile, batch, check=False)
    assert plan.grid is not None and plan.chunks is not None
    facts.update(
        {
            "bands_used": list(plan.read.bands),
            "stretch": [list(p) for p in plan.read.stretch] if plan.read.stretch else None,
            "grid": [plan.read.height, plan.read.width],
            "tile_size": tile,
            "overlap": opts.overlap,
            "tiles": len(plan.grid),
            "chunk_size": plan.chunks.size,
            "chunks": len(plan.chunks),
            "computations": plan.computations,
            "tta": opts.tta,
            "forward_passes": plan.computations * forward_passes(opts.tta),
        }
    )
    if loaded is not None:
        from sam2unext import precision_facts

        facts.update(precision_facts(loaded))  # the precision predict runs, which the timing measures
        facts.update(_model_facts(with_tta(loaded, opts.tta), tile, batch, plan.computations))
    return facts


def _header_facts(path: str | Path) -> dict[str, Any]:
    """What the scene's header says: driver, size, bands, types, CRS, transform, nodata, overviews."""
    with open_raster(path) as src:
        return {
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
            "units": units_of(src.crs, src.transform).describe(),
        }


def _model_facts(loaded: Any, tile: int, batch: int, computations: int) -> dict[str, Any]:
    """The model's device, name and size, its measured time per tile and the scene's estimated time."""
    per_tile = measure_seconds_per_tile(loaded, tile, batch, lanes=local_lanes(loaded))
    params = list(getattr(loaded, "parameters", list)())  # a torch module's; none for a stand-in
    first = params[0] if params else None
    return {
        "device": str(first.device) if first is not None else "cpu",
        "model": getattr(loaded, "preset", type(loaded).__name__),
        "parameters": sum(p.numel() for p in params) if first is not None else None,
        "seconds_per_tile": per_tile,
        "estimated_seconds": per_tile * computations,
    }
