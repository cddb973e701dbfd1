"""The `train`, `test` and `evaluate` command functions, registered on a typer app."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from sam2unext.cli import training
from sam2unext.errors import DatasetError, InputError

from training_synth import PRESET


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """Registered as cli/main.py does: the function, with its module's epilog of examples."""
    app = typer.Typer()
    for name in ("train", "test", "evaluate"):
        app.command(name, epilog=getattr(training, f"{name.upper()}_EPILOG"))(getattr(training, name))
    return app


@pytest.mark.parametrize("command,needle", [("train", "--resume"), ("test", "--checkpoint"), ("evaluate", "--task")])
def test_help_texts_have_options_and_examples(app, command, needle):
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert needle in result.output and "sam2unext-geo " + command in result.output


@pytest.mark.slow
def test_train_test_evaluate_round_trip(app, folder_data, short_run, tmp_path):
    """Fine-tune from a snapshot (preset read from it), predict the folder, score it."""
    images, masks = folder_data
    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "train",
            "--task",
            "cod",
            "--images",
            str(images),
            "--masks",
            str(masks),
            "--checkpoint",
            str(short_run.last_snapshot),
            "--epochs",
            "1",
            "--workers",
            "0",
            "--no-progress",
            "-o",
            str(run),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (run / "epoch_001.safetensors").is_file() and "trained 1 epochs" in result.output
    pred = tmp_path / "pred"
    result = runner.invoke(
        app,
        [
            "test",
            "-c",
            str(run / "epoch_001.safetensors"),
            "--images",
            str(images),
            "-o",
            str(pred),
            "--device",
            "cpu",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(list(pred.glob("*.png"))) == 3
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--task",
            "cod",
            "--pred",
            str(pred),
            "--gt",
            str(masks),
            "--name",
            "toy",
            "-o",
            str(tmp_path / "scores"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "* S_alpha" in result.output
    assert json.loads((tmp_path / "scores.json").read_text())["task"] == "cod"


def test_user_errors_surface_as_user_error_types(app, folder_data, tmp_path):
    images, _ = folder_data
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "--pred", str(tmp_path), "--gt", str(tmp_path / "none")])
    assert isinstance(result.exception, DatasetError)
    result = runner.invoke(app, ["train", "--images", str(images), "--preset", PRESET, "-o", str(tmp_path / "r")])
    assert isinstance(result.exception, InputError)
    assert training.parse_bands("4,3,2") == [4, 3, 2] and training.parse_stretch("0,3000") == (0.0, 3000.0)
    assert training.parse_bands("4,3,2,8") == [4, 3, 2, 8]  # any count: multispectral models
    with pytest.raises(InputError):
        training.parse_bands("4,x")
