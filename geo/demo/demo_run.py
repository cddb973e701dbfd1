"""The demo run: draw a demo scene, predict it through the tiled pipeline, score it, draw a quick-look.

The scene comes from :mod:`sam2unext.geo.demo.demo_scene`; the quick-look from
:mod:`sam2unext.geo.quicklook`. This is what ``sam2unext-geo demo`` runs.

Example:
    >>> from sam2unext.geo.demo.demo_run import run_demo
    >>> result = run_demo("demo_out", size=1024)
    >>> result.iou, result.quicklook
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from sam2unext.errors import OutputError, option
from sam2unext.geo.demo.demo_scene import DEMO_SEED, DEMO_SIZE, write_demo_scene
from sam2unext.geo.progress import Progress


def mask_iou(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two binary masks (1.0 when both are empty).

    Args:
        prediction: boolean or 0/1 array.
        truth: boolean or 0/1 array of the same shape.

    Returns:
        IoU in [0, 1].
    """
    p, t = np.asarray(prediction).astype(bool), np.asarray(truth).astype(bool)
    if p.shape != t.shape:
        raise ValueError(f"mask shapes differ: {p.shape} vs {t.shape}")
    union = np.logical_or(p, t).sum()
    return 1.0 if union == 0 else float(np.logical_and(p, t).sum() / union)


@dataclass
class DemoResult:
    """What :func:`run_demo` produced and measured.

    Attributes:
        scene, truth: the generated scene and its truth mask (GeoTIFFs).
        probability, vector: the pipeline's probability COG and polygons.
        quicklook: the PNG quick-look, or None.
        iou: IoU of the thresholded probability raster (whole tiled pipeline) against the truth.
        iou_whole: IoU of the same weights on the whole scene resized to one model input
            (no tiling), or None when not computed.
        tiles_run, seconds, polygons: tiles sent to the model, pipeline wall time, polygon count.
    """

    scene: Path
    truth: Path
    probability: Path
    vector: Path | None
    quicklook: Path | None
    iou: float
    iou_whole: float | None
    tiles_run: int
    seconds: float
    polygons: int


def run_demo(
    folder: str | Path,
    *,
    size: int = DEMO_SIZE,
    seed: int = DEMO_SEED,
    tile_size: int | None = None,
    overlap: float = 0.25,
    batch_size: int = 4,
    device: str = "auto",
    threshold: float = 0.5,
    overwrite: bool = False,
    progress: str | Progress | None = "bar",
    quicklook: bool = True,
    compare_whole: bool = True,
    checkpoint: str = "demo",
) -> DemoResult:
    """Draw a demo scene, run the full predict pipeline on it with the demo weights, score it.

    Args:
        folder: output folder (created).
        size, seed: the scene (see :func:`generate_scene`).
        tile_size, overlap, batch_size, device, threshold: passed to ``predict_raster``.
        overwrite: replace existing outputs.
        progress: ``"bar"``, ``"json"``, ``"none"`` or a progress reporter.
        quicklook: write ``demo_quicklook.png`` (scene | probability | polygon outlines).
        compare_whole: also score the weights on the untiled scene resized as a whole.
        checkpoint: weights to run (``"demo"``: the bundled demo weights).

    Returns:
        :class:`DemoResult`.

    Raises:
        OutputError: the folder cannot be written, or outputs exist without ``overwrite``.
        CheckpointError: the demo weights are missing.
    """
    from sam2unext import load_model
    from sam2unext.geo.api import predict_raster
    from sam2unext.geo.quicklook import write_quicklook
    from sam2unext.geo.vectors.vectorize import probability_scale

    folder = Path(folder)
    prob_path = folder / "demo_scene_prob.tif"
    if prob_path.exists() and not overwrite:  # fail before loading weights or drawing the scene
        raise OutputError(f"{prob_path} already exists; pass {option('overwrite')} or choose another folder")
    model = load_model(checkpoint=checkpoint, device=device)
    scene_path, truth_path = write_demo_scene(folder, size=size, seed=seed, overwrite=overwrite)
    res = predict_raster(
        scene_path,
        prob_path,
        model=model,
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        threshold=threshold,
        overwrite=overwrite,
        progress=progress,
        as_geodataframe=True,
    )
    with rasterio.open(res.probability) as src:
        prob = src.read(1).astype(np.float32) / np.float32(probability_scale(src.dtypes[0]))
    with rasterio.open(truth_path) as src:
        truth = src.read(1)
    iou = mask_iou(prob > threshold, truth)
    iou_whole = None
    if compare_whole:
        with rasterio.open(scene_path) as src:
            image = src.read().transpose(1, 2, 0)
        iou_whole = mask_iou(model.predict(image) > threshold, truth)
    n_polygons = 0 if res.geodataframe is None else len(res.geodataframe)
    look = None
    if quicklook:
        look = write_quicklook(
            scene_path,
            res.probability,
            res.vector,
            folder / "demo_quicklook.png",
            title=f"demo scene (synthetic), IoU {iou:.3f} through the tiled pipeline",
        )
    return DemoResult(
        scene_path,
        truth_path,
        Path(res.probability),  # the demo writes local files
        Path(res.vector) if res.vector is not None else None,
        look,
        iou,
        iou_whole,
        res.tiles_run,
        res.seconds,
        n_polygons,
    )
