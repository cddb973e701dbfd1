"""Fixtures for the command tests: small generated GeoTIFFs and a runner of the real command."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cli_helpers import write_small_scene


@pytest.fixture(scope="session")
def scenes_dir(tmp_path_factory) -> Path:
    """A folder with two small demo scenes (384 px, EPSG:32633) and their truth masks."""
    folder = tmp_path_factory.mktemp("scenes")
    write_small_scene(folder / "alpha.tif", size=384, seed=11, truth=folder / "alpha_truth.tif")
    write_small_scene(folder / "beta.tif", size=320, seed=12)
    return folder


@pytest.fixture
def scene(scenes_dir, tmp_path) -> Path:
    """A private copy of one small scene (outputs land next to it by default)."""
    target = tmp_path / "scene.tif"
    shutil.copy(scenes_dir / "alpha.tif", target)
    return target
