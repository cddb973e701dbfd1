"""``train``, ``test`` and ``evaluate`` commands (registered by ``cli/main.py``).

Thin wrappers: parse options, call :mod:`sam2unext.train`, :mod:`sam2unext.folder_prediction`,
:mod:`sam2unext.evaluate` or :mod:`sam2unext.geo.finetune`, print the result. Mistakes a
user can fix raise :class:`sam2unext.errors.UserError` subclasses; ``main`` maps them to
exit code 2.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from sam2unext.errors import InputError

TRAIN_EPILOG = """\b
Examples:
  sam2unext-geo train --task cod --images COD/train/Imgs --masks COD/train/GT --preset sam2unext-large \\
      --hiera sam2_hiera_large.pt --dinov2 dinov2_vitl14_reg4_pretrain.pth -o runs/cod
  sam2unext-geo train --task cod --images COD/train/Imgs --masks COD/train/GT -o runs/cod --resume
  sam2unext-geo train --raster scene.tif --labels roofs.gpkg --checkpoint model.safetensors \\
      --epochs 5 --lr 1e-4 -o runs/roofs
  sam2unext-geo train --raster rgbn.tif --labels roofs.gpkg --checkpoint model.safetensors \\
      --bands 1,2,3,4 --rgb-bands 1,2,3 -o runs/roofs-nir
\b
Run folder: epoch_NNN.safetensors snapshots (load with --checkpoint), resume.pt,
history.json and loss_curve.png.
"""

TEST_EPILOG = """\b
Example:
  sam2unext-geo test -c runs/cod/epoch_020.safetensors --images COD10K/Imgs -o preds/COD10K
"""

EVALUATE_EPILOG = """\b
Example:
  sam2unext-geo evaluate --task cod --pred preds/COD10K --gt COD10K/GT --name COD10K -o results/cod10k
