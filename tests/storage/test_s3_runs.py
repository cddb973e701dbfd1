"""Whole runs with the scene, the run store and the outputs on S3 (moto's server over HTTP)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sam2unext.errors import InputError, OutputError
from sam2unext.geo import predict_raster
from sam2unext.geo.demo.stand_ins import PixelModel, PixelModelFactory
from sam2unext.geo.storage import Location
from sam2unext.geo.writing.store import RunStore, store_path_for

from s3_server import read_raster, write_scene

RUN = dict(tile_size=32, batch_size=2, chunk_size=64, progress="none")


def test_scene_and_outputs_on_s3_equal_a_local_run(s3_bucket, tmp_path):
    scene = write_scene(tmp_path / "s.tif")
    Location(s3_bucket).upload_file(scene, "in/s.tif")
    local = predict_raster(scene, tmp_path / "local.tif", model=PixelModel(32, 14), **RUN)
    out = f"{s3_bucket}/out/s_prob.tif"
    res = predict_raster(f"{s3_bucket}/in/s.tif", out, model=PixelModel(32, 14), **RUN)
    assert str(res.probability) == out and str(res.vector) == f"{s3_bucket}/out/s_prob_polygons.gpkg"
    assert Location(f"{s3_bucket}/out").list() == ["s_prob.tif", "s_prob_polygons.gpkg"]  # no store, no scratch
    for a, b in zip(read_raster(out), read_raster(local.probability)):  # read back through /vsis3/
        np.testing.assert_array_equal(a, b)
    assert res.area == pytest.approx(local.area) and res.area > 0

    with pytest.raises(OutputError, match=rf"output {out} already exists; pass overwrite=True"):
        predict_raster(f"{s3_bucket}/in/s.tif", out, model=PixelModel(32, 14), **RUN)
    with pytest.raises(InputError, match=rf"{s3_bucket}/in/none.tif does not exist"):
        predict_raster(f"{s3_bucket}/in/none.tif", f"{s3_bucket}/o2.tif", model=PixelModel(32, 14), **RUN)
    with pytest.raises(OutputError, match=r"bucket s3://no-such-bucket-y does not exist; create it"):
        predict_raster(scene, "s3://no-such-bucket-y/o.tif", model=PixelModel(32, 14), **RUN)


def test_command_errors_name_the_url(s3_bucket, tmp_path, capsys):
    from sam2unext.cli.main import main

    scene = write_scene(tmp_path / "s.tif", 40, 40)
    Location(s3_bucket).upload_file(scene, "in/s.tif")
    Location(s3_bucket).write_bytes("out/s_prob.tif", b"an earlier output")
    cases = [
        ([f"{s3_bucket}/in/missing.tif"], f"{s3_bucket}/in/missing.tif does not exist"),
        ([f"{s3_bucket}/in/s.tif", "-o", f"{s3_bucket}/out/"], f"output {s3_bucket}/out/s_prob.tif already exists"),
        (
            [str(scene), "-o", "s3://no-such-bucket-z/out/"],
            "bucket s3://no-such-bucket-z of s3://no-such-bucket-z/out does not exist",
        ),
    ]
    for args, message in cases:
        code = main(["predict", *args, "--preset", "sam2unext-test", "--tile-size", "32", "--progress", "none"])
        err = capsys.readouterr().err
        assert code == 2, err
        assert message in err, err


@pytest.mark.slow  # ~10-35 s: a second Python process imports torch and is killed mid-run
def test_killed_run_on_s3_resumes_bit_identical(s3_bucket, tmp_path):
    """The client is killed (SIGKILL) after some chunks: the store on S3 keeps them, --resume finishes."""
    scene = write_scene(tmp_path / "s.tif", 150, 140, seed=3)
    Location(s3_bucket).upload_file(scene, "in/s.tif")
    out = f"{s3_bucket}/out/s_prob.tif"
    script = textwrap.dedent(
        f"""
        from sam2unext.geo import predict_raster
        from sam2unext.geo.demo.stand_ins import KillOncePixelModelFactory
        predict_raster("{s3_bucket}/in/s.tif", "{out}", model=KillOncePixelModelFactory(32, "{tmp_path}/killed", 12)(),
                       tile_size=32, batch_size=2, chunk_size=32, vector=False, progress="none")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    store = RunStore(store_path_for(out))
    kept = store.summed()  # chunks whose tiles are kept
    assert kept and not Location(f"{s3_bucket}/out").is_file("s_prob.tif")

    with pytest.raises(OutputError, match=r"pass resume=True to continue it or overwrite=True"):
        predict_raster(f"{s3_bucket}/in/s.tif", out, model=PixelModel(32, None), **{**RUN, "chunk_size": 32})
    res = predict_raster(
        f"{s3_bucket}/in/s.tif", out, model=PixelModel(32, None), resume=True, vector=False, **{**RUN, "chunk_size": 32}
    )
    assert res.chunks_resumed == len(kept) and not store.present()
    ref = predict_raster(
        scene, tmp_path / "ref.tif", model=PixelModel(32, None), vector=False, **{**RUN, "chunk_size": 32}
    )
    for a, b in zip(read_raster(out), read_raster(ref.probability)):
        np.testing.assert_array_equal(a, b)


def test_factory_model_on_s3(s3_bucket, tmp_path):
    """A picklable factory, as a cluster gets it, with an s3 output folder given as a prefix."""
    scene = write_scene(tmp_path / "s.tif", 70, 90)
    res = predict_raster(scene, f"{s3_bucket}/o/s_prob.tif", model=PixelModelFactory(32, 14), vector=False, **RUN)
    assert Location(f"{s3_bucket}/o").list() == ["s_prob.tif"]
    assert read_raster(res.probability)[0].shape == (70, 90)
