"""`evaluate`: pysodmetrics as the public eval code, tables and JSON/CSV output."""

from __future__ import annotations

import csv
import json
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image

from sam2unext.errors import DatasetError
from sam2unext.evaluate import METRIC_NAMES, TASK_METRICS, evaluate_folders, format_table, write_results

from training_synth import blob_mask


@pytest.fixture(scope="module")
def pred_gt(tmp_path_factory):
    """Five ground-truth masks and imperfect grayscale predictions of them."""
    root = tmp_path_factory.mktemp("eval")
    gt, pred = root / "gt", root / "pred"
    gt.mkdir()
    pred.mkdir()
    rng = np.random.default_rng(7)
    for i, (h, w) in enumerate([(60, 80), (64, 64), (50, 90), (70, 70), (40, 100)]):
        mask = blob_mask(h, w, rng)
        noisy = np.roll(mask.astype(np.float64), 3, axis=1) * 0.8 + rng.uniform(0, 60, mask.shape)
        Image.fromarray(mask).save(gt / f"m{i}.png")
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(pred / f"m{i}.png")
    return pred, gt


def reference_metrics(pred, gt) -> dict[str, float]:
    """pysodmetrics called directly, the way the public SAM2-UNet eval.py calls it."""
    import py_sod_metrics  # scikit-learn and SciPy: imported by the worker that runs this file only

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        FM = py_sod_metrics.Fmeasure()
    WFM, SM, EM, MAE = (
        py_sod_metrics.WeightedFmeasure(),
        py_sod_metrics.Smeasure(),
        py_sod_metrics.Emeasure(),
        py_sod_metrics.MAE(),
    )
    gray = dict(with_adaptive=True, with_dynamic=True)
    FMv2 = py_sod_metrics.FmeasureV2(
        metric_handlers={
            "fm": py_sod_metrics.FmeasureHandler(**gray, beta=0.3),
            "iou": py_sod_metrics.IOUHandler(**gray),
            "dice": py_sod_metrics.DICEHandler(**gray),
        }
    )
    for name in sorted(p.name for p in gt.iterdir()):
        m = cv2.imread(str(gt / name), cv2.IMREAD_GRAYSCALE)
        p = cv2.imread(str(pred / (name[:-4] + ".png")), cv2.IMREAD_GRAYSCALE)
        for metric in (FM, WFM, SM, EM, MAE, FMv2):
            metric.step(pred=p, gt=m)
    fm, v2 = FM.get_results()["fm"], FMv2.get_results()
    return {
        "meanDice": v2["dice"]["dynamic"].mean(),
        "meanIoU": v2["iou"]["dynamic"].mean(),
        "Smeasure": SM.get_results()["sm"],
        "wFmeasure": WFM.get_results()["wfm"],
        "adpFm": fm["adp"],
        "meanFm": fm["curve"].mean(),
        "maxFm": fm["curve"].max(),
        "meanEm": EM.get_results()["em"]["curve"].mean(),
        "MAE": MAE.get_results()["mae"],
    }


def test_matches_pysodmetrics_to_every_digit(pred_gt):
    pred, gt = pred_gt
    result = evaluate_folders(pred, gt, task="mas")
    want = reference_metrics(pred, gt)
    assert set(result.metrics) == set(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert result.metrics[name] == float(want[name]), name
    assert result.count == 5
    assert 0.0 < result.metrics["Smeasure"] < 1.0 and result.metrics["MAE"] > 0.0


def test_perfect_prediction_scores_one(pred_gt):
    _, gt = pred_gt
    m = evaluate_folders(gt, gt).metrics
    assert m["Smeasure"] == pytest.approx(1.0, abs=1e-9)
    assert m["MAE"] == 0.0
    assert m["wFmeasure"] == pytest.approx(1.0) and m["maxFm"] == pytest.approx(1.0)


def test_headline_metrics_per_task(pred_gt):
    pred, gt = pred_gt
    assert TASK_METRICS["cod"] == ("Smeasure", "adpFm", "meanEm", "MAE")
    assert TASK_METRICS["mas"][0] == "meanIoU"
    assert TASK_METRICS["rssd"] == ("Smeasure", "meanFm", "maxFm", "meanEm", "MAE")
    result = evaluate_folders(pred, gt, task="dis", dataset="toy")
    assert list(result.headline_metrics()) == ["Smeasure", "wFmeasure", "meanEm", "MAE"]
    table = format_table(result)
    assert table.splitlines()[0].startswith("toy (5 images, task dis)")
    assert "* S_alpha" in table and "  mIoU" in table


def test_json_and_csv_outputs(pred_gt, tmp_path):
    pred, gt = pred_gt
    result = evaluate_folders(pred, gt, task="cod", dataset="toy")
    json_path, csv_path = write_results(result, tmp_path / "scores")
    payload = json.loads(json_path.read_text())
    assert payload["metrics"] == result.metrics and list(payload["headline"]) == list(TASK_METRICS["cod"])
    rows = list(csv.DictReader(open(csv_path)))
    assert float(rows[0]["Smeasure"]) == result.metrics["Smeasure"]


def test_missing_and_misfit_predictions_are_dataset_errors(pred_gt, tmp_path):
    pred, gt = pred_gt
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "m0.png").write_bytes((pred / "m0.png").read_bytes())
    with pytest.raises(DatasetError) as info:
        evaluate_folders(partial, gt)
    assert "4 of 5" in str(info.value) and "m1" in str(info.value) and "\n" not in str(info.value)
    small = tmp_path / "small"
    small.mkdir()
    for p in pred.iterdir():
        Image.open(p).resize((10, 10)).save(small / p.name)
    with pytest.raises(DatasetError, match="original size"):
        evaluate_folders(small, gt)
