"""Every bad input gives a one-line UserError (exit code 2) and leaves no output file."""

import pytest

from sam2unext.errors import CheckpointError, InputError, OutputError, PresetError, UserError
from sam2unext.geo import predict_raster
from sam2unext.geo.demo.stand_ins import PixelModel


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def _assert_one_line_error(exc_info, kind):
    assert isinstance(exc_info.value, kind)
    assert isinstance(exc_info.value, UserError) and exc_info.value.exit_code == 2
    msg = str(exc_info.value)
    assert msg and "\n" not in msg


@pytest.fixture
def out_dir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


def _run(src, out_dir, **kw):
    kw.setdefault("model", PixelModel(32, None))
    kw.setdefault("progress", "none")
    return predict_raster(src, out_dir / "prob.tif", **kw)


def test_missing_file(tmp_path, out_dir):
    with pytest.raises(InputError) as e:
        _run(tmp_path / "nope.tif", out_dir)
    _assert_one_line_error(e, InputError)
    assert "nope.tif" in str(e.value)
    assert _files(out_dir) == []


@pytest.mark.parametrize("content", [b"", b"II*\x00garbage" * 10, b"just some text, not a raster\n"])
def test_corrupt_empty_or_not_a_raster(tmp_path, out_dir, content):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(content)
    with pytest.raises(InputError) as e:
        _run(bad, out_dir)
    _assert_one_line_error(e, InputError)
    assert _files(out_dir) == []


def test_band_out_of_range(rgb_raster, out_dir):
    with pytest.raises(InputError) as e:
        _run(rgb_raster, out_dir, bands=(4, 2, 1))
    _assert_one_line_error(e, InputError)
    assert "band 4" in str(e.value)
    with pytest.raises(InputError):
        _run(rgb_raster, out_dir, bands=(1, 2))
    assert _files(out_dir) == []


def test_unwritable_or_missing_output_folder(rgb_raster, tmp_path):
    with pytest.raises(OutputError) as e:
        predict_raster(rgb_raster, tmp_path / "missing" / "p.tif", model=PixelModel(32, None), progress="none")
    _assert_one_line_error(e, OutputError)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError):
        predict_raster(rgb_raster, blocker / "p.tif", model=PixelModel(32, None), progress="none")


def test_readonly_folder(rgb_raster, tmp_path, monkeypatch):
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == str(ro) else real_access(p, m))
    with pytest.raises(OutputError) as e:
        predict_raster(rgb_raster, ro / "p.tif", model=PixelModel(32, None), progress="none")
    assert "not writable" in str(e.value)
    assert _files(ro) == []


def test_existing_output_needs_overwrite(rgb_raster, out_dir):
    (out_dir / "prob.tif").write_bytes(b"old")
    with pytest.raises(OutputError) as e:
        _run(rgb_raster, out_dir)
    _assert_one_line_error(e, OutputError)
    assert (out_dir / "prob.tif").read_bytes() == b"old"
    (out_dir / "prob.tif").unlink()
    (out_dir / "prob_polygons.gpkg").write_bytes(b"old")
    with pytest.raises(OutputError):
        _run(rgb_raster, out_dir)
    assert _files(out_dir) == ["prob_polygons.gpkg"]
    res = _run(rgb_raster, out_dir, overwrite=True)
    assert res.probability.stat().st_size > 100 and res.vector.stat().st_size > 100


def test_unknown_preset_and_missing_checkpoint(rgb_raster, out_dir, tmp_path):
    with pytest.raises(PresetError) as e:
        _run(rgb_raster, out_dir, model=None, preset="no-such-preset", device="cpu")
    _assert_one_line_error(e, PresetError)
    with pytest.raises(CheckpointError) as e:
        _run(rgb_raster, out_dir, model=None, checkpoint=tmp_path / "missing.safetensors", device="cpu")
    _assert_one_line_error(e, CheckpointError)
    assert _files(out_dir) == []


def test_checkpoint_preset_mismatch(rgb_raster, out_dir, tmp_path):
    from sam2unext import build_model, save_checkpoint

    ckpt = tmp_path / "unet.safetensors"
    save_checkpoint(build_model("sam2unet-test"), ckpt)
    with pytest.raises((PresetError, CheckpointError)) as e:
        _run(rgb_raster, out_dir, model=None, checkpoint=ckpt, preset="sam2unext-test", device="cpu")
    assert "\n" not in str(e.value) and e.value.exit_code == 2
    assert _files(out_dir) == []


class _Interrupting(PixelModel):
    def __init__(self, after: int, exc: type[BaseException]):
        super().__init__(32, None)
        self.after, self.exc = after, exc

    def predict(self, images, low_res=None):
        if self.calls >= self.after:
            raise self.exc()
        return super().predict(images, low_res)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, RuntimeError])
def test_cancel_leaves_no_file(rgb_raster, out_dir, exc):
    with pytest.raises(exc):
        _run(rgb_raster, out_dir, model=_Interrupting(3, exc), batch_size=2)
    assert _files(out_dir) == []


def test_bad_options(rgb_raster, out_dir):
    for kw in (
        {"overlap": 1.5 * 32},
        {"out_dtype": "int16"},
        {"stretch": (5, 1)},
        {"resolution": -1.0},
        {"progress": "loud"},
        {"vector_format": "shp"},
        {"batch_size": 0},
    ):
        with pytest.raises(UserError):
            _run(rgb_raster, out_dir, **kw)
    assert _files(out_dir) == []


def test_remote_path_reaches_gdal_unchanged(monkeypatch, out_dir):
    """``Path()`` would collapse the ``//`` of ``/vsicurl/https://...``; the string must reach GDAL as given."""
    import rasterio
    from rasterio.errors import RasterioIOError

    seen = []

    def fake_open(path, *args, **kwargs):
        seen.append(path)
        raise RasterioIOError("no network in tests")

    monkeypatch.setattr(rasterio, "open", fake_open)
    url = "/vsicurl/https://example.invalid/scene.tif"
    with pytest.raises(InputError) as e:
        _run(url, out_dir)
    _assert_one_line_error(e, InputError)
    assert [str(p) for p in seen] == [url] and url in str(e.value)
    assert _files(out_dir) == []
