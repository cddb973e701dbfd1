"""No noise in a normal run: notebook progress without ipywidgets, xarray output without warnings."""

from __future__ import annotations

import sys
import types
import warnings

from sam2unext.geo import predict_raster, progress
from sam2unext.geo.demo.stand_ins import PixelModel

from geo_helpers import smooth_rgb, write_raster


def test_notebook_without_ipywidgets_prints_one_note_and_one_line_per_stage(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("ipykernel.zmqshell"))
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import fails
    monkeypatch.setattr(progress, "_noted", False)
    for _ in range(2):
        bar = progress.BarProgress()
        bar.start("scene.tif", 70, 100, 100)
        for done in range(71):
            bar.update("predict", done, 70)
        bar.update("write", 0, 1)
        bar.update("write", 1, 1)
        bar.close()
    out, err = capsys.readouterr()
    once = ["predict scene.tif: 70/70 tiles", "write scene.tif: 1/1 steps"]
    assert out.splitlines() == [progress.NO_WIDGETS_NOTE, *once, *once]
    assert err == ""


def test_xarray_output_raises_no_warning(tmp_path):
    scene = write_raster(tmp_path / "s.tif", smooth_rgb(150, 170))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # hidden by Python's default filters anyway
        res = predict_raster(scene, model=PixelModel(), progress="none", as_xarray=True, as_geodataframe=True)
    assert res.data_array.shape == (150, 170)
    assert dict(res.data_array.chunksizes) == {"y": (150,), "x": (170,)}
