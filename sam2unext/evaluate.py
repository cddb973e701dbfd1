"""Evaluate prediction maps against ground-truth masks with pysodmetrics.

The metric objects and calls are those of the public SAM2-UNet ``eval.py``: masks and
predictions read with OpenCV as 8-bit grayscale, ``Fmeasure``, ``WeightedFmeasure``,
``Smeasure``, ``Emeasure``, ``MAE`` and an ``FmeasureV2`` with per-sample dynamic-threshold
Dice and IoU handlers. Reported values:

- ``meanDice``, ``meanIoU``: mean over the 256 thresholds of the per-sample dynamic curves;
- ``Smeasure``; ``wFmeasure``; ``adpFm`` (adaptive F, β²=0.3);
- ``meanFm``, ``maxFm``: mean and max of the F-measure curve (β²=0.3);
- ``meanEm``: mean of the E-measure curve; ``MAE``.

Each task has the headline metrics its table in the paper reports (:data:`TASK_METRICS`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sam2unext.errors import DatasetError, OutputError, option

METRIC_NAMES = ("meanDice", "meanIoU", "Smeasure", "wFmeasure", "adpFm", "meanFm", "maxFm", "meanEm", "MAE")
METRIC_LABELS = {
    "meanDice": "mDice",
    "meanIoU": "mIoU",
    "Smeasure": "S_alpha",
    "wFmeasure": "F^w_beta",
    "adpFm": "adp F_beta",
    "meanFm": "mean F_beta",
    "maxFm": "max F_beta",
    "meanEm": "E_phi",
    "MAE": "MAE",
}
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "dis": ("Smeasure", "wFmeasure", "meanEm", "MAE"),
    "cod": ("Smeasure", "adpFm", "meanEm", "MAE"),
    "mas": ("meanIoU", "Smeasure", "wFmeasure", "meanEm", "MAE"),
    "rssd": ("Smeasure", "meanFm", "maxFm", "meanEm", "MAE"),
}
TASKS = tuple(TASK_METRICS)


@dataclass
class EvalResult:
    """Metric values of one prediction folder against one ground-truth folder."""

    metrics: dict[str, float]
    count: int
    task: str | None = None
    dataset: str | None = None
    headline: tuple[str, ...] = field(default=())

    def headline_metrics(self) -> dict[str, float]:
        """The metrics the paper reports for this task (all metrics when no task)."""
        names = self.headline or METRIC_NAMES
        return {n: self.metrics[n] for n in names}


def make_metrics() -> dict:
    """The pysodmetrics objects used by the public evaluation code."""
    import warnings

    import py_sod_metrics as sod

    sample_gray = dict(with_adaptive=True, with_dynamic=True)
    with warnings.catch_warnings():  # Fmeasure is deprecated upstream but used by the public eval
        warnings.simplefilter("ignore", UserWarning)
        fm = sod.Fmeasure()
    return {
        "fm": fm,
        "wfm": sod.WeightedFmeasure(),
        "sm": sod.Smeasure(),
        "em": sod.Emeasure(),
        "mae": sod.MAE(),
        "fmv2": sod.FmeasureV2(
            metric_handlers={
                "iou": sod.IOUHandler(**sample_gray),
                "dice": sod.DICEHandler(**sample_gray),
            }
        ),
    }


def read_gray(path: Path) -> np.ndarray:
    """Read an image as 8-bit grayscale with OpenCV (as the public code does).

    Raises:
        DatasetError: if the file cannot be read.
    """
    import cv2

    array = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if array is None:
        raise DatasetError(f"cannot read {path} as an image; check the file")
    return array


def match_predictions(pred: str | Path, gt: str | Path) -> list[tuple[Path, Path]]:
    """Pair each ground-truth mask with ``<stem>.png`` in the prediction folder.

    Raises:
        DatasetError: if a folder is missing or empty, or predictions are missing (listed).
    """
    from sam2unext.data import IMAGE_SUFFIXES, _names, list_files

    gt_files = list_files(gt, IMAGE_SUFFIXES, what="ground-truth mask")
    pred_dir = Path(pred)
    if not pred_dir.is_dir():
        raise DatasetError(f"prediction folder not found: {pred_dir}; run `test` first")
    pairs = [(pred_dir / f"{g.stem}.png", g) for g in gt_files]
    missing = [g.stem for p, g in pairs if not p.is_file()]
    if missing:
        raise DatasetError(
            f"{len(missing)} of {len(pairs)} ground-truth masks have no <name>.png in {pred_dir}: {_names(missing)}"
        )
    return pairs


def evaluate_folders(
    pred: str | Path,
    gt: str | Path,
    *,
    task: str | None = None,
    dataset: str | None = None,
    progress: bool = False,
) -> EvalResult:
    """Compute the paper's metrics for a prediction folder against a ground-truth folder.

    Args:
        pred: folder of 8-bit PNG predictions named ``<gt stem>.png``.
        gt: folder of ground-truth masks.
        task: "dis", "cod", "mas" or "rssd" (selects the headline metrics), or None.
        dataset: a name stored with the result.
        progress: show a progress bar.

    Returns:
        All metrics and the task's headline names.

    Raises:
        DatasetError: for missing/unreadable files, or a prediction whose size differs from
            its mask.
        ValueError: for an unknown task.
    """
    from tqdm.auto import tqdm

    if task is not None and task not in TASK_METRICS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    pairs = match_predictions(pred, gt)
    metrics = make_metrics()
    for pred_path, gt_path in tqdm(pairs, desc="evaluate", disable=not progress):
        mask = read_gray(gt_path)
        prediction = read_gray(pred_path)
        if mask.shape != prediction.shape:
            raise DatasetError(
                f"{pred_path} is {prediction.shape[1]}x{prediction.shape[0]} but its mask {gt_path} is "
                f"{mask.shape[1]}x{mask.shape[0]}; predict at the original size"
            )
        for metric in metrics.values():
            metric.step(pred=prediction, gt=mask)

    fm = metrics["fm"].get_results()["fm"]
    fmv2 = metrics["fmv2"].get_results()
    values = {
        "meanDice": fmv2["dice"]["dynamic"].mean(),
        "meanIoU": fmv2["iou"]["dynamic"].mean(),
        "Smeasure": metrics["sm"].get_results()["sm"],
        "wFmeasure": metrics["wfm"].get_results()["wfm"],
        "adpFm": fm["adp"],
        "meanFm": fm["curve"].mean(),
        "maxFm": fm["curve"].max(),
        "meanEm": metrics["em"].get_results()["em"]["curve"].mean(),
        "MAE": metrics["mae"].get_results()["mae"],
    }
    return EvalResult(
        metrics={k: float(v) for k, v in values.items()},
        count=len(pairs),
        task=task,
        dataset=dataset,
        headline=TASK_METRICS.get(task, ()) if task else (),
    )


def format_table(result: EvalResult, *, digits: int = 3, all_metrics: bool = True) -> str:
    """A two-column text table (metric, value); headline metrics are marked with '*'."""
    names = METRIC_NAMES if all_metrics else result.headline_metrics().keys()
    title = result.dataset or "evaluation"
    lines = [f"{title} ({result.count} images{', task ' + result.task if result.task else ''})"]
    width = max(len(METRIC_LABELS[n]) for n in names)
    for n in names:
        mark = "*" if n in result.headline else " "
        lines.append(f"{mark} {METRIC_LABELS[n]:<{width}}  {result.metrics[n]:.{digits}f}")
    return "\n".join(lines)


def write_results(result: EvalResult, path: str | Path, *, overwrite: bool = True) -> tuple[Path, Path]:
    """Write the result as ``<path>.json`` and ``<path>.csv`` (suffix of ``path`` replaced).

    Returns:
        The JSON and CSV paths.

    Raises:
        OutputError: if a file exists and ``overwrite`` is False, or the folder is missing.
    """
    base = Path(path)
    json_path, csv_path = base.with_suffix(".json"), base.with_suffix(".csv")
    if not base.parent.is_dir():
        raise OutputError(f"folder {base.parent} does not exist; create it or choose another output")
    if not overwrite and (json_path.exists() or csv_path.exists()):
        raise OutputError(f"{json_path} or {csv_path} exists; pass {option('overwrite')}")
    payload = {
        "dataset": result.dataset,
        "task": result.task,
        "count": result.count,
        "metrics": result.metrics,
        "headline": {n: result.metrics[n] for n in result.headline},
    }
    from sam2unext.files import write_atomically

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["dataset", "task", "count", *METRIC_NAMES])
            writer.writerow(
                [
                    result.dataset or "",
                    result.task or "",
                    result.count,
                    *(repr(result.metrics[n]) for n in METRIC_NAMES),
                ]
            )

    write_atomically(json_path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2)))
    write_atomically(csv_path, write_csv)
    return json_path, csv_path
