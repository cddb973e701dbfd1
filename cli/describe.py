"""``info`` (what predict would do with a scene) and ``models`` (the presets and their weights)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .formatting import echo, seconds, table
from .inputs import parse_bands
from .predict import Checkpoint, ComputePrecision, Device, PrecisionOpt, PresetOpt, TTAMode

INFO_EPILOG = """\b
Examples:
  sam2unext-geo info scene.tif
  sam2unext-geo info scene.tif --checkpoint model.safetensors --device cuda --batch-size 16
  sam2unext-geo info scene.tif --preset sam2unext-large --bands 3,2,1 --json
\b
With --checkpoint or --preset the time per tile is measured on the chosen device
at the precision predict would use (--precision; a few batches of random tiles;
the weights do not change the speed).
"""

MODELS_EPILOG = """\b
Examples:
  sam2unext-geo models
  sam2unext-geo models --json
\b
Encoder weights (for training or --preset with --hiera/--dinov2): Meta's SAM2 checkpoints
(sam2_hiera_large.pt ...) and timm's DINOv2 model.safetensors (vit_large_patch14_dinov2).
A trained checkpoint (--checkpoint) already contains both encoders.
"""


def info(
    scene: Annotated[Path, typer.Argument(help="Scene raster.", show_default=False)],
    checkpoint: Checkpoint = None,
    preset: PresetOpt = None,
    tile_size: Annotated[
        Optional[int],
        typer.Option(
            "--tile-size", min=16, help="Tile side (default: the model's input size, else 1024).", show_default=False
        ),
    ] = None,
    overlap: Annotated[
        str, typer.Option("--overlap", help="Tile overlap: a fraction in [0, 1) or pixels, e.g. 64px.")
    ] = "0.25",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Tiles per forward pass.")] = 4,
    device: Device = "auto",
    precision: PrecisionOpt = ComputePrecision.auto,
    bands: Annotated[
        Optional[str], typer.Option("--bands", help="1-based bands, e.g. 3,2,1.", show_default=False)
    ] = None,
    resolution: Annotated[
        Optional[float],
        typer.Option("--resolution", help="Resample to this pixel size (map units).", show_default=False),
    ] = None,
    tta: Annotated[
        TTAMode, typer.Option("--tta", help="Test-time augmentation of the run to estimate (see predict --tta).")
    ] = TTAMode.none,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """Show what predict would do with a scene: size, CRS, units, bands, stretch, tiles, time."""
    from sam2unext.geo import describe_raster

    facts = describe_raster(
        scene,
        tile_size=tile_size,
        overlap=overlap,
        bands=parse_bands(bands),
        resolution=resolution,
        checkpoint=checkpoint,
        preset=preset,
        device=device,
        precision=precision.value,  # the time per tile is measured at the precision predict would run
        batch_size=batch_size,
        tta=tta.value,
    )
    if as_json:
        echo(json.dumps(facts, default=str))
        return
    _print_info(facts)


def _print_info(f: dict) -> None:
    echo(f"{f['path']}  ({f['driver']})")
    echo(f"  size:        {f['width']} x {f['height']} px, {f['count']} band(s) {', '.join(f['dtypes'])}")
    echo(f"  crs:         {f['crs'] or 'none (pixel coordinates)'}")
    echo(f"  pixel size:  {f['resolution'][0]:g} x {f['resolution'][1]:g}")
    echo(f"  polygons:    {f['units']}")
    echo(f"  nodata:      {f['nodata']}")
    echo(f"  bands used:  {','.join(map(str, f['bands_used']))} as R,G,B  ({', '.join(f['colorinterp'])})")
    if f["stretch"]:
        pairs = "; ".join(f"{lo:g}..{hi:g}" for lo, hi in f["stretch"])
        echo(f"  stretch:     2-98 % percentiles to 0..255: {pairs}")
    else:
        echo("  stretch:     none (uint8 used as is)")
    if f["grid"] != [f["height"], f["width"]]:
        echo(f"  resampled:   {f['grid'][1]} x {f['grid'][0]} px")
    echo(
        f"  tiles:       {f['tiles']} of {f['tile_size']} px, overlap {f['overlap']}; {f['chunks']} output "
        f"chunk(s) of {f['chunk_size']} px ({f['computations']} tile computations with chunk borders)"
    )
    if f["tta"] != "none":
        per_tile = f["forward_passes"] // max(1, f["computations"])
        echo(f"  tta:         {f['tta']}: {f['forward_passes']} forward passes ({per_tile} per tile computation)")
    else:
        echo(f"  passes:      {f['forward_passes']} forward passes")
    if "estimated_seconds" in f:
        echo(f"  model:       {f['model']}, {f['parameters'] / 1e6:.1f} M parameters")
        echo(
            f"  time:        ~{seconds(f['estimated_seconds'])} on {f['device']} with {f['model']} "
            f"({f['seconds_per_tile'] * 1000:.0f} ms/tile, measured)"
        )
        if "precision" in f:
            echo(f"  precision:   {f['precision']} ({f['precision_reason']})")
    else:
        echo("  time:        pass --checkpoint or --preset (and --device) to measure it")


def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the model presets: family, input sizes, parameters, the weights files they use."""
    from sam2unext.presets import PARAMETER_COUNTS, PRESETS

    rows = []
    for name, p in PRESETS.items():
        dino = f"{p.dinov2} (timm model.safetensors)" if p.dinov2 and not name.endswith("-test") else "-"
        rows.append(
            {
                "preset": name,
                "family": "SAM2-UNeXT" if p.family == "sam2unext" else "SAM2-UNet",
                "input": p.input_size,
                "low_res": p.low_res_size,
                "parameters_m": round(PARAMETER_COUNTS[name] / 1e6, 2),
                "sam2_weights": p.sam2_checkpoint if not name.endswith("-test") else "-",
                "dinov2_weights": dino,
                "description": p.description,
            }
        )
    rows.append(
        {
            "preset": "demo (--checkpoint demo)",
            "family": "SAM2-UNeXT",
            "input": PRESETS["sam2unext-test"].input_size,
            "low_res": PRESETS["sam2unext-test"].low_res_size,
            "parameters_m": None,
            "sam2_weights": "-",
            "dinov2_weights": "-",
            "description": "bundled weights of sam2unext-test trained on synthetic demo scenes only",
        }
    )
    if as_json:
        echo(json.dumps(rows))
        return
    echo(
        table(
            [
                [
                    r["preset"],
                    r["family"],
                    str(r["input"]),
                    str(r["low_res"] or "-"),
                    "" if r["parameters_m"] is None else f"{r['parameters_m']:.1f} M",
                    r["sam2_weights"],
                    r["dinov2_weights"],
                ]
                for r in rows
            ],
            ["preset", "family", "input", "low-res", "params", "SAM2 weights", "DINOv2 weights"],
        )
    )
    echo("\nPredicting needs a trained checkpoint (--checkpoint); the SAM2/DINOv2 files initialise training.")