\b
Headline metrics per task (as the paper's tables): dis S/Fw/E/MAE; cod S/adpF/E/MAE;
mas mIoU/S/Fw/E/MAE; rssd S/meanF/maxF/E/MAE.
"""


class Task(str, Enum):
    """Benchmark task families of the paper."""

    dis = "dis"
    cod = "cod"
    mas = "mas"
    rssd = "rssd"


def _err(message: str) -> None:
    typer.echo(message, err=True)


def parse_bands(value: str | None, name: str = "bands") -> list[int] | None:
    """``"4,3,2,8"`` → ``[4, 3, 2, 8]`` (1-based band numbers, any count); None stays None.

    Raises:
        InputError: if the text is not comma-separated positive integers.
    """
    if not value:
        return None
    try:
        bands = [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        bands = []
    if not bands or min(bands) < 1:
        raise InputError(
            f"--{name.replace('_', '-')} {value!r} must be comma-separated band numbers (from 1), e.g. 4,3,2 or 4,3,2,8"
        )
    return bands


def parse_stretch(value: str | None) -> tuple[float, float] | None:
    """``"0,3000"`` → ``(0.0, 3000.0)``; None stays None (automatic stretch).

    Raises:
        InputError: if the text is not two numbers with max > min.
    """
    if not value:
        return None
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError:
        raise InputError(f"--stretch {value!r} must be MIN,MAX, e.g. 0,3000") from None
    if hi <= lo:
        raise InputError(f"--stretch {value!r}: MAX must be greater than MIN")
    return lo, hi


def train(
    output: Annotated[Path, typer.Option("--output", "-o", help="Run folder: snapshots, resume.pt, loss_curve.png.")],
    task: Annotated[
        Optional[Task], typer.Option(help="Benchmark task, stored in the snapshots (dis, cod, mas, rssd).")
    ] = None,
    images: Annotated[Optional[Path], typer.Option(help="Folder of training images (jpg/png/tif/bmp).")] = None,
    masks: Annotated[Optional[Path], typer.Option(help="Folder of png masks, same file stems as the images.")] = None,
    raster: Annotated[
        Optional[list[Path]],
        typer.Option(metavar="PATH", help="GeoTIFF scene to fine-tune on (repeat, one per --labels)."),
    ] = None,
    labels: Annotated[
        Optional[list[Path]],
        typer.Option(
            metavar="PATH", help="Polygon file (gpkg/shp/geojson) labeling the --raster at the same position."
        ),
    ] = None,
    preset: Annotated[
        Optional[str], typer.Option(help="Model preset, e.g. sam2unext-large (see 'sam2unext-geo models').")
    ] = None,
    checkpoint: Annotated[
        Optional[str],
        typer.Option(help="Start from these weights instead of a fresh model (fine-tuning); 'demo' works."),
    ] = None,
    hiera: Annotated[
        Optional[Path], typer.Option(help="SAM2 checkpoint for the Hiera encoder (sam2_hiera_*.pt).")
    ] = None,
    dinov2: Annotated[
        Optional[Path], typer.Option(help="DINOv2 weights for the auxiliary encoder (SAM2-UNeXT).")
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs; the cosine schedule spans them.")] = 20,
    lr: Annotated[Optional[float], typer.Option(help="AdamW learning rate [SAM2-UNeXT 2e-4, SAM2-UNet 1e-3].")] = None,
    batch_size: Annotated[
        Optional[int], typer.Option(min=1, help="Images per step [SAM2-UNeXT 1, SAM2-UNet 12].")
    ] = None,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 5e-4,
    eta_min: Annotated[float, typer.Option(help="Final learning rate of the cosine schedule.")] = 1e-7,
    snapshot_every: Annotated[int, typer.Option(min=1, help="Save a snapshot every N epochs (and at the end).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of initialization, sample order, flips and tile sampling.")] = 0,
    workers: Annotated[int, typer.Option(min=0, help="Data loader worker processes.")] = 2,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    amp: Annotated[Optional[bool], typer.Option("--amp/--no-amp", help="Mixed precision [on with CUDA].")] = None,
    grad_checkpointing: Annotated[
        bool, typer.Option(help="Recompute encoder activations in the backward pass (less GPU memory).")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(help="Continue the run in --output from its last snapshot (preset and weights come from it)."),
    ] = False,
    tiles_per_scene: Annotated[
        int, typer.Option(min=1, help="Geo fine-tuning: random tiles per scene per epoch.")
    ] = 200,
    bands: Annotated[
        Optional[str],
        typer.Option(
            help="Geo fine-tuning: bands read, any count, e.g. 4,3,2 or 4,3,2,8; more than three widen an RGB "
            "model's first layers from its RGB weights."
        ),
    ] = None,
    rgb_bands: Annotated[
        Optional[str],
        typer.Option(
            help="Geo fine-tuning: which of --bands get the pretrained R,G,B kernels, e.g. 4,3,2 [the first three]."
        ),
    ] = None,
    stretch: Annotated[
        Optional[str], typer.Option(help="Geo fine-tuning: MIN,MAX mapped to 0..255 [as predict: automatic].")
    ] = None,
    resolution: Annotated[
        Optional[float], typer.Option(help="Geo fine-tuning: resample to this pixel size in map units.")
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar with the loss.")
    ] = True,
) -> None:
    """Train on an image/mask folder pair, or fine-tune on GeoTIFFs with vector labels.

    The paper's recipe is the default: AdamW (lr 2e-4, weight decay 5e-4), cosine annealing
    to 1e-7 over 20 epochs, batch 1, frozen encoders (SAM2-UNet: lr 1e-3, batch 12).
    Snapshots every 5 epochs and at the end; --resume continues after a kill.
    """
    from sam2unext.train import TrainConfig, train_on_folders

    config = TrainConfig(
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        weight_decay=weight_decay,
        eta_min=eta_min,
        snapshot_every=snapshot_every,
        seed=seed,
        num_workers=workers,
        device=device,
        amp=amp,
        grad_checkpointing=grad_checkpointing,
    )
    task_name = task.value if task is not None else None
    if raster or labels:
        if images or masks:
            raise InputError("give either --images/--masks or --raster/--labels, not both")
        from sam2unext.geo.finetune import finetune

        result = finetune(
            raster or [],
            labels or [],
            output,
            preset=preset,
            checkpoint=checkpoint,
            hiera=hiera,
            dinov2=dinov2,
            config=config,
            tiles_per_scene=tiles_per_scene,
            bands=parse_bands(bands),
            rgb_bands=parse_bands(rgb_bands, "rgb_bands"),
            stretch=parse_stretch(stretch),
            resolution=resolution,
            task=task_name or "geo",
            resume=resume,
            progress=progress,
            log=_err,
        )
    else:
        if images is None or masks is None:
            raise InputError("pass --images DIR and --masks DIR (or --raster/--labels for GeoTIFFs)")
        if bands or rgb_bands:
            raise InputError(
                "--bands/--rgb-bands apply to --raster/--labels fine-tuning; image folders are read as RGB"
            )
        result = train_on_folders(
            images,
            masks,
            output,
            preset=preset,
            hiera=hiera,
            dinov2=dinov2,
            checkpoint=checkpoint,
            task=task_name,
            config=config,
            resume=resume,
            progress=progress,
            log=_err,
        )
    last = result.last_snapshot
    typer.echo(
        f"trained {result.epochs_done} epochs in {result.seconds:.1f} s; final loss "
        f"{result.epoch_losses[-1]:.4f}; last snapshot {last}"
    )


def test(
    checkpoint: Annotated[
        str,
        typer.Option(
            "--checkpoint", "-c", help="Model weights: our .safetensors, an upstream .pth (with --preset) or 'demo'."
        ),
    ],
    images: Annotated[Path, typer.Option(help="Folder of images to predict.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for <name>.png predictions.")],
    preset: Annotated[Optional[str], typer.Option(help="Preset of an upstream .pth checkpoint.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace existing PNGs in --output.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Predict an image folder to 8-bit PNGs at each image's original size.

    Maps are min-max normalized per image as the public test code does, ready for 'evaluate'.
    """
    from sam2unext import load_model
    from sam2unext.folder_prediction import predict_folder

    model = load_model(checkpoint, preset, device=device)
    result = predict_folder(model, images, output, device=device, overwrite=overwrite, progress=progress)
    typer.echo(f"wrote {len(result.outputs)} predictions to {output} in {result.seconds:.1f} s")


def evaluate(
    pred: Annotated[Path, typer.Option(help="Folder of <name>.png predictions.")],
    gt: Annotated[Path, typer.Option(help="Folder of ground-truth masks.")],
    task: Annotated[
        Optional[Task], typer.Option(help="Task whose headline metrics are marked (dis, cod, mas, rssd).")
    ] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write OUTPUT.json and OUTPUT.csv.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Dataset name shown and stored, e.g. COD10K.")] = None,
    digits: Annotated[int, typer.Option(min=1, max=10, help="Digits printed.")] = 3,
) -> None:
    """Score predictions with pysodmetrics exactly as the public evaluation code.

    Prints mean Dice, mean IoU, S-measure, weighted F, adaptive F, mean and max F (β²=0.3),
    mean E-measure and MAE; '*' marks the metrics the paper reports for --task.
    """
    from sam2unext.evaluate import evaluate_folders, format_table, write_results

    result = evaluate_folders(pred, gt, task=task.value if task else None, dataset=name)
    typer.echo(format_table(result, digits=digits))
    if output is not None:
        json_path, csv_path = write_results(result, output)
        _err(f"wrote {json_path} and {csv_path}")
