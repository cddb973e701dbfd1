"""``predict`` and ``vectorize``: run the geo pipeline on scenes, re-threshold probability rasters."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from sam2unext.errors import cli_words
from sam2unext.geo.options import SceneOptions
from sam2unext.geo.vectors.units import format_area

from .formatting import echo, seconds
from .inputs import (
    expand_scenes,
    local_output_folders,
    parse_bands,
    probability_outputs,
    quicklook_outputs,
    remove_empty_folders,
)
from .state import STATE
from .weights import model_loader, precision_line


class ProgressMode(str, Enum):
    bar = "bar"
    json = "json"
    none = "none"


class VectorFormat(str, Enum):
    gpkg = "gpkg"
    geojson = "geojson"
    fgb = "fgb"
    parquet = "parquet"


class OutDtype(str, Enum):
    uint8 = "uint8"
    float32 = "float32"


class ComputePrecision(str, Enum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class TTAMode(str, Enum):
    none = "none"
    flip = "flip"
    d4 = "d4"


PREDICT_EPILOG = """\b
Examples:
  sam2unext-geo predict scene.tif --checkpoint sam2unext-large-buildings.safetensors
  sam2unext-geo predict 'tiles/*.tif' -o results/ --checkpoint model.safetensors --device cuda --batch-size 16
  sam2unext-geo predict scene.tif --checkpoint SAM2-UNeXT.pth --preset sam2unext-large --bands 3,2,1
  sam2unext-geo predict scene.tif --checkpoint demo --progress json --overwrite
  sam2unext-geo predict scene.tif --checkpoint demo --bbox 13.40 52.50 13.42 52.52 --bbox-crs EPSG:4326
  sam2unext-geo predict scene.tif --checkpoint demo --aoi fields.gpkg
  sam2unext-geo predict scene.tif --checkpoint demo --quicklook
  sam2unext-geo predict scene.tif --checkpoint demo --tta d4 --regularize --min-area 20
\b
Outputs: <scene>_prob.tif (Cloud-Optimized GeoTIFF, probability 0..255) and
<scene>_prob_polygons.gpkg, next to the scene or in the -o folder.
"""

VECTORIZE_EPILOG = """\b
Examples:
  sam2unext-geo vectorize scene_prob.tif --threshold 0.6 --min-area 20
  sam2unext-geo vectorize scene_prob.tif -o buildings.fgb --simplify 0.5 --fill-holes
  sam2unext-geo vectorize scene_prob.tif -o roofs.gpkg --min-area 20 --regularize --regularize-tolerance 1
