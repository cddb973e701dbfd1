"""The ``sam2unext-geo`` argument lists and its JSON-lines progress stream (pure Python)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Optional


@dataclass
class PredictOptions:
    """Everything ``sam2unext-geo predict`` needs; mirrors the dialog and the Processing algorithm."""

    scene: str
    out_dir: str
    preset: Optional[str] = None
    checkpoint: Optional[str] = None
    tile_size: Optional[int] = None
    overlap: float = 0.25
    batch_size: int = 4
    device: str = "auto"
    bands: Optional[str] = None
    threshold: float = 0.5
    vector: bool = True
    overwrite: bool = False
    resume: bool = False  # continue from the output's .partial store (after a crash)
    bbox: Optional[tuple] = None  # (minx, miny, maxx, maxy) in ``bbox_crs``
    bbox_crs: Optional[str] = None  # e.g. "EPSG:4326"; None = the scene's CRS
    aoi: Optional[str] = None  # polygon file (any CRS) to segment within
    tta: str = "none"  # test-time augmentation: one of TTA_MODES
    regularize: bool = False  # square building-like outlines (needs ``vector``)
    regularize_tolerance: Optional[float] = None  # metres; None or 0 = the command's default (two pixel sizes)


#: ``--tta`` values with the words the plugin shows for them (dialog combo, Processing enum).
TTA_MODES = {
    "none": "None (one pass per tile)",
    "flip": "Flip (2 passes per tile)",
    "d4": "Rotations and flips (8 passes per tile)",
}


#: The words each option of the command has in the plugin (dialog label = Processing parameter
#: description), keyed by API name as in the ``options`` list of the JSON ``error`` event.
OPTION_LABELS = {
    "overwrite": "Overwrite existing outputs",
    "resume": "Resume an interrupted run",
    "vector": "Vectorize to polygons",
    "tile_size": "Tile size",
    "overlap": "Overlap",
    "batch_size": "Batch size",
    "device": "Device",
    "bands": "Bands",
    "threshold": "Threshold",
    "checkpoint": "Checkpoint",
    "preset": "Preset",
    "aoi": "Area of interest",
    "output": "Output folder",
    "tta": "Test-time augmentation",
    "regularize": "Square building outlines",
    "regularize_tolerance": "Outline tolerance",
}
#: The command's short flags the plugin passes, by API name (``-o`` is ``output``).
SHORT_FLAGS = {"output": "-o"}


def output_names(options: PredictOptions) -> list[str]:
    """The final file names ``predict -o FOLDER`` writes for this scene (probability first)."""
    prob = os.path.splitext(os.path.basename(options.scene))[0] + "_prob.tif"
    names = [prob]
    if options.vector:
        names.append(prob[: -len(".tif")] + "_polygons.gpkg")
    return names


def plugin_words(message: str, options: Optional[list] = None, labels: Optional[dict] = None) -> str:
    """The command's error ``message`` with the flags it names in the plugin's own words.

    ``options`` are the API names from the ``error`` event (``["overwrite"]``): ``pass --overwrite``
    becomes ``tick “Overwrite existing outputs”``, ``drop --x``/``pass --no-x`` become ``untick “…”``,
    any other ``--x`` becomes ``“…”``. Options the plugin has no widget for keep the command's words.
    The output folder, which the plugin always passes as ``-o``, is named by its widget whether or
    not the event lists it: ``choose another with -o`` becomes ``choose another “Output folder”``.
    """
    labels = OPTION_LABELS if labels is None else labels
    for name in options or ():
        label = labels.get(name)
        if not label:
            continue
        flag = re.escape("--" + name.replace("_", "-"))
        no_flag = re.escape("--no-" + name.replace("_", "-"))
        message = re.sub(rf"\bpass {flag}(?![\w-])", f"tick “{label}”", message)
        message = re.sub(rf"\b(?:drop {flag}|pass {no_flag})(?![\w-])", f"untick “{label}”", message)
        message = re.sub(rf"(?:{no_flag}|{flag})(?![\w-])", f"“{label}”", message)
    for name, short in SHORT_FLAGS.items():
        label = labels.get(name)
        if label:
            flags = rf"(?:{re.escape(short)}|--{name.replace('_', '-')})(?![\w-])"
            message = re.sub(rf"\banother (?:with|in) {flags}", f"another “{label}”", message)
            message = re.sub(rf"\b(?:with|in) {flags}", f"in “{label}”", message)
            message = re.sub(rf"(?<![\w-]){flags}", f"“{label}”", message)
    return message


def check_output_folder(folder: str) -> None:
    """The output folder can be written: it exists and is writable, or the nearest folder above
    it that exists is (the command creates it).

    Raises:
        ValueError: empty, a file, or not writable; names the widget.
    """
    label = OPTION_LABELS["output"]
    if not folder:
        raise ValueError(f"Choose an “{label}”.")
    path = os.path.abspath(folder)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"“{label}” {path} is a file; choose a folder.")
    existing = path
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" (its parent {existing} is read-only)"
        raise ValueError(f"“{label}” {path} is not writable{where}; choose another “{label}”.")


def predict_args(executable: str, options: PredictOptions) -> list[str]:
    """Build the argument list of a ``predict`` run with the JSON progress stream.

    Args:
        executable: path of ``sam2unext-geo``.
        options: run options; ``checkpoint`` wins over ``preset`` when both are set, except that
            a preset is still passed along (upstream ``.pth`` files need it).

    Returns:
        The argument list for :class:`subprocess.Popen` (no shell).

    Raises:
        ValueError: neither a preset nor a checkpoint is given.
    """
    if not options.preset and not options.checkpoint:
        raise ValueError("Choose a preset or a checkpoint file for the weights.")
    args = [executable, "predict", os.path.abspath(options.scene), "-o", os.path.abspath(options.out_dir)]
    if options.checkpoint:
        args += ["--checkpoint", str(options.checkpoint)]
    if options.preset:
        args += ["--preset", options.preset]
    if options.tile_size:
        args += ["--tile-size", str(int(options.tile_size))]
    args += [
        "--overlap",
        _num(options.overlap),
        "--batch-size",
        str(int(options.batch_size)),
        "--device",
        options.device,
        "--threshold",
        _num(options.threshold),
    ]
    if options.bands:
        args += ["--bands", normalize_bands(options.bands)]
    if options.tta not in TTA_MODES:
        raise ValueError(f"“{OPTION_LABELS['tta']}” {options.tta!r} must be one of: {', '.join(TTA_MODES)}.")
    if options.tta != "none":
        args += ["--tta", options.tta]
    args += ["--vector" if options.vector else "--no-vector", "--format", "gpkg"]
    if options.regularize:
        if not options.vector:
            raise ValueError(f"“{OPTION_LABELS['regularize']}” needs “{OPTION_LABELS['vector']}”; tick it.")
        args.append("--regularize")
        tolerance = float(options.regularize_tolerance or 0.0)
        if tolerance < 0:
            raise ValueError(f"“{OPTION_LABELS['regularize_tolerance']}” {tolerance} m must be 0 (default) or more.")
        if tolerance > 0:
            args += ["--regularize-tolerance", _num(tolerance)]
    if options.overwrite:
        args.append("--overwrite")
    if options.resume:
        args.append("--resume")
    if options.bbox and options.aoi:
        raise ValueError("Choose one area of interest: a box or polygons, not both.")
    if options.bbox:
        minx, miny, maxx, maxy = (float(v) for v in options.bbox)
        if not (minx < maxx and miny < maxy):
            raise ValueError(f"The area of interest box {options.bbox} is empty; zoom to the area to segment.")
        args += ["--bbox"] + [_num(v) for v in (minx, miny, maxx, maxy)]
        if options.bbox_crs:
            args += ["--bbox-crs", options.bbox_crs]
    elif options.aoi:
        args += ["--aoi", os.path.abspath(options.aoi)]
    args += ["--progress", "json"]
    return args


def vectorize_args(
    executable: str, probability: str, output: Optional[str], threshold: float, overwrite: bool = False
) -> list[str]:
    """Build the argument list of a ``vectorize`` run (probability raster → polygons).

    ``vectorize`` prints a text summary (no progress stream): the caller knows ``output``.
    """
    args = [executable, "vectorize", str(probability), "--threshold", _num(threshold)]
    if output:
        args += ["-o", str(output)]
    if overwrite:
        args.append("--overwrite")
    return args


def normalize_bands(text: str) -> str:
    """Turn ``"3, 2,1"`` into ``"3,2,1"``.

    Raises:
        ValueError: a band is not a positive integer.
    """
    parts = [p.strip() for p in str(text).replace(" ", ",").split(",") if p.strip()]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"Bands {text!r} must be 1-based band numbers separated by commas, e.g. 3,2,1.")
    return ",".join(parts)


def _num(value: float) -> str:
    return repr(float(value))


def parse_event(line: str) -> Optional[dict]:
    """Parse one line of the progress stream; ``None`` for anything that is not a JSON event."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def describe_event(event: dict) -> Optional[str]:
    """One line for a log (Processing's): ``start`` and ``done`` of a scene, a ``warning``; None for
    the rest (an ``error`` is raised once as the run's exception, never printed beside it)."""
    kind = event.get("event")
    scene = os.path.basename(str(event.get("scene") or "scene"))
    if kind == "start":
        bands = ",".join(str(b) for b in event.get("bands") or []) or "?"
        return (
            f"{scene}: {event.get('width', '?')} x {event.get('height', '?')} px, "
            f"{event.get('tiles', '?')} tiles, bands {bands}"
        )
    if kind == "done":
        outputs = ", ".join(p for p in (event.get("probability"), event.get("vector")) if p)
        return f"{scene}: {event.get('tiles_run', '?')} tiles in {float(event.get('seconds') or 0):.1f} s → {outputs}"
    if kind == "warning":
        return f"warning: {event.get('message', '')}"
    return None


STAGES = {"load": (0.0, 5.0), "predict": (5.0, 85.0), "write": (85.0, 92.0), "vectorize": (92.0, 100.0)}
#: What the progress bar says during each stage.
STAGE_LABELS = {
    "load": "loading model…",
    "predict": "segmenting tiles…",
    "write": "writing the probability raster…",
    "vectorize": "making polygons…",
}


def stage_label(event: dict) -> Optional[str]:
    """The text to show for a progress event (``loading model…`` during ``load``), else None."""
    if event.get("event") != "progress":
        return None
    return STAGE_LABELS.get(event.get("stage"))


def progress_percent(event: dict, stage_weights: Optional[dict] = None) -> Optional[float]:
    """Map an event to an overall percentage (see ``STAGES``; ``done`` → 100 %; other stages → None)."""
    weights = stage_weights or STAGES
    kind = event.get("event")
    if kind in ("done", "complete"):
        return 100.0
    if kind != "progress":
        return None
    total = max(int(event.get("total") or 0), 1)
    frac = min(max(float(event.get("done") or 0) / total, 0.0), 1.0)
    if event.get("stage") not in weights:
        return None
    lo, hi = weights[event.get("stage")]
    return lo + (hi - lo) * frac
