"""Shared fixtures of the training tests: tiny generated datasets and one short training run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from sam2unext.train import TrainConfig  # noqa: E402

from training_synth import PRESET, SHORT, make_folder_dataset  # noqa: E402


@pytest.fixture(scope="session")
def folder_data(tmp_path_factory) -> tuple[Path, Path]:
    """Three images (jpg/png, varied sizes) and their png masks."""
    return make_folder_dataset(tmp_path_factory.mktemp("folders"), count=3)


@pytest.fixture(scope="session")
def short_run(folder_data, tmp_path_factory):
    """An uninterrupted three-epoch run of the tiny preset (snapshot every epoch)."""
    from sam2unext.train import train_on_folders

    images, masks = folder_data
    run_dir = tmp_path_factory.mktemp("runs") / "full"
    return train_on_folders(
        images, masks, run_dir, preset=PRESET, task="cod", config=TrainConfig(**SHORT), progress=False, log=None
    )
