"""Checks of the QGIS plugin that run inside real QGIS (system ``python3`` + ``python3-qgis``).

Run by ``tests/qgis/test_qgis_plugin.py`` from the project's venv pytest::

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis/inside_qgis.py --results out.json \
        [--real-cli /path/to/sam2unext-geo] [--only NAME ...]

Each check is a function ``check_<name>()``; the results file maps the name to
``{"status": "passed"|"failed"|"skipped", "detail": str, "seconds": float}``.
No pytest is needed on the system Python.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PLUGIN_DIR = ROOT / "qgis_plugin"  # contains the plugin folder sam2unext_geo/
PLUGIN = "sam2unext_geo"
FAKE_CLI = HERE / "fake_cli.py"

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(PLUGIN_DIR))

from osgeo import gdal, osr  # noqa: E402
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsSettings  # noqa: E402
from qgis.PyQt.QtCore import QCoreApplication  # noqa: E402
from qgis.PyQt.QtWidgets import QMainWindow, QMenu, QToolBar  # noqa: E402

gdal.UseExceptions()
REAL_CLI: str | None = None
WHEEL: str | None = None
TMP = Path(tempfile.mkdtemp(prefix="sam2unext_qgis_"))


class Skip(Exception):
    """A check that cannot run here (reason in the message)."""


class IfaceStandIn:
    """The part of ``QgisInterface`` the plugin uses, over a real QMainWindow."""

    def __init__(self):
        self.window = QMainWindow()
        self.messages: list = []
        self.raster_menus: dict = {}
        self.active = None

    def mainWindow(self):  # noqa: N802 - QGIS API
        return self.window

    def messageBar(self):  # noqa: N802 - QGIS API
        return self

    def pushMessage(self, title, text, level=0, duration=0):  # noqa: N802 - QgsMessageBar API
        self.messages.append(text)

    def activeLayer(self):  # noqa: N802 - QGIS API
        return self.active

    def mapCanvas(self):  # noqa: N802 - QGIS API (no canvas: Processing then skips map scopes)
        return None

    def addToolBar(self, name):  # noqa: N802 - QGIS API
        return self.window.addToolBar(name)

    def addPluginToRasterMenu(self, name, action):  # noqa: N802 - QGIS API
        self.raster_menus.setdefault(name, QMenu(name)).addAction(action)

    def removePluginRasterMenu(self, name, action):  # noqa: N802 - QGIS API
        menu = self.raster_menus.get(name)
        if menu is not None:
            menu.removeAction(action)
            if not menu.actions():
                del self.raster_menus[name]


# helpers --------------------------------------------------------------------------------------
def make_scene(path: Path, size: int = 96, epsg: int = 32633) -> Path:
    """A 3-band uint8 GeoTIFF with a bright disk on a dark field, in a UTM CRS."""
    import numpy as np

    yy, xx = np.mgrid[0:size, 0:size]
    disk = ((xx - size * 0.55) ** 2 + (yy - size * 0.45) ** 2) < (size * 0.25) ** 2
    ds = gdal.GetDriverByName("GTiff").Create(str(path), size, size, 3, gdal.GDT_Byte)
    ds.SetGeoTransform((500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    for b, (lo, hi) in enumerate(((40, 220), (60, 200), (30, 90)), start=1):
        ds.GetRasterBand(b).WriteArray(np.where(disk, hi, lo + (xx + yy) % 17).astype("uint8"))
    ds = None
    return path


def fake_executable(
    delay: float = 0.05,
    broken: bool = False,
    check_delay: float = 0.0,
    args_log: Optional[Path] = None,
    unwritable: bool = False,
) -> str:
    """A ``sam2unext-geo`` shim running tests/qgis/fake_cli.py with the system Python."""
    folder = Path(tempfile.mkdtemp(prefix="fakebin_", dir=TMP))
    exe = folder / "sam2unext-geo"
    env = f"FAKE_CLI_DELAY={delay} FAKE_CLI_CHECK_DELAY={check_delay} " + ("FAKE_CLI_BROKEN=1 " if broken else "")
    env += "FAKE_CLI_UNWRITABLE=1 " if unwritable else ""
    if args_log:
        env += f"FAKE_CLI_ARGS_LOG={args_log} "
    exe.write_text(f'#!/bin/sh\n{env}exec {sys.executable} {FAKE_CLI} "$@"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(exe)


def real_cli() -> str:
    if not REAL_CLI or not os.access(REAL_CLI, os.X_OK):
        raise Skip(f"the real sam2unext-geo command is not installed ({REAL_CLI!r})")
    return REAL_CLI


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QCoreApplication.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    QCoreApplication.processEvents()
    return condition()


def load_plugin(iface, plugin_path: Path = PLUGIN_DIR):
    """Load and start the plugin through qgis.utils, as QGIS does; return the plugin object."""
    import qgis.utils

    errors: list = []
    qgis.utils.iface = iface
    qgis.utils.plugin_paths = [str(plugin_path)]
    qgis.utils.updateAvailablePlugins()
    assert PLUGIN in qgis.utils.available_plugins, qgis.utils.available_plugins
    meta = qgis.utils.plugins_metadata_parser[PLUGIN]
    assert meta.get("general", "qgisMinimumVersion") == "3.22" and meta.get("general", "icon")
    qgis.utils.showException = lambda *a, **k: errors.append("".join(traceback.format_exception(*a[:3])))
    if not qgis.utils.loadPlugin(PLUGIN) or not qgis.utils.startPlugin(PLUGIN):
        raise AssertionError("plugin failed to load: " + "\n".join(errors))
    return qgis.utils.plugins[PLUGIN], errors


def unload_plugin():
    import qgis.utils

    errors: list = []
    qgis.utils.showException = lambda *a, **k: errors.append("".join(traceback.format_exception(*a[:3])))
    assert qgis.utils.unloadPlugin(PLUGIN), "unloadPlugin returned False: " + "\n".join(errors)


def run_task(plugin, executable, options, timeout=240.0, cancel_after_progress=False, cancel_when=None, **kw):
    """Start a PredictTask through the plugin and wait for its finished() call (or cancel it once
    it made progress, or once ``cancel_when()`` is true)."""
    finished: list = []
    task = plugin.start_task(executable, options, **kw)
    task.on_finished = lambda t: (plugin._forget(t), finished.append(t))
    if cancel_after_progress:
        ready = cancel_when or (lambda: task.progress() > 0)
        assert wait_until(lambda: ready() or finished, 120), "no progress seen"
        assert not finished, "finished before it could be cancelled"
        t0 = time.monotonic()
        task.cancel()
        assert wait_until(lambda: finished, 30), "task did not finish after cancel"
        return task, time.monotonic() - t0
    assert wait_until(lambda: finished, timeout), f"task did not finish in {timeout} s"
    return task, None


def predict_options(scene, out_dir, preset="sam2unext-test", **kw):
    from sam2unext_geo.commands import PredictOptions

    return PredictOptions(
        scene=str(scene), out_dir=str(out_dir), preset=preset, overlap=0.25, batch_size=2, device="cpu", **kw
    )


# checks ---------------------------------------------------------------------------------------
def check_load_unload():
    """initGui adds the toolbar action, menu entry and provider; unload removes them all."""
    iface = IfaceStandIn()
    plugin, errors = load_plugin(iface)
    reg = QgsApplication.processingRegistry()
    bars = [b for b in iface.window.findChildren(QToolBar) if b.objectName() == "sam2unext_geo_toolbar"]
    assert len(bars) == 1, f"toolbar not found: {bars}"
    names = [a.objectName() for a in bars[0].actions()]
    assert "sam2unext_geo_predict" in names, names
    assert not bars[0].actions()[0].icon().isNull(), "action has no icon"
    assert any("SAM2-UNeXT" in m for m in iface.raster_menus), iface.raster_menus
    menu_actions = [a.objectName() for m in iface.raster_menus.values() for a in m.actions()]
    assert menu_actions == ["sam2unext_geo_predict", "sam2unext_geo_install"], menu_actions
    assert reg.providerById("sam2unext") is not None, "provider not registered"
    algs = sorted(a.id() for a in reg.providerById("sam2unext").algorithms())
    assert algs == ["sam2unext:predict", "sam2unext:vectorize"], algs
    predict = reg.algorithmById("sam2unext:predict")
    overwrite = predict.parameterDefinition("OVERWRITE")
    assert overwrite.defaultValue() is False, overwrite.defaultValue()  # agrees with the dialog
    assert overwrite.description() == "Overwrite existing outputs"
    for name in ("AOI_EXTENT", "AOI_POLYGONS", "RESUME", "TTA", "REGULARIZE", "REGULARIZE_TOLERANCE"):
        assert predict.parameterDefinition(name) is not None, name
    assert predict.parameterDefinition("TTA").description() == "Test-time augmentation"
    unload_plugin()
    assert reg.providerById("sam2unext") is None, "provider still registered"
    assert not iface.raster_menus, iface.raster_menus
    QCoreApplication.processEvents()
    from qgis.PyQt.QtCore import QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    bars = [b for b in iface.window.findChildren(QToolBar) if b.objectName() == "sam2unext_geo_toolbar"]
    assert not bars, "toolbar left behind"
    assert not [m for m in sys.modules if m == PLUGIN or m.startswith(PLUGIN + ".")], "modules left"
    assert not errors, errors
    return f"toolbar action + raster menu + provider with {algs}; all removed on unload"


def check_zip_install():
    """The built zip, unpacked like "Install from ZIP" does, loads and unloads in QGIS."""
    import zipfile

    import qgis.utils

    archive = TMP / "sam2unext_geo_qgis.zip"
    subprocess.run(
        [sys.executable, str(PLUGIN_DIR / "build_zip.py"), "-o", str(archive)] + (["--wheel", WHEEL] if WHEEL else []),
        check=True,
        capture_output=True,
    )
    installed = TMP / "profile_plugins"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(installed)
    sys.path.insert(0, str(installed))
    try:
        iface = IfaceStandIn()
        load_plugin(iface, plugin_path=installed)
        module_file = sys.modules[PLUGIN].__file__
        assert module_file.startswith(str(installed)), module_file
        from sam2unext_geo import installer

        wheel = installer.bundled_wheel()
        assert str(wheel).startswith(str(installed)) and installer.wheel_version(
            wheel
        ) == qgis.utils.plugins_metadata_parser[PLUGIN].get("general", "version"), wheel
        assert QgsApplication.processingRegistry().providerById("sam2unext") is not None
        unload_plugin()
    finally:
        sys.path.remove(str(installed))
        qgis.utils.plugin_paths = [str(PLUGIN_DIR)]
    return (
        f"{archive.name} ({archive.stat().st_size // 1024} KiB) with {wheel.name} unpacked, loaded from "
        f"{installed.name}/, unloaded"
    )


def check_dialog_options():
    """The dialog defaults to the active raster, builds options, remembers values in QgsSettings."""
    iface = IfaceStandIn()
    plugin, _ = load_plugin(iface)
    try:
        from sam2unext_geo.dialog import PredictDialog

        scene = make_scene(TMP / "dialog_scene.tif")
        layer = QgsRasterLayer(str(scene), "dialog_scene")
        QgsProject.instance().addMapLayer(layer)
        dlg = PredictDialog(None, layer, check_on_open=False)
        assert dlg.layer_combo.currentLayer() is layer
        dlg.preset_radio.setChecked(True)
        dlg.preset_combo.setCurrentText("sam2unext-test")
        dlg.tile_spin.setValue(128)
        dlg.bands_edit.setText("3, 2,1")
        dlg.out_widget.setFilePath(str(TMP / "dialog_out"))
        opts = dlg.options()
        assert opts.scene == str(scene) and opts.preset == "sam2unext-test" and opts.tile_size == 128
        assert opts.bands == "3,2,1", opts.bands
        assert (opts.tta, opts.regularize, opts.regularize_tolerance) == ("none", False, None)
        dlg.tta_combo.setCurrentIndex(dlg.tta_combo.findData("d4"))
        dlg.vector_check.setChecked(True)
        dlg.regularize_check.setChecked(True)
        dlg.tolerance_spin.setValue(1.5)
        assert dlg.tolerance_spin.isEnabled()
        opts = dlg.options()
        assert (opts.tta, opts.regularize, opts.regularize_tolerance) == ("d4", True, 1.5), opts
        dlg.vector_check.setChecked(False)  # no polygons: nothing to square
        assert not dlg.regularize_check.isEnabled() and not dlg.options().regularize
        dlg.vector_check.setChecked(True)
        upstream = TMP / "SAM2-UNeXT-upstream.pth"
        upstream.write_bytes(b"")
        dlg.ckpt_radio.setChecked(True)
        dlg.ckpt_widget.setFilePath(str(upstream))
        ckpt = dlg.options()
        assert (ckpt.checkpoint, ckpt.preset) == (str(upstream), "sam2unext-test"), (ckpt.checkpoint, ckpt.preset)
        dlg.preset_radio.setChecked(True)
        dlg.save_settings()
        again = PredictDialog(None, layer, check_on_open=False)
        assert again.tile_spin.value() == 128 and again.preset_combo.currentText() == "sam2unext-test"
        assert QgsSettings().value("sam2unext_geo/bands") == "3, 2,1"
        assert again.tta_combo.currentData() == "d4" and again.regularize_check.isChecked()
        assert again.tolerance_spin.value() == 1.5
        for key, value in (("tta", "none"), ("regularize", False), ("regularize_tolerance", 0.0)):
            QgsSettings().setValue("sam2unext_geo/" + key, value)  # later checks run the real CLI: keep them fast
        again.exe_widget.setFilePath(fake_executable())
        again.check_environment(use_cache=False)
        assert wait_until(lambda: again.check_finished, 60), "check did not finish"
        assert again.env_label.text().startswith("OK:") and "fake" in again.env_label.text(), again.env_label.text()
        assert again.preset_combo.findText("sam2unet-fake") >= 0, "presets not read from `models`"
        again.set_gpu_available(False)
        assert not again.device_combo.model().item(again.device_combo.findData("cuda")).isEnabled()
        again.exe_widget.setFilePath(str(TMP / "missing" / "sam2unext-geo"))
        again.check_environment()
        assert again.check_finished and "Install…" in again.env_label.text(), again.env_label.text()
        diag = again.copy_diagnostics()
        assert "QGIS: 3." in diag and "last error:" in diag and "missing" in diag, diag
        from qgis.PyQt.QtWidgets import QApplication

        assert QApplication.clipboard().text() == diag
        # a long environment error scrolls inside its box; the spin boxes keep their full height
        again.env_label.setText(" ".join(["The sam2unext-geo environment looks broken."] * 40))
        again.show()
        wait_until(lambda: False, 0.3)
        heights = {
            w.objectName() or type(w).__name__: (w.height(), w.sizeHint().height())
            for w in (again.tile_spin, again.overlap_spin, again.batch_spin, again.threshold_spin)
        }
        assert all(h >= hint for h, hint in heights.values()), heights
        again.close()
        QgsProject.instance().removeAllMapLayers()
        return (
            "options built from widgets; values restored from QgsSettings in a new dialog; "
            "background Check reads presets from `models`, reports a missing command with the Install hint; "
            f"Copy diagnostics; spin box heights with a long error {heights}"
        )
    finally:
        unload_plugin()


def check_missing_environment():
    """A missing or broken command gives a clear message with the install command; no layers."""
    from sam2unext_geo import environment  # plugin modules import fine without the QGIS GUI

    try:
        environment.find_executable(str(TMP / "nowhere" / "sam2unext-geo"))
        raise AssertionError("missing executable accepted")
    except environment.EnvironmentProblem as exc:
        assert "Install…" in str(exc) and "nowhere" in str(exc), str(exc)
    broken = fake_executable(broken=True)
    iface = IfaceStandIn()
    plugin, _ = load_plugin(iface)
    try:
        scene = make_scene(TMP / "broken_scene.tif")
        task, _ = run_task(plugin, broken, predict_options(scene, TMP / "broken_out"), timeout=60)
        assert task.error and "Install…" in task.error and "torch" in task.error, task.error
        assert any("Install…" in m for m in iface.messages), iface.messages
        assert not QgsProject.instance().mapLayers(), "layers added after a failure"
        return task.error[:160] + "…"
    finally:
        unload_plugin()


def check_task_adds_layers():
    """The real CLI (tiny preset) via the dialog and the background task, with a selected triangle as
    the area of interest: both layers added in a group named after the scene and the run's time, in
    the input CRS; the raster covers the triangle's box, its pixels outside the triangle are nodata
    as QGIS reads them (the mask band, drawn as the renderer's alpha), no polygon leaves the triangle."""
    from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsVectorLayer

    exe = real_cli()
    iface = IfaceStandIn()
    plugin, _ = load_plugin(iface)
    try:
        from sam2unext_geo import layers as layers_module
        from sam2unext_geo.dialog import PredictDialog

        scene = make_scene(TMP / "field_32633.tif", size=96)  # 10 m pixels from (500000, 5000000)
        out = TMP / "task_out"
        # a right triangle whose box is 32 x 32 pixels inside the scene
        triangle = QgsGeometry.fromWkt("POLYGON((500100 4999400, 500420 4999400, 500100 4999720, 500100 4999400))")
        fields = QgsVectorLayer("Polygon?crs=EPSG:32633", "fields", "memory")
        feature = QgsFeature()
        feature.setGeometry(triangle)
        fields.dataProvider().addFeatures([feature])
        fields.selectAll()
        layer = QgsRasterLayer(str(scene), "field_32633")
        QgsProject.instance().addMapLayers([layer, fields])
        dlg = PredictDialog(None, layer, check_on_open=False)
        dlg.preset_radio.setChecked(True)
        dlg.preset_combo.setCurrentText("sam2unext-test")
        dlg.tile_spin.setValue(32)
        dlg.batch_spin.setValue(2)
        dlg.device_combo.setCurrentIndex(dlg.device_combo.findData("cpu"))
        dlg.threshold_spin.setValue(0.01)  # random weights: every valid pixel is above it
        dlg.vector_check.setChecked(True)
        dlg.out_widget.setFilePath(str(out))
        dlg.aoi_combo.setCurrentIndex(dlg.aoi_combo.findData("selected"))
        dlg.aoi_layer_combo.setLayer(fields)
        options = dlg.options(export_aoi=True)
        dlg.close()
        assert options.aoi and options.bbox is None, (options.aoi, options.bbox)
        t0 = time.monotonic()
        task, _ = run_task(plugin, exe, options)
        secs = time.monotonic() - t0
        assert task.error is None, task.error
        assert not os.path.exists(options.aoi), "temporary AOI file left behind"
        done = task.result.done[-1]
        ds = gdal.Open(done["probability"])
        gt, size = ds.GetGeoTransform(), (ds.RasterXSize, ds.RasterYSize)
        ds = None
        assert size == (32, 32) and (gt[0], gt[3]) == (500100.0, 4999720.0), (size, gt)
        assert done["tiles_run"] < 16, done  # the whole 96 px scene is 16 tiles of 32 px
        root = QgsProject.instance().layerTreeRoot()
        group = task.group
        assert root.findGroup(group.name()) is group, [c.name() for c in root.children()]
        expected = layers_module.result_group_name("field_32633", task.started)
        assert group.name() == expected and group.isExpanded(), (group.name(), expected)
        assert task.stages[0] == "loading model…" and "segmenting tiles…" in task.stages, task.stages
        group_name = group.name()
        layers = [n.layer() for n in group.findLayers()]
        assert len(layers) == 2, layers
        src_crs = layer.crs()
        assert src_crs.authid() == "EPSG:32633", src_crs.authid()
        for lyr in layers:
            assert lyr.isValid() and lyr.crs() == src_crs, (lyr.name(), lyr.crs().authid())
        kinds = sorted(type(lyr).__name__ for lyr in layers)
        assert kinds == ["QgsRasterLayer", "QgsVectorLayer"], kinds
        raster = next(lyr for lyr in layers if isinstance(lyr, QgsRasterLayer))
        polygons = next(lyr for lyr in layers if not isinstance(lyr, QgsRasterLayer))
        assert raster.renderer().type() == "singlebandpseudocolor", raster.renderer().type()
        # nodata as QGIS reads it: the mask band (0 = nodata), which the renderer uses as alpha
        mask = layers_module.mask_band(raster)
        assert mask == 2 and raster.renderer().alphaBand() == mask, (mask, raster.renderer().alphaBand())
        block = raster.dataProvider().block(mask, raster.extent(), 32, 32)
        edge = triangle.convertToType(1)  # the outline: pixels whose centre is on it are left out
        counts = {"inside": 0, "outside": 0}
        for row in range(32):
            for col in range(32):
                centre = QgsGeometry.fromPointXY(QgsPointXY(500105 + 10 * col, 4999715 - 10 * row))
                if edge.distance(centre) < 1.0:
                    continue
                where = "inside" if triangle.contains(centre) else "outside"
                value = block.value(row, col)
                assert value == (255 if where == "inside" else 0), (row, col, where, value)
                counts[where] += 1
        assert min(counts.values()) > 400, counts
        features = list(polygons.getFeatures())
        within = triangle.buffer(0.01, 4)
        assert features and all(within.contains(f.geometry()) for f in features), [
            f.geometry().asWkt(1) for f in features if not within.contains(f.geometry())
        ]
        # a second result of the same scene at the same second still gets its own group
        again, *_ = layers_module.add_result_layers(done["probability"], None, "field_32633", started=task.started)
        assert again.name() == group_name + " (2)", again.name()
        # the real command's vectorize through the Processing algorithm (executable from settings)
        processing = init_processing()
        QgsSettings().setValue("sam2unext_geo/executable", exe)
        vec = TMP / "task_vec" / "again.gpkg"
        vec.parent.mkdir()
        res = processing.run("sam2unext:vectorize", {"INPUT": raster.source(), "THRESHOLD": 0.3, "OUTPUT": str(vec)})
        assert res["OUTPUT"] == str(vec) and vec.is_file(), res
        QgsProject.instance().removeAllMapLayers()
        root.removeAllChildren()
        return (
            f"group '{group_name}' with {kinds} in EPSG:32633 in {secs:.1f} s; stages {task.stages}; selected "
            f"triangle → {size[0]}x{size[1]} px raster at its box, {done['tiles_run']} tile(s) run (whole scene: "
            f"16); QGIS reads {counts['outside']} pixel centres outside it as nodata (mask band = alpha band) and "
            f"{counts['inside']} inside as valid; {len(features)} polygon(s), all within the triangle; "
            f"sam2unext:vectorize wrote {vec.name}"
        )
    finally:
        QgsSettings().remove("sam2unext_geo/executable")
        unload_plugin()


def check_cancel_leaves_nothing():
    """Cancel mid-run: the subprocess stops promptly, no layers, no files, no output folder."""
    exe = fake_executable(delay=1.0)  # 8 progress lines, 1 s apart: cancel lands mid-run
    iface = IfaceStandIn()
    plugin, _ = load_plugin(iface)
    try:
        from sam2unext_geo import runner

        scene = make_scene(TMP / "cancel_scene.tif")
        out = TMP / "cancel_out"
        started: list = []
        orig = runner.run_command

        def spy(*a, **k):
            k["on_started"] = started.append
            return orig(*a, **k)

        runner.run_command = spy
        try:
            task, stop_secs = run_task(
                plugin, exe, predict_options(scene, out), cancel_after_progress=True, check_environment=False
            )
        finally:
            runner.run_command = orig
        assert task.cancelled_run and task.error is None, (task.cancelled_run, task.error)
        assert started and started[0].poll() is not None, "subprocess still running"
        assert stop_secs < 5.0, f"cancel took {stop_secs:.1f} s"
        assert not out.exists(), f"left behind: {list(out.iterdir())}"
        assert not QgsProject.instance().mapLayers(), "layers added after cancel"
        assert QgsProject.instance().layerTreeRoot().findGroup("cancel_scene") is None
        return f"stopped in {stop_secs:.2f} s (exit {started[0].returncode}); no layers, no files"
    finally:
        unload_plugin()


class GuiStallMeter:
    """A 10 ms QTimer on the GUI thread; the longest gap between its ticks is how long the GUI froze."""

    def __init__(self, interval_ms: int = 10):
        from qgis.PyQt.QtCore import QTimer

        self.ticks: list = []
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(lambda: self.ticks.append(time.monotonic()))

    def __enter__(self):
        self.ticks = [time.monotonic()]
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.stop()
        self.ticks.append(time.monotonic())

    @property
    def longest_ms(self) -> float:
        return 1000 * max(b - a for a, b in zip(self.ticks, self.ticks[1:]))


def timed_check(dialog, use_cache: bool, timeout: float = 240.0) -> tuple:
    """Click Check and pump events until it finishes; returns (longest GUI stall ms, seconds)."""
    t0 = time.monotonic()
    with GuiStallMeter() as meter:
        dialog.check_environment(use_cache=use_cache)
        done = wait_until(lambda: dialog.check_finished, timeout)
    assert done, "Check did not finish"
    return meter.longest_ms, time.monotonic() - t0


def check_background_check():
    """Check runs off the GUI thread: a 10 ms timer inside QGIS never waits > 200 ms; the result is cached."""
    iface = IfaceStandIn()
    plugin, _ = load_plugin(iface)
    try:
        from sam2unext_geo import environment
        from sam2unext_geo.dialog import PredictDialog

        slow = fake_executable(check_delay=0.5)  # --version and models take 0.5 s each
        # before issue 11 the dialog ran these on the GUI thread: the same calls, timed the old way
        with GuiStallMeter() as old:
            environment.check_environment(slow)
            QCoreApplication.processEvents()
        dlg = PredictDialog(None, None, check_on_open=False)
        dlg.exe_widget.setFilePath(slow)
        dlg.show()
        fake_ms, fake_s = timed_check(dlg, use_cache=False)
        assert dlg.env_label.text().startswith("OK:"), dlg.env_label.text()
        assert fake_ms < 200, f"GUI blocked {fake_ms:.0f} ms during Check"
        cached_ms, cached_s = timed_check(dlg, use_cache=True)
        assert cached_s < 0.5 and "(cached)" in dlg.env_label.text(), (cached_s, dlg.env_label.text())
        detail = (
            f"fake command (1 s of checks): longest GUI stall {fake_ms:.0f} ms over {fake_s:.1f} s "
            f"(synchronous, as before: {old.longest_ms:.0f} ms); cached re-check {cached_s * 1000:.0f} ms"
        )
        if REAL_CLI and os.access(REAL_CLI, os.X_OK):
            environment.forget_probes()
            dlg.exe_widget.setFilePath(REAL_CLI)
            real_ms, real_s = timed_check(dlg, use_cache=False)
            assert dlg.env_label.text().startswith("OK:") and "torch" in dlg.env_label.text(), dlg.env_label.text()
            # The real check imports torch twice in child processes (tens of CPU-seconds): on a loaded
            # 2-core CI machine the GUI thread can be starved by the OS for a while although nothing
            # in QGIS waits for the check (the fake command above, with no CPU work, proves that at
            # 200 ms). Bound it loosely here; the figure is reported.
            assert real_ms < 1000, f"GUI stalled {real_ms:.0f} ms during Check of the real command"
            detail += f"; real command: longest stall {real_ms:.0f} ms over {real_s:.1f} s ({dlg.env_label.text()})"
        dlg.close()
        return detail
    finally:
        unload_plugin()


def file_bytes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def check_cancel_keeps_other_runs():
    """Two runs into one folder, one cancelled: the other's outputs stay byte-identical and on the map.

    The real command stopped by SIGTERM mid-predict (what Cancel sends), beside another run's files
    in its folder, is tests/cli/test_cli_refusals.py::test_cancel_prints_one_line_and_a_json_error_event.
    """
    iface = IfaceStandIn()
    plugin, _ = load_plugin(iface)
    try:
        folder = TMP / "shared_out"
        scene_a = make_scene(TMP / "run_a.tif")
        scene_b = make_scene(TMP / "run_b.tif")
        slow, fast = fake_executable(delay=1.0), fake_executable(delay=0.05)
        finished: list = []
        # B starts first (slow), A runs beside it and finishes while B is still running
        task_b = plugin.start_task(slow, predict_options(scene_b, folder), check_environment=False)
        task_b.on_finished = lambda t: (plugin._forget(t), finished.append(t))
        assert wait_until(lambda: task_b.progress() > 0, 60), "B did not start"
        task_a = plugin.start_task(fast, predict_options(scene_a, folder), check_environment=False)
        task_a.on_finished = lambda t: (plugin._forget(t), finished.append(t))
        assert wait_until(lambda: task_a in finished, 60) and task_a.error is None, task_a.error
        a_files = {k: v for k, v in file_bytes(folder).items() if k.startswith("run_a")}
        assert sorted(a_files) == ["run_a_prob.tif", "run_a_prob_polygons.gpkg"], sorted(file_bytes(folder))
        b_partial = folder / "run_b_prob.tif.partial"
        assert b_partial.is_dir() and task_b in plugin.tasks, "B should still be running with its store"
        try:
            plugin.start_task(slow, predict_options(scene_b, folder), check_environment=False)
            raise AssertionError("a second run onto B's outputs was accepted while B runs")
        except ValueError as exc:
            assert "being written" in str(exc), str(exc)
        task_b.cancel()
        assert wait_until(lambda: task_b in finished, 30) and task_b.cancelled_run
        after = file_bytes(folder)
        assert after == a_files, sorted(after)  # byte-identical, nothing of B left
        assert not b_partial.exists()
        layers = [lyr for lyr in QgsProject.instance().mapLayers().values()]
        assert len(layers) == 2 and all(lyr.isValid() for lyr in layers), layers
        QgsProject.instance().removeAllMapLayers()
        return (
            f"A's {sorted(a_files)} byte-identical and on the map after cancelling B in the same folder; "
            "B's temp files and .partial store removed; a second run onto B's outputs refused"
        )
    finally:
        unload_plugin()


class RecordingFeedback:
    """A Processing feedback that keeps every line it is given, whatever the channel."""

    def __new__(cls):
        from qgis.core import QgsProcessingFeedback

        class Recording(QgsProcessingFeedback):
            def __init__(self):
                super().__init__()
                self.lines: list = []

            def pushInfo(self, info):  # noqa: N802 - QGIS API
                self.lines.append(info)

            def pushWarning(self, warning):  # noqa: N802 - QGIS API
                self.lines.append(warning)

            def pushCommandInfo(self, info):  # noqa: N802 - QGIS API
                self.lines.append(info)

            def pushDebugInfo(self, info):  # noqa: N802 - QGIS API
                self.lines.append(info)

            def pushConsoleInfo(self, info):  # noqa: N802 - QGIS API
                self.lines.append(info)

            def reportError(self, error, fatalError=False):  # noqa: N802, N803 - QGIS API
                self.lines.append(error)

            def setProgressText(self, text):  # noqa: N802 - QGIS API
                self.lines.append(text)

        return Recording()


def check_stage_and_error_words():
    """The progress shows "loading model…" during the load stage; an existing output names the Overwrite
    box; a read-only output folder is named by its widget, once, in the dialog, its task and Processing."""
    iface = IfaceStandIn()
    plugin, _ = load_plugin(iface)
    try:
        scene = make_scene(TMP / "words.tif")
        out = TMP / "words_out"
        exe = fake_executable()
        stages: list = []
        from sam2unext_geo import commands
        from sam2unext_geo import task as task_module
        from sam2unext_geo.dialog import PredictDialog

        orig = task_module.PredictTask._on_event

        def spy(self, event):
            orig(self, event)
            if not stages or stages[-1] != self.stage:
                stages.append(self.stage)

        task_module.PredictTask._on_event = spy
        try:
            first, _ = run_task(plugin, exe, predict_options(scene, out), check_environment=False)
        finally:
            task_module.PredictTask._on_event = orig
        assert first.error is None and stages[0] == "loading model…", stages
        again, _ = run_task(plugin, exe, predict_options(scene, out), check_environment=False)
        assert again.error and "tick “Overwrite existing outputs”" in again.error, again.error
        assert "--overwrite" not in again.error, again.error
        QgsProject.instance().removeAllMapLayers()
        # a read-only output folder: the command's "choose another with -o" in the plugin's words
        read_only = TMP / "read_only"
        read_only.mkdir()
        unwritable = fake_executable(unwritable=True)
        refused, _ = run_task(plugin, unwritable, predict_options(scene, read_only), check_environment=False)
        expected = f"output folder {read_only} is not writable; choose another “Output folder”"
        assert refused.error == expected, refused.error
        processing = init_processing()
        from qgis.core import QgsProcessingException

        QgsSettings().setValue("sam2unext_geo/executable", unwritable)
        feedback = RecordingFeedback()
        try:
            processing.run(
                "sam2unext:predict",
                {"INPUT": str(scene), "PRESET": "sam2unext-test", "OUTPUT_FOLDER": str(read_only)},
                feedback=feedback,
            )
            raise AssertionError("Processing accepted a read-only output folder")
        except QgsProcessingException as exc:
            said = feedback.lines + [str(exc)]
        assert sum(line.count("is not writable") for line in said) == 1, said
        assert any(expected in line for line in said), said
        assert not any("{'event'" in line or '{"event"' in line or "with -o" in line for line in said), said
        # the dialog refuses it before the run (os.access stands in for a read-only folder: tests run as root)
        layer = QgsRasterLayer(str(scene), "words")
        QgsProject.instance().addMapLayer(layer)
        dlg = PredictDialog(None, layer, check_on_open=False)
        dlg.preset_radio.setChecked(True)
        dlg.preset_combo.setCurrentText("sam2unext-test")
        dlg.out_widget.setFilePath(str(read_only))
        real_access = commands.os.access
        commands.os.access = lambda path, mode: not str(path).startswith(str(read_only)) and real_access(path, mode)
        try:
            dlg.options()
            raise AssertionError("the dialog accepted a read-only output folder")
        except ValueError as exc:
            refusal = str(exc)
        finally:
            commands.os.access = real_access
        assert refusal == f"“Output folder” {read_only} is not writable; choose another “Output folder”.", refusal
        assert dlg.out_widget.parent().layout().labelForField(dlg.out_widget).text() == "Output folder"
        dlg.close()
        QgsProject.instance().removeAllMapLayers()
        return (
            f"stages {stages}; rerun error: {again.error}; read-only folder: task says {refused.error!r}, "
            f"Processing says it once among {len(said)} lines, the dialog refuses it: {refusal!r}"
        )
    finally:
        QgsSettings().remove("sam2unext_geo/executable")
        unload_plugin()


def check_aoi_plugin():
    """Map extent → --bbox/--bbox-crs; selected features → a temporary --aoi GeoPackage, removed afterwards
    (dialog and Processing); the dialog warns about a raster without georeferencing."""
    from qgis.core import QgsFeature, QgsGeometry, QgsRectangle, QgsVectorLayer
    from qgis.gui import QgsMapCanvas

    iface = IfaceStandIn()
    plugin, _ = load_plugin(iface)
    try:
        from sam2unext_geo import aoi, commands
        from sam2unext_geo.dialog import PredictDialog

        scene = make_scene(TMP / "aoi_scene.tif")
        layer = QgsRasterLayer(str(scene), "aoi_scene")
        polys = QgsVectorLayer("Polygon?crs=EPSG:4326", "fields", "memory")
        feats = []
        for wkt in (
            "POLYGON((15.0 45.1, 15.001 45.1, 15.001 45.101, 15.0 45.101, 15.0 45.1))",
            "POLYGON((15.01 45.1, 15.011 45.1, 15.011 45.101, 15.01 45.101, 15.01 45.1))",
        ):
            f = QgsFeature()
            f.setGeometry(QgsGeometry.fromWkt(wkt))
            feats.append(f)
        ok, feats = polys.dataProvider().addFeatures(feats)
        assert ok
        QgsProject.instance().addMapLayers([layer, polys])
        canvas = QgsMapCanvas()
        canvas.setDestinationCrs(layer.crs())
        canvas.resize(400, 300)
        canvas.setExtent(QgsRectangle(500100, 4999300, 500500, 4999700))
        dlg = PredictDialog(None, layer, canvas, check_on_open=False)
        dlg.preset_radio.setChecked(True)
        dlg.preset_combo.setCurrentText("sam2unext-test")
        dlg.out_widget.setFilePath(str(TMP / "aoi_out"))
        assert not dlg.georef_label.isVisibleTo(dlg), dlg.georef_label.text()
        dlg.aoi_combo.setCurrentIndex(dlg.aoi_combo.findData("extent"))
        opts = dlg.options()
        minx, miny, maxx, maxy = opts.bbox
        ext = canvas.extent()
        assert (opts.bbox_crs, opts.aoi) == ("EPSG:32633", None), (opts.bbox_crs, opts.aoi)
        assert abs(minx - ext.xMinimum()) < 1e-6 and abs(maxy - ext.yMaximum()) < 1e-6, (opts.bbox, ext.toString())
        args = commands.predict_args("x", opts)
        assert args[args.index("--bbox-crs") + 1] == "EPSG:32633"
        dlg.aoi_combo.setCurrentIndex(dlg.aoi_combo.findData("selected"))
        dlg.aoi_layer_combo.setLayer(polys)
        try:
            dlg.options()
            raise AssertionError("no selection accepted")
        except ValueError as exc:
            assert "No features are selected" in str(exc), str(exc)
        polys.selectByIds([feats[1].id()])
        assert polys.selectedFeatureCount() == 1
        checked = dlg.options()  # validation only: no file yet
        assert checked.aoi is None and checked.bbox is None
        opts = dlg.options(export_aoi=True)
        written = QgsVectorLayer(opts.aoi, "written", "ogr")
        assert written.isValid() and written.featureCount() == 1 and written.crs().authid() == "EPSG:4326"
        got = next(written.getFeatures()).geometry().boundingBox()
        assert abs(got.xMinimum() - 15.01) < 1e-9, got.toString()
        del written
        # the dialog's run: the task removes the temporary file when it ends
        exe = fake_executable()
        task, _ = run_task(plugin, exe, opts, check_environment=False)
        assert task.error is None, task.error
        assert not os.path.exists(opts.aoi), "temporary AOI file left behind"
        # Processing: extent and selected polygons reach the command; the temporary file goes
        processing = init_processing()
        from qgis.core import QgsProcessingFeatureSourceDefinition

        log = TMP / "fake_args.jsonl"
        QgsSettings().setValue("sam2unext_geo/executable", fake_executable(args_log=log))
        processing.run(
            "sam2unext:predict",
            {
                "INPUT": str(scene),
                "PRESET": "sam2unext-test",
                "OVERWRITE": True,
                "AOI_EXTENT": "500100,500500,4999300,4999700 [EPSG:32633]",
                "OUTPUT_FOLDER": str(TMP / "aoi_proc"),
            },
        )
        processing.run(
            "sam2unext:predict",
            {
                "INPUT": str(scene),
                "PRESET": "sam2unext-test",
                "OVERWRITE": True,
                "AOI_POLYGONS": QgsProcessingFeatureSourceDefinition(polys.id(), True),
                "OUTPUT_FOLDER": str(TMP / "aoi_proc"),
            },
        )
        runs = [json.loads(line) for line in log.read_text().splitlines()]
        bbox_args = runs[0]["argv"]
        i = bbox_args.index("--bbox")
        assert [float(v) for v in bbox_args[i + 1 : i + 5]] == [500100, 4999300, 500500, 4999700], bbox_args
        assert bbox_args[bbox_args.index("--bbox-crs") + 1] == "EPSG:32633"
        assert runs[1]["aoi_features"] == 1, runs[1]  # only the selected polygon
        aoi_path = runs[1]["argv"][runs[1]["argv"].index("--aoi") + 1]
        assert not os.path.exists(aoi_path), "Processing left its temporary AOI file"
        # a raster without georeferencing: the dialog warns before running
        plain = TMP / "plain.tif"
        gdal.GetDriverByName("GTiff").Create(str(plain), 32, 32, 3, gdal.GDT_Byte).FlushCache()
        plain_layer = QgsRasterLayer(str(plain), "plain")
        QgsProject.instance().addMapLayer(plain_layer)
        dlg.layer_combo.setLayer(plain_layer)
        assert dlg.georef_label.isVisibleTo(dlg) and "not georeferenced" in dlg.georef_label.text()
        dlg.close()
        QgsProject.instance().removeAllMapLayers()
        aoi.remove_file(None)
        return (
            "extent → --bbox ... --bbox-crs EPSG:32633; 1 selected of 2 polygons → temporary --aoi GeoPackage "
            "(EPSG:4326) removed after the run (dialog task and Processing); non-georeferenced raster warned"
        )
    finally:
        QgsSettings().remove("sam2unext_geo/executable")
        unload_plugin()


def site_packages_of(python: str) -> list:
    """The site-packages folders an interpreter imports from."""
    out = subprocess.run(
        [python, "-c", "import sys, json; print(json.dumps(sys.path))"],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    return [p for p in json.loads(out.stdout) if p.endswith("site-packages") and os.path.isdir(p)]


def base_python_of(venv_python: str) -> str:
    """The interpreter a virtualenv was made from (``home`` in pyvenv.cfg)."""
    cfg = Path(venv_python).parent.parent / "pyvenv.cfg"
    home = next(
        line.split("=", 1)[1].strip() for line in cfg.read_text().splitlines() if line.split("=")[0].strip() == "home"
    )
    for name in ("python3", "python"):
        if (Path(home) / name).exists():
            return str(Path(home) / name)
    raise Skip(f"no python in {home}")


def closed_port_url() -> str:
    """``http://127.0.0.1:<port>/`` where nothing listens: an index that cannot be reached."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def stand_in_wheel(folder: Path, name: str, version: str) -> Path:
    """A wheel with only its metadata: installing it records ``name`` at ``version`` and adds no module."""
    import base64
    import hashlib
    import zipfile

    dist = f"{name}-{version}.dist-info"
    files = {
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join(record + [f"{dist}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


def check_installer(screenshot: Optional[str] = None):
    """Install in real QGIS with PyTorch's index unreachable and a torchvision that does not match
    torch: the install falls back to "PyPI", its check fails naming the error and offering Repair;
    Repair reinstalls the pair and the check's demo prediction runs; the plugin then points at it.

    Nothing is downloaded: the new environment reuses the packages of the project's environment
    (a .pth), behind a folder whose ``torchvision`` raises what a torchvision built for another
    torch raises. "PyPI" is a local folder (pip --no-index --find-links) holding the real
    torchvision wheel (pip download from this machine's index) and a stand-in torch wheel with only
    metadata (``import torch`` still finds the project's torch). pip, the fallback and the checks
    run for real.
    """
    exe = real_cli()
    if not WHEEL:
        raise Skip("no sam2unext-geo wheel given (--wheel)")
    from sam2unext_geo import environment, installer

    venv_python = str(Path(exe).parent / "python")
    pypi = TMP / "pypi"
    pypi.mkdir()
    got = subprocess.run(
        [venv_python, "-m", "pip", "download", "--no-deps", "-q", "-d", str(pypi), installer.torch_pins()[1]],
        capture_output=True,
        text=True,
        env=environment.subprocess_env(),
    )
    if got.returncode != 0:
        raise Skip(f"pip download {installer.torch_pins()[1]} failed: {got.stderr.strip()[-300:]}")
    stand_in_wheel(pypi, "torch", installer.TORCH_VERSION)
    broken = TMP / "broken_site"
    (broken / "torchvision").mkdir(parents=True)
    (broken / "torchvision" / "__init__.py").write_text(
        'raise RuntimeError("operator torchvision::nms does not exist")\n'
    )
    iface = IfaceStandIn()
    plugin, _ = load_plugin(iface)
    try:
        from sam2unext_geo.install_dialog import InstallDialog

        installed: list = []
        target = Path(QgsApplication.qgisSettingsDirPath()) / "sam2unext-geo" / "venv"
        dlg = InstallDialog(
            None,
            on_installed=installed.append,
            python=base_python_of(venv_python),
            wheel=Path(WHEEL),
            reuse_site_packages=[str(broken)] + site_packages_of(venv_python),
            pypi_options=["--no-index", "--find-links", str(pypi)],
            torch_index=closed_port_url(),
            detect=True,
        )
        dlg.show()
        assert wait_until(lambda: dlg.plan is not None or dlg.error, 60), "no plan"
        assert dlg.plan is not None, dlg.error
        assert dlg.plan.venv == target and not dlg.repair_button.isEnabled(), (dlg.plan.venv, target)
        t0 = time.monotonic()
        with GuiStallMeter() as meter:
            dlg.start_install()
            assert wait_until(lambda: dlg.task is None and (installed or dlg.error), 600), "install did not end"
            install_s = time.monotonic() - t0
            log = dlg.log.toPlainText()
            assert dlg.error and not installed, (dlg.error, log[-3000:])
            assert "did not answer within" in log and "using PyPI" in log, log[-3000:]
            assert "operator torchvision::nms does not exist" in dlg.error and "Click Repair" in dlg.error, dlg.error
            assert "Check torch, torchvision and a prediction" in log and dlg.status.text().startswith("Failed:")
            assert dlg.repair_button.isEnabled() and dlg.repair_button.isDefault()
            assert not QgsSettings().value("sam2unext_geo/executable"), "a broken environment was adopted"
            failure = dlg.error
            t1 = time.monotonic()
            dlg.start_repair()
            assert wait_until(lambda: dlg.task is None and (installed or dlg.error), 600), "repair did not end"
        repair_s = time.monotonic() - t1
        log = dlg.log.toPlainText()
        assert not dlg.error, dlg.error + "\n" + log[-3000:]
        assert "--force-reinstall" in log and log.count("did not answer within") == 2, log[-3000:]
        new_exe = installed[0]
        assert new_exe == str(target / "bin" / "sam2unext-geo") and os.access(new_exe, os.X_OK), new_exe
        assert QgsSettings().value("sam2unext_geo/executable") == new_exe
        line = dlg.env_line.text()
        assert f"torch {installer.TORCH_VERSION}" in line and "from PyPI" in line, line
        assert ("GPU found: " in line or "no GPU found" in line) and "demo prediction OK" in line, line
        assert dlg.progress.value() == 100 and dlg.result.prediction["valid_pixels"] > 0
        module = subprocess.run(
            [
                str(target / "bin" / "python"),
                "-c",
                "from importlib.util import find_spec as f; print(f('sam2unext').origin, f('torchvision').origin)",
            ],
            capture_output=True,
            text=True,
            env=environment.subprocess_env(),
            cwd=str(TMP),
        )
        found = module.stdout.split()
        assert len(found) == 2 and all(p.startswith(str(target)) for p in found), module.stdout + module.stderr
        # The checks import torch and predict in child processes (seconds of CPU each): on a loaded
        # 2-core machine the OS can starve the GUI thread for a while although nothing in QGIS waits
        # for them (check_background_check proves that at 200 ms with no CPU work): bounded loosely.
        assert meter.longest_ms < 1000, f"GUI blocked {meter.longest_ms:.0f} ms during the install and repair"
        diag = dlg.copy_diagnostics()
        assert new_exe in diag and "torchvision: " in diag, diag
        if screenshot:
            wait_until(lambda: False, 0.3)
            dlg.grab().save(screenshot)
        dlg.close()
        return (
            f"install with PyTorch's index unreachable fell back to PyPI in {install_s:.1f} s and failed its "
            f"check: {failure[:90]}…; Repair in {repair_s:.1f} s; environment line: {line}; "
            f"longest GUI stall {meter.longest_ms:.0f} ms"
        )
    finally:
        QgsSettings().remove("sam2unext_geo/executable")
        unload_plugin()


def init_processing():
    """Import and initialize QGIS's Processing framework (idempotent); returns the module."""
    if "/usr/share/qgis/python/plugins" not in sys.path:
        sys.path.append("/usr/share/qgis/python/plugins")
    import processing
    from processing.core.Processing import Processing

    Processing.initialize()
    return processing


def check_processing_model():
    """A modeler model chaining predict → vectorize runs in-process; cancelling a Processing run leaves
    nothing (fake command)."""
    from qgis.core import (
        QgsProcessingContext,
        QgsProcessingException,
        QgsProcessingFeedback,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelParameter,
        QgsProcessingParameterRasterLayer,
    )
    from qgis.core import QgsProcessingModelChildParameterSource as Src

    processing = init_processing()
    iface = IfaceStandIn()
    plugin, _ = load_plugin(iface)
    try:
        QgsSettings().setValue("sam2unext_geo/executable", fake_executable())
        scene = make_scene(TMP / "model_scene.tif")
        out, vec = TMP / "model_out", TMP / "model_vec" / "again.gpkg"
        vec.parent.mkdir()
        model = QgsProcessingModelAlgorithm("predict_then_vectorize", "tests")
        model.addModelParameter(
            QgsProcessingParameterRasterLayer("scene", "Scene"), QgsProcessingModelParameter("scene")
        )
        predict = QgsProcessingModelChildAlgorithm("sam2unext:predict")
        predict.setChildId("predict")
        predict.addParameterSources("INPUT", [Src.fromModelParameter("scene")])
        for name, value in (("PRESET", "sam2unext-test"), ("DEVICE", 1), ("OUTPUT_FOLDER", str(out))):
            predict.addParameterSources(name, [Src.fromStaticValue(value)])
        model.addChildAlgorithm(predict)
        vectorize = QgsProcessingModelChildAlgorithm("sam2unext:vectorize")
        vectorize.setChildId("vectorize")
        vectorize.addParameterSources("INPUT", [Src.fromChildOutput("predict", "PROBABILITY")])
        vectorize.addParameterSources("THRESHOLD", [Src.fromStaticValue(0.3)])
        vectorize.addParameterSources("OUTPUT", [Src.fromStaticValue(str(vec))])
        model.addChildAlgorithm(vectorize)
        ok, msg = model.checkParameterValues({"scene": str(scene)}, QgsProcessingContext())
        assert ok, msg
        processing.run(model, {"scene": str(scene)}, feedback=QgsProcessingFeedback())
        assert (out / "model_scene_prob.tif").is_file(), list(out.iterdir())
        assert vec.is_file(), "vectorize child did not write its output"

        class CancelOnProgress(QgsProcessingFeedback):
            def setProgress(self, value):  # noqa: N802 - QGIS API
                super().setProgress(value)
                if value > 0:
                    self.cancel()

        QgsSettings().setValue("sam2unext_geo/executable", fake_executable(delay=1.0))
        cancelled_out = TMP / "model_cancelled"
        t0 = time.monotonic()
        try:
            processing.run(
                "sam2unext:predict",
                {"INPUT": str(scene), "PRESET": "sam2unext-test", "OUTPUT_FOLDER": str(cancelled_out)},
                feedback=CancelOnProgress(),
            )
            raise AssertionError("a cancelled Processing run returned normally")
        except QgsProcessingException as exc:
            assert "Cancelled" in str(exc), str(exc)
        secs = time.monotonic() - t0
        assert not cancelled_out.exists(), list(cancelled_out.iterdir())
        return (
            "model predict → vectorize ran; probability and re-thresholded polygons written; "
            f"Processing cancel stopped predict in {secs:.1f} s with nothing left"
        )
    finally:
        QgsSettings().remove("sam2unext_geo/executable")
        unload_plugin()


def qgis_process_binary() -> str:
    """``qgis_process``; Debian 12's wrapper script passes --noversioncheck, which 3.22 rejects,
    so the real binary next to it is used when present."""
    exe = shutil.which("qgis_process")
    if exe is None:
        raise Skip("qgis_process not installed")
    binary = exe + ".bin"
    return binary if os.access(binary, os.X_OK) else exe


def without_venvs(path: str) -> list:
    """PATH entries that are not a virtual environment's bin/ folder."""
    return [p for p in path.split(os.pathsep) if p and not (Path(p).parent / "pyvenv.cfg").exists()]


def check_qgis_process():
    """``qgis_process run sam2unext:predict`` (plugin found through QGIS_PLUGINPATH) writes the outputs."""
    exe = real_cli()
    qp = qgis_process_binary()
    home = TMP / "qp_home"
    # Only the command goes on PATH: a venv's bin/ on PATH (its python + pyvenv.cfg) would make
    # QGIS's embedded Python adopt that venv's prefix and fail to import qgis.
    bindir = TMP / "qp_bin"
    bindir.mkdir()
    (bindir / "sam2unext-geo").symlink_to(exe)
    env = dict(
        os.environ,
        QGIS_PLUGINPATH=str(PLUGIN_DIR),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        QT_QPA_PLATFORM="offscreen",
        PATH=os.pathsep.join([str(bindir)] + without_venvs(os.environ.get("PATH", ""))),
    )
    enable = subprocess.run([qp, "plugins", "enable", PLUGIN], env=env, capture_output=True, text=True, timeout=120)
    assert enable.returncode == 0, enable.stdout + enable.stderr
    scene = make_scene(TMP / "qp_scene.tif", size=80)
    out = TMP / "qp_out"
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            qp,
            "--json",
            "run",
            "sam2unext:predict",
            "--",
            f"INPUT={scene}",
            "PRESET=sam2unext-test",
            "DEVICE=1",
            "BATCH_SIZE=2",
            "VECTORIZE=true",
            f"OUTPUT_FOLDER={out}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    secs = time.monotonic() - t0
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    results = json.loads(proc.stdout[proc.stdout.index("{") :])["results"]
    prob, vec = results["PROBABILITY"], results["POLYGONS"]
    assert prob and Path(prob).is_file() and Path(prob).parent == out, results
    assert vec and Path(vec).is_file(), results
    ds = gdal.Open(prob)
    srs = osr.SpatialReference(wkt=ds.GetProjection())
    assert srs.GetAuthorityCode(None) == "32633", ds.GetProjection()[:80]
    assert (ds.RasterXSize, ds.RasterYSize) == (80, 80)
    ds = None
    return f"qgis_process run sam2unext:predict → {Path(prob).name}, {Path(vec).name} in {secs:.1f} s"


DESKTOP_CODE = """
import json, os, traceback
import qgis.utils
from qgis.utils import iface
from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QToolBar
res = {}
try:
    qgis.utils.updateAvailablePlugins()
    res["available"] = "sam2unext_geo" in qgis.utils.available_plugins
    res["started"] = qgis.utils.loadPlugin("sam2unext_geo") and qgis.utils.startPlugin("sam2unext_geo")
    bars = [b for b in iface.mainWindow().findChildren(QToolBar) if b.objectName() == "sam2unext_geo_toolbar"]
    res["toolbar_actions"] = [a.objectName() for b in bars for a in b.actions()]
    res["raster_menu"] = [a.text() for a in iface.rasterMenu().actions()]
    from sam2unext_geo.dialog import PredictDialog
    dlg = PredictDialog(iface.mainWindow(), iface.activeLayer())
    res["dialog"] = dlg.windowTitle()
    dlg.deleteLater()
    res["provider"] = QgsApplication.processingRegistry().providerById("sam2unext") is not None
    res["unloaded"] = qgis.utils.unloadPlugin("sam2unext_geo")
    res["provider_after"] = QgsApplication.processingRegistry().providerById("sam2unext") is not None
    res["toolbar_after"] = [b.objectName() for b in iface.mainWindow().findChildren(QToolBar)
                            if b.objectName() == "sam2unext_geo_toolbar" and b.isVisible()]
except Exception:
    res["error"] = traceback.format_exc()
with open(os.environ["SAM2UNEXT_RESULT"], "w") as f:
    json.dump(res, f)
os._exit(0)
"""


def check_desktop_app():
    """The real QGIS desktop (Xvfb, real QgisInterface) loads the plugin and unloads it cleanly."""
    xvfb, qgis_bin = shutil.which("xvfb-run"), shutil.which("qgis")
    if not xvfb or not qgis_bin:
        raise Skip("xvfb-run or the qgis desktop binary is not installed")
    code, result = TMP / "desktop_code.py", TMP / "desktop_result.json"
    code.write_text(DESKTOP_CODE)
    home = TMP / "desktop_home"
    env = dict(
        os.environ,
        QGIS_PLUGINPATH=str(PLUGIN_DIR),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        SAM2UNEXT_RESULT=str(result),
    )
    env.pop("QT_QPA_PLATFORM", None)
    proc = subprocess.run(
        [xvfb, "-a", qgis_bin, "--nologo", "--noversioncheck", "--code", str(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.exists(), (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    res = json.loads(result.read_text())
    assert "error" not in res, res["error"]
    assert res["available"] and res["started"] and res["provider"], res
    assert res["toolbar_actions"] == ["sam2unext_geo_predict"], res
    assert any("SAM2-UNeXT" in t for t in res["raster_menu"]), res["raster_menu"]
    assert res["unloaded"] and not res["provider_after"] and not res["toolbar_after"], res
    return f"QGIS desktop: toolbar {res['toolbar_actions']}, raster menu entry, dialog, provider; unloaded"


CHECKS = [
    check_load_unload,
    check_zip_install,
    check_desktop_app,
    check_dialog_options,
    check_missing_environment,
    check_task_adds_layers,
    check_cancel_leaves_nothing,
    check_cancel_keeps_other_runs,
    check_background_check,
    check_stage_and_error_words,
    check_aoi_plugin,
    check_installer,
    check_processing_model,
    check_qgis_process,
]


def main(argv=None) -> int:
    global REAL_CLI
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True)
    parser.add_argument("--real-cli", default=os.environ.get("SAM2UNEXT_GEO_EXE"))
    parser.add_argument(
        "--wheel",
        default=os.environ.get("SAM2UNEXT_GEO_WHEEL"),
        help="the sam2unext-geo wheel for the zip and installer checks",
    )
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args(argv)
    global WHEEL
    REAL_CLI, WHEEL = args.real_cli, args.wheel
    app = QgsApplication([], True)
    app.initQgis()
    results = {}
    for check in CHECKS:
        name = check.__name__[len("check_") :]
        if args.only and name not in args.only:
            continue
        QgsProject.instance().clear()
        t0 = time.monotonic()
        try:
            detail, status = check(), "passed"
        except Skip as exc:
            detail, status = str(exc), "skipped"
        except Exception:  # noqa: BLE001 - report every failure, keep going
            detail, status = traceback.format_exc(), "failed"
        results[name] = {"status": status, "detail": str(detail), "seconds": round(time.monotonic() - t0, 2)}
        print(f"{status.upper():8s} {name} ({results[name]['seconds']} s): {str(detail).strip()[-1500:]}", flush=True)
    Path(args.results).write_text(json.dumps(results, indent=2))
    shutil.rmtree(TMP, ignore_errors=True)
    app.exitQgis()
    return 0 if all(r["status"] != "failed" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
