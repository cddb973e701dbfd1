"""The command with multispectral scenes: band counts checked against the checkpoint (exit 2),
an N-band model built from a preset with --bands/--rgb-bands."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from cli_helpers import run_cli


def _write(path, bands: int):
    rng = np.random.default_rng(bands)
    data = rng.integers(0, 255, (bands, 256, 256)).astype(np.uint8)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=256,
        height=256,
        count=bands,
        dtype="uint8",
        crs="EPSG:32633",
        transform=from_origin(500000, 4000000, 1, 1),
    ) as dst:
        dst.write(data)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import torch

    from sam2unext import build_model, save_checkpoint

    folder = tmp_path_factory.mktemp("ms_cli")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(build_model("sam2unet-test", in_chans=4), folder / "rgbn.safetensors")
    return {"rgb": _write(folder / "rgb.tif", 3), "rgbn": _write(folder / "rgbn.tif", 4), "ckpt": checkpoint}


def _last_error(res) -> str:
    assert res.returncode == 2, (res.returncode, res.stderr)
    line = [x for x in res.stderr.splitlines() if x.strip()][-1]
    assert line.startswith("error: ") and "Traceback" not in res.stderr
    return line


def test_scene_with_the_wrong_band_count_exits_2_naming_both_counts(files, tmp_path):
    res = run_cli("predict", files["rgb"], "-o", tmp_path / "a.tif", "-c", files["ckpt"], "--device", "cpu")
    assert "has 3 bands but the model takes 4" in _last_error(res)
    res = run_cli(
        "predict", files["rgbn"], "-o", tmp_path / "b.tif", "-c", files["ckpt"], "--bands", "1,2,3", "--device", "cpu"
    )
    assert "name 3 bands but the model takes 4" in _last_error(res)
    assert not list(tmp_path.iterdir())


def test_preset_with_four_bands_runs_and_folder_training_refuses_bands(files, tmp_path):
    res = run_cli(
        "predict",
        files["rgbn"],
        "-o",
        tmp_path / "c.tif",
        "--preset",
        "sam2unet-test",
        "--bands",
        "1,2,3,4",
        "--rgb-bands",
        "3,2,1",
        "--device",
        "cpu",
        "--no-vector",
        "--progress",
        "none",
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "c.tif").is_file()
    res = run_cli("train", "--images", tmp_path, "--masks", tmp_path, "--bands", "1,2,3,4", "-o", tmp_path / "run")
    assert "apply to --raster/--labels fine-tuning" in _last_error(res)
