"""``demo``: draw a synthetic scene, run the whole pipeline with the demo weights, score it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sam2unext.weights import DEMO_NOTE

from .formatting import echo, seconds
from .inputs import make_folder
from .predict import Device, Overwrite, ProgressMode
from .state import STATE

DEMO_EPILOG = """\b
Examples:
  sam2unext-geo demo
  sam2unext-geo demo -o /tmp/demo --size 2048 --seed 3 --overwrite
\b
Writes demo_scene.tif (RGB, EPSG:32633), demo_truth.tif, demo_scene_prob.tif,
demo_scene_prob_polygons.gpkg and demo_quicklook.png into the folder.
"""


def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the demo files (created).")] = Path(
        "sam2unext-demo"
    ),
    size: Annotated[int, typer.Option("--size", min=256, help="Scene side in pixels.")] = 3072,
    seed: Annotated[int, typer.Option("--seed", help="Scene seed (2025 is the documented scene).")] = 2025,
    tile_size: Annotated[
        Optional[int],
        typer.Option(
            "--tile-size", min=16, help="Tile side (default: the model's input size, 256).", show_default=False
        ),
    ] = None,
    overlap: Annotated[float, typer.Option("--overlap", min=0.0, help="Tile overlap.")] = 0.25,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Tiles per forward pass.")] = 8,
    device: Device = "auto",
    overwrite: Overwrite = False,
    quicklook: Annotated[bool, typer.Option("--quicklook/--no-quicklook", help="Write demo_quicklook.png.")] = True,
    progress: Annotated[ProgressMode, typer.Option("--progress", help="bar, json or none.")] = ProgressMode.bar,
) -> None:
    """Run the whole pipeline on a generated scene with the bundled demo weights; no downloads.

    Draws a georeferenced synthetic scene (fields, roads, sea; buildings, ships, ponds), predicts
    it tile by tile, stitches a probability COG, vectorizes it, and prints the IoU against the
    generated truth. The demo weights know only such synthetic scenes.
    """
    from sam2unext.geo import make_progress
    from sam2unext.geo.demo.demo_run import run_demo

    reporter = make_progress(progress.value)
    STATE.reporter = reporter
    make_folder(output)
    res = run_demo(
        output,
        size=size,
        seed=seed,
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        device=device,
        overwrite=overwrite,
        progress=reporter,
        quicklook=quicklook,
    )
    reporter.complete(1, res.seconds)
    say = (lambda m: echo(m, err=True)) if progress is ProgressMode.json else echo
    say(f"demo scene {res.scene} ({size} x {size} px, seed {seed}), truth {res.truth}")
    say(f"  {res.tiles_run} tiles in {seconds(res.seconds)}, {res.polygons} polygons")
    say(f"  probability: {res.probability}")
    if res.vector is not None:
        say(f"  polygons:    {res.vector}")
    if res.quicklook is not None:
        say(f"  quick-look:  {res.quicklook}")
    say(f"IoU against the generated truth: {res.iou:.3f} (tiled pipeline)")
    if res.iou_whole is not None:
        say(f"  same weights on the whole scene resized to one input, untiled: {res.iou_whole:.3f}")
    say(f"Note: {DEMO_NOTE}. For real imagery pass a trained --checkpoint to 'sam2unext-geo predict'.")