"""

Checkpoint = Annotated[
    Optional[str],
    typer.Option(
        "--checkpoint",
        "-c",
        help="Trained weights: our .safetensors, an upstream SAM2-UNeXT/SAM2-UNet .pth "
        "(with --preset), or 'demo' (synthetic-scene demo weights).",
        show_default=False,
    ),
]
PresetOpt = Annotated[
    Optional[str],
    typer.Option(
        "--preset",
        "-p",
        help="Model preset (see 'sam2unext-geo models'); needed for upstream .pth files. "
        "Without --checkpoint the weights are random (pipeline testing only).",
        show_default=False,
    ),
]
Hiera = Annotated[
    Optional[Path],
    typer.Option(
        "--hiera",
        help="SAM2 checkpoint (sam2_hiera_*.pt) for the encoder when building from --preset.",
        show_default=False,
    ),
]
Dinov2 = Annotated[
    Optional[Path],
    typer.Option(
        "--dinov2", help="DINOv2 weights (timm model.safetensors) when building from --preset.", show_default=False
    ),
]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
PrecisionOpt = Annotated[
    ComputePrecision,
    typer.Option(
        "--precision",
        help="auto (bfloat16 on CUDA, float32 on CPU), float32 (bit-exact), bfloat16 (on a CPU faster only "
        "with AVX512-BF16 or AMX, and the masks change slightly) or float16 (CUDA only).",
    ),
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
Threshold = Annotated[
    float, typer.Option("--threshold", "-t", min=0.0, max=1.0, help="Probability above which a pixel is foreground.")
]
MinArea = Annotated[
    float,
    typer.Option(
        "--min-area",
        min=0.0,
        help="Drop polygons smaller than this, in m² on any CRS (geodesic on a geographic CRS; px² without "
        "georeferencing).",
    ),
]
Simplify = Annotated[
    float,
    typer.Option("--simplify", min=0.0, help="Douglas-Peucker tolerance in metres on any CRS (0 = none)."),
]
FillHoles = Annotated[bool, typer.Option("--fill-holes", help="Remove holes inside polygons.")]
Regularize = Annotated[
    bool,
    typer.Option(
        "--regularize",
        help="Square building-like outlines: straight walls at right angles along each polygon's dominant "
        "direction (or its rotated rectangle); shapes that are not building-like keep their outline.",
    ),
]
RegularizeTolerance = Annotated[
    Optional[float],
    typer.Option(
        "--regularize-tolerance",
        min=0.0,
        help="Metres: outline details smaller than this are removed by --regularize (default: two pixel "
        "sizes); implies --regularize.",
        show_default=False,
    ),
]


def predict(
    scenes: Annotated[
        list[str],
        typer.Argument(
            help="Scene rasters (GeoTIFF or anything GDAL reads): several paths and/or quoted globs.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Optional[str],
        typer.Option(
            "--output",
            "-o",
            help="Probability .tif (one scene) or a folder (created) for all outputs; may be an s3:// or gs:// "
            "object or prefix.",
            show_default=False,
        ),
    ] = None,
    checkpoint: Checkpoint = None,
    preset: PresetOpt = None,
    hiera: Hiera = None,
    dinov2: Dinov2 = None,
    tile_size: Annotated[
        Optional[int],
        typer.Option(
            "--tile-size", min=16, help="Tile side in pixels (default: the model's input size).", show_default=False
        ),
    ] = None,
    overlap: Annotated[
        str,
        typer.Option(
            "--overlap",
            help="Tile overlap: a fraction of the tile in [0, 1), e.g. 0.25, or pixels, e.g. 64px. "
            "0 leaves seams at tile edges.",
        ),
    ] = "0.25",
    batch_size: Annotated[
        Optional[int],
        typer.Option(
            "--batch-size",
            "-b",
            min=1,
            help="Tiles per forward pass (default: 4 on CPU; on CUDA what fits the free GPU memory).",
            show_default=False,
        ),
    ] = None,
    device: Device = "auto",
    precision: PrecisionOpt = ComputePrecision.auto,
    compile_model: Annotated[
        bool, typer.Option("--compile", help="torch.compile the model (the first batch waits for the compile).")
    ] = False,
    bands: Annotated[
        Optional[str],
        typer.Option(
            "--bands",
            help="Bands to read: 1-based numbers, e.g. 3,2,1 (one band for grey), or band descriptions, "
            "e.g. red,green,blue. Default: the bands the file declares red/green/blue, else 1,2,3; a multispectral "
            "checkpoint takes its own count, e.g. 4,3,2,8 [the bands it was trained on].",
            show_default=False,
        ),
    ] = None,
    rgb_bands: Annotated[
        Optional[str],
        typer.Option(
            "--rgb-bands",
            help="Which of --bands carry the pretrained R,G,B kernels, e.g. 4,3,2 (must match a "
            "multispectral checkpoint; with --preset alone it builds an N-band model).",
            show_default=False,
        ),
    ] = None,
    resolution: Annotated[
        Optional[float],
        typer.Option("--resolution", help="Resample to this pixel size (map units) before tiling.", show_default=False),
    ] = None,
    threshold: Threshold = 0.5,
    vector: Annotated[bool, typer.Option("--vector/--no-vector", help="Also write polygons.")] = True,
    vector_format: Annotated[
        VectorFormat, typer.Option("--format", "-f", help="Polygon file format.")
    ] = VectorFormat.gpkg,
    min_area: MinArea = 0.0,
    simplify: Simplify = 0.0,
    fill_holes: FillHoles = False,
    regularize: Regularize = False,
    regularize_tolerance: RegularizeTolerance = None,
    tta: Annotated[
        TTAMode,
        typer.Option(
            "--tta",
            help="Test-time augmentation: average each tile's prediction over its mirror image (flip: 2 forward "
            "passes per tile) or its 8 rotations and mirror images (d4) before blending.",
        ),
    ] = TTAMode.none,
    out_dtype: Annotated[
        OutDtype, typer.Option("--dtype", help="Probability raster type: uint8 (0..255) or float32 (0..1).")
    ] = OutDtype.uint8,
    scheduler: Annotated[
        Optional[str],
        typer.Option(
            "--scheduler",
            help="dask.distributed scheduler address, e.g. tcp://host:8786 (default: threads in this "
            "process). The workers read the scenes and write the outputs' .partial stores themselves: scenes and "
            "outputs at s3:// or gs:// URLs, or on a filesystem every worker sees under the same paths.",
            show_default=False,
        ),
    ] = None,
    worker_timeout: Annotated[
        Optional[float],
        typer.Option(
            "--worker-timeout",
            metavar="SECONDS",
            help="With --scheduler: stop (exit 2, finished chunks kept for --resume) after this many seconds "
            "without any worker connected. A warning says as soon as none is. Default: wait for one.",
            show_default=False,
        ),
    ] = None,
    bbox: Annotated[
        Optional[tuple[float, float, float, float]],
        typer.Option(
            "--bbox",
            help="Segment only this box: MINX MINY MAXX MAXY in the scene's CRS (or --bbox-crs).",
            show_default=False,
        ),
    ] = None,
    bbox_crs: Annotated[
        Optional[str],
        typer.Option(
            "--bbox-crs", help="CRS of --bbox (e.g. EPSG:4326), and of an --aoi file that has none.", show_default=False
        ),
    ] = None,
    aoi: Annotated[
        Optional[Path],
        typer.Option(
            "--aoi",
            help="Segment only inside the polygons of this vector file (any CRS; reprojected).",
            show_default=False,
        ),
    ] = None,
    overwrite: Overwrite = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue an interrupted run from its <output>.partial store: only unfinished chunks are "
            "computed, and the result equals an uninterrupted run. With several scenes, finished ones are skipped.",
        ),
    ] = False,
    chunk_size: Annotated[
        Optional[int],
        typer.Option(
            "--chunk-size",
            help="Side of the output chunks (the unit of work and of --resume), a multiple of 512 "
            "(default: max(4096, 8 x tile size)).",
            show_default=False,
        ),
    ] = None,
    progress: Annotated[
        ProgressMode, typer.Option("--progress", help="bar (stderr), json (one event per line on stdout) or none.")
    ] = ProgressMode.bar,
    quicklook: Annotated[
        bool,
        typer.Option(
            "--quicklook",
            help="Also draw <scene>_quicklook.png next to the outputs: scene, probability, polygon outlines.",
        ),
    ] = False,
) -> None:
    """Segment scenes: tiles -> model -> seamless probability COG -> polygons.

    Needs weights: --checkpoint FILE (or --checkpoint demo), or --preset NAME.
    """
    from sam2unext.geo import make_progress

    reporter = make_progress(progress.value)
    reporter.words = cli_words  # warnings name --flags
    STATE.reporter = reporter
    t0 = time.perf_counter()
    paths = expand_scenes(scenes)
    band_sel = parse_bands(bands)
    loader = model_loader(
        checkpoint,
        preset,
        hiera,
        dinov2,
        device,
        precision.value,
        compile_model,
        bands=band_sel,
        rgb_bands=parse_bands(rgb_bands, "rgb_bands"),
    )
    options = scene_options(locals())
    from sam2unext.geo import predict_scenes  # imports torch: after the argument checks, so a typo fails fast

    made = local_output_folders(output)
    done: list[tuple[Path | str, object, Path | None]] = []  # scene, result, quick-look
    try:
        targets = probability_outputs(paths, output)
        looks = dict(zip(paths, quicklook_outputs(paths, targets, overwrite or resume) if quicklook else []))

        def finished(scene: Path | str, res) -> None:
            look = looks.get(scene)
            if look is not None:
                res.quicklook(look, bands=band_sel)
            done.append((scene, res, look))

        # the model loads once, for the first scene
        predict_scenes(paths, targets, model=loader, progress=reporter, on_result=finished, options=options)
    except BaseException:
        if not done:
            remove_empty_folders(made)  # a refused run leaves no empty output folder behind
        raise
    total = time.perf_counter() - t0
    reporter.complete(len(done), total)
    if progress is not ProgressMode.json:
        print_summary([d[0] for d in done], [d[1] for d in done], total, [d[2] for d in done])
        if done:
            echo(f"precision: {precision_line(loader)}")


#: How the flags of ``predict`` fill :class:`~sam2unext.geo.options.SceneOptions`: one row per
#: field, ``None`` where the flag's parameter has the field's name and its value as is, else a
#: function of the parsed flags. Adding a scene option: a ``SceneOptions`` field, its flag (a
#: parameter of ``predict``) and its row (docs/ARCHITECTURE.md, "Adding a scene option");
#: tests/cli/test_cli_flag_table.py checks that every field and every flag has its row.
SCENE_FLAGS: dict[str, Callable[[dict[str, Any]], Any] | None] = {
    "tile_size": None,
    "overlap": None,
    "batch_size": None,
    "chunk_size": None,
    "bands": lambda f: parse_bands(f["bands"]),
    "rgb_bands": lambda f: parse_bands(f["rgb_bands"], "rgb_bands"),
    "resolution": None,
    "aoi": lambda f: area_of_interest_option(f["bbox"], f["bbox_crs"], f["aoi"]),
    "aoi_crs": lambda f: f["bbox_crs"],
    "device": None,
    "precision": lambda f: f["precision"].value,
    "scheduler": None,
    "worker_timeout": None,
    "out_dtype": lambda f: f["out_dtype"].value,
    "vector": None,
    "vector_format": lambda f: f["vector_format"].value,
    "threshold": None,
    "min_area": None,
    "fill_holes": None,
    "simplify": None,
    "regularize": lambda f: regularize_option(f["regularize"], f["regularize_tolerance"]),
    "tta": lambda f: f["tta"].value,
    "overwrite": None,
    "resume": None,
}
#: ``SceneOptions`` fields the command does not set (Python API only).
API_ONLY = ("stretch", "as_xarray", "as_geodataframe")
#: Flags of ``predict`` that are not scene options: what to read, with which model, what to show.
OTHER_FLAGS = ("scenes", "output", "checkpoint", "preset", "hiera", "dinov2", "compile_model", "progress", "quicklook")


def scene_options(flags: dict[str, Any]) -> SceneOptions:
    """The :class:`~sam2unext.geo.options.SceneOptions` of ``predict``'s parsed flags (see :data:`SCENE_FLAGS`).

    Raises:
        typer.BadParameter: ``--bbox`` with ``--aoi``, or ``--bbox-crs`` alone.
        InputError: a value no scene could take (e.g. ``--overlap 2``).
    """
    return SceneOptions(**{name: flags[name] if how is None else how(flags) for name, how in SCENE_FLAGS.items()})


def regularize_option(regularize: bool, tolerance: Optional[float]) -> bool | float:
    """The ``regularize=`` value from ``--regularize`` / ``--regularize-tolerance`` (a tolerance implies it)."""
    return tolerance if tolerance is not None else regularize


def area_of_interest_option(
    bbox: Optional[tuple], bbox_crs: Optional[str], aoi: Optional[Path]
) -> Optional[tuple | str]:
    """The ``aoi=`` value for ``predict_raster`` from ``--bbox`` / ``--aoi`` (None: whole scene).

    Raises:
        typer.BadParameter: both given, or ``--bbox-crs`` without either.
    """
    if bbox is not None and aoi is not None:
        raise typer.BadParameter("--bbox and --aoi cannot be combined; give one area of interest")
    if bbox_crs is not None and bbox is None and aoi is None:
        raise typer.BadParameter("--bbox-crs needs --bbox (or an --aoi file without a CRS)")
    if bbox is not None:
        return tuple(float(v) for v in bbox)
    return str(aoi) if aoi is not None else None


def print_summary(scenes: list[Path | str], results: list, total: float, looks: list | None = None) -> None:
    """Per-scene lines and a total: outputs, tiles run, time, area found, quick-looks."""
    looks = looks or [None] * len(results)
    for scene, res, look in zip(scenes, results, looks):
        skipped = f", {res.tiles_skipped} empty skipped" if res.tiles_skipped else ""
        if res.chunks_resumed:
            resumed = getattr(res, "tiles_resumed", 0)
            skipped += f"; {res.tiles_computed} computed in this run, {resumed} taken from the resumed store"
        found = f", {res.area_text} found" if res.vector is not None else ""
        bands = f", bands {','.join(map(str, res.bands))}" if getattr(res, "bands", None) else ""
        echo(f"{scene}: {res.tiles_run} tiles{skipped}{bands} in {seconds(res.seconds)}{found}")
        echo(f"  probability: {res.probability}")
        if res.vector is not None:
            echo(f"  polygons:    {res.vector}")
        if look is not None:
            echo(f"  quick-look:  {look}")
    if len(results) > 1:
        tiles = sum(r.tiles_run for r in results)
        found = total_area(results)
        echo(f"total: {len(results)} scenes, {tiles} tiles in {seconds(total)}{found}")


def total_area(results: list) -> str:
    """``, <total> found`` over the scenes with polygons, one total per area unit."""
    sums: dict[str, float] = {}
    for r in results:
        if r.vector is not None:
            sums[r.area_unit] = sums.get(r.area_unit, 0.0) + r.area
    return "".join(f", {format_area(value, unit)} found" for unit, value in sums.items())


def vectorize(
    probability: Annotated[Path, typer.Argument(help="Probability raster written by predict.", show_default=False)],
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            help="Polygon file (default <raster stem>_polygons.<format> next to it).",
            show_default=False,
        ),
    ] = None,
    threshold: Threshold = 0.5,
    vector_format: Annotated[
        Optional[VectorFormat],
        typer.Option(
            "--format",
            "-f",
            help="gpkg, geojson, fgb or parquet (default: from the -o suffix, else gpkg).",
            show_default=False,
        ),
    ] = None,
    min_area: MinArea = 0.0,
    simplify: Simplify = 0.0,
    fill_holes: FillHoles = False,
    regularize: Regularize = False,
    regularize_tolerance: RegularizeTolerance = None,
    overwrite: Overwrite = False,
) -> None:
    """Re-threshold a probability raster into polygons without rerunning the model."""
    from sam2unext.geo import vectorize_raster

    t0 = time.perf_counter()
    res = vectorize_raster(
        probability,
        output,
        threshold=threshold,
        min_area=min_area,
        fill_holes=fill_holes,
        simplify=simplify,
        regularize=regularize_option(regularize, regularize_tolerance),
        vector_format=vector_format.value if vector_format else None,
        overwrite=overwrite,
        progress="none",
    )
    echo(
        f"{probability}: {res.count} polygons, {res.area_text} at threshold {threshold} "
        f"in {seconds(time.perf_counter() - t0)}"
    )
    echo(f"  polygons: {res.path}")
