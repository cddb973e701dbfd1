"""Regenerate the plugin's screenshots in ``docs/`` inside real QGIS (under Xvfb).

    XDG_DATA_HOME=$(mktemp -d) xvfb-run -a /usr/bin/python3 qgis_plugin/tools/screenshots.py \
        --cli .venv/bin/sam2unext-geo [--weights demo|sam2unext-test|PATH] [--size 768] \
        [--wheel dist/sam2unext_geo-0.1.0-py3-none-any.whl]

A demo scene is drawn with ``sam2unext.geo.demo.demo_scene`` in the command's own environment (the Python
next to ``--cli``). ``qgis_dialog.png``: the dialog after its background Check;
``qgis_aoi.png``: the dialog with the area of interest set to selected polygons;
``qgis_result.png``: the plugin's background task ran the command and the result group is shown
in a layer tree next to a map canvas; ``qgis_installer.png`` (with ``--wheel``): the Install
dialog after installing that wheel into a fresh environment in the (temporary) QGIS profile,
reusing the packages of ``--cli``'s environment with ``--no-index`` so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))

from qgis.core import QgsApplication, QgsProject, QgsRasterLayer  # noqa: E402
from qgis.PyQt.QtCore import QCoreApplication, QSize, Qt  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402
from qgis.PyQt.QtWidgets import QSplitter  # noqa: E402


def make_demo_scene(cli: str, folder: Path, size: int, seed: int) -> Path:
    """Draw a demo scene with the command's own Python; returns the GeoTIFF path."""
    python = Path(cli).parent / ("python.exe" if os.name == "nt" else "python")
    code = (
        "import sys; from sam2unext.geo.demo.demo_scene import write_demo_scene; "
        f"print(write_demo_scene({str(folder)!r}, size={size}, seed={seed})[0])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def settle(seconds: float = 0.3) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QCoreApplication.processEvents()
        time.sleep(0.02)


def grab_dialog(layer: QgsRasterLayer, cli: str, weights: str, out_dir: Path, path: Path) -> None:
    from sam2unext_geo.dialog import PredictDialog

    dlg = PredictDialog(None, layer)
    if weights in ("demo",) or not os.path.isfile(weights):
        dlg.preset_radio.setChecked(True)
        dlg.preset_combo.setCurrentText(weights)
    else:
        dlg.ckpt_radio.setChecked(True)
        dlg.ckpt_widget.setFilePath(weights)
    dlg.tile_spin.setValue(0)
    dlg.overlap_spin.setValue(0.25)
    dlg.batch_spin.setValue(4)
    dlg.threshold_spin.setValue(0.5)
    dlg.bands_edit.setText("")
    dlg.out_widget.setFilePath(str(out_dir))
    dlg.vector_check.setChecked(True)
    dlg.exe_widget.setFilePath(cli)
    dlg.check_environment(use_cache=True)
    deadline = time.monotonic() + 300
    while not dlg.check_finished and time.monotonic() < deadline:
        settle(0.1)
    dlg.show()
    settle()
    dlg.grab().save(str(path))
    return dlg


def grab_aoi(dialog, scene_layer: QgsRasterLayer, path: Path) -> None:
    """The dialog with the area of interest set to one selected polygon of a 'fields' layer."""
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    ext = scene_layer.extent()
    w, h = ext.width(), ext.height()
    fields = QgsVectorLayer(f"Polygon?crs={scene_layer.crs().authid()}", "fields", "memory")
    feats = []
    for fx, fy in ((0.1, 0.1), (0.5, 0.45)):
        x0, y0 = ext.xMinimum() + fx * w, ext.yMinimum() + fy * h
        feat = QgsFeature()
        feat.setGeometry(
            QgsGeometry.fromWkt(
                f"POLYGON(({x0} {y0},{x0 + 0.4 * w} {y0},{x0 + 0.4 * w} {y0 + 0.4 * h},{x0} {y0 + 0.4 * h},{x0} {y0}))"
            )
        )
        feats.append(feat)
    ok, feats = fields.dataProvider().addFeatures(feats)
    QgsProject.instance().addMapLayer(fields)
    fields.selectByIds([feats[1].id()])
    dialog.aoi_combo.setCurrentIndex(dialog.aoi_combo.findData("selected"))
    dialog.aoi_layer_combo.setLayer(fields)
    settle()
    dialog.grab().save(str(path))
    dialog.close()
    QgsProject.instance().removeMapLayer(fields.id())


def grab_installer(cli: str, wheel: Path, path: Path) -> None:
    """Install ``wheel`` with the Install dialog (reusing ``cli``'s packages, offline) and grab it."""
    import json

    from sam2unext_geo.install_dialog import InstallDialog

    python = Path(cli).parent / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    out = subprocess.run(
        [str(python), "-c", "import sys, json; print(json.dumps(sys.path))"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    site = [p for p in json.loads(out.stdout) if p.endswith("site-packages") and os.path.isdir(p)]
    home = next(
        line.split("=", 1)[1].strip()
        for line in (python.parent.parent / "pyvenv.cfg").read_text().splitlines()
        if line.split("=")[0].strip() == "home"
    )
    dlg = InstallDialog(
        None, python=str(Path(home) / "python3"), wheel=wheel, reuse_site_packages=site, pypi_options=["--no-index"]
    )
    dlg.resize(760, 560)
    dlg.show()
    deadline = time.monotonic() + 60
    while dlg.plan is None and not dlg.error and time.monotonic() < deadline:
        settle(0.1)
    dlg.start_install()
    deadline = time.monotonic() + 600
    while dlg.task is not None and time.monotonic() < deadline:
        settle(0.1)
    settle()
    if dlg.error:
        raise SystemExit(f"install failed: {dlg.error}")
    dlg.grab().save(str(path))
    dlg.close()


def run_task(cli: str, options) -> tuple:
    from sam2unext_geo.task import PredictTask

    done: list = []
    task = PredictTask(cli, options, on_finished=done.append)
    QgsApplication.taskManager().addTask(task)
    deadline = time.monotonic() + 900
    while not done and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.05)
    if not done or task.error:
        raise SystemExit(f"prediction failed: {task.error or 'timeout'}")
    return task.group, task.layers


def grab_result(scene_layer: QgsRasterLayer, path: Path) -> None:
    from qgis.core import QgsLayerTreeModel
    from qgis.gui import QgsLayerTreeMapCanvasBridge, QgsLayerTreeView, QgsMapCanvas

    project = QgsProject.instance()
    splitter = QSplitter(Qt.Orientation.Horizontal)
    view = QgsLayerTreeView()
    model = QgsLayerTreeModel(project.layerTreeRoot())
    view.setModel(model)  # groups keep their own expanded state (the result group is expanded)
    canvas = QgsMapCanvas()
    canvas.setCanvasColor(QColor("white"))
    bridge = QgsLayerTreeMapCanvasBridge(project.layerTreeRoot(), canvas)  # noqa: F841 - keeps layers in sync
    canvas.setDestinationCrs(scene_layer.crs())
    splitter.addWidget(view)
    splitter.addWidget(canvas)
    splitter.setSizes([330, 690])
    splitter.resize(QSize(1020, 720))
    splitter.show()
    settle(0.5)
    canvas.setExtent(scene_layer.extent())
    canvas.refresh()
    canvas.waitWhileRendering()
    settle(1.0)
    canvas.waitWhileRendering()
    splitter.grab().save(str(path))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cli", required=True, help="path of sam2unext-geo")
    parser.add_argument("--weights", default="demo", help="'demo', a preset name, or a checkpoint file")
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scene", type=Path, help="use this GeoTIFF instead of drawing a demo scene")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    parser.add_argument("--wheel", type=Path, help="also install this wheel with the Install dialog and grab it")
    args = parser.parse_args(argv)

    app = QgsApplication([], True)
    app.initQgis()
    from sam2unext_geo import commands

    work = Path(tempfile.mkdtemp(prefix="sam2unext_shots_"))
    scene = args.scene or make_demo_scene(args.cli, work, args.size, args.seed)
    scene_layer = QgsRasterLayer(str(scene), scene.stem)
    QgsProject.instance().addMapLayer(scene_layer)
    args.docs.mkdir(parents=True, exist_ok=True)
    out_dir = work / "out"
    dialog = grab_dialog(scene_layer, args.cli, args.weights, out_dir, args.docs / "qgis_dialog.png")
    grab_aoi(dialog, scene_layer, args.docs / "qgis_aoi.png")

    is_file = os.path.isfile(args.weights)
    options = commands.PredictOptions(
        scene=str(scene),
        out_dir=str(out_dir),
        preset=None if (is_file or args.weights == "demo") else args.weights,
        checkpoint=args.weights if (is_file or args.weights == "demo") else None,
        overlap=0.25,
        batch_size=4,
        device="auto",
        threshold=0.5,
        vector=True,
        overwrite=True,
    )
    run_task(args.cli, options)
    grab_result(scene_layer, args.docs / "qgis_result.png")
    written = ["qgis_dialog.png", "qgis_aoi.png", "qgis_result.png"]
    if args.wheel:
        grab_installer(args.cli, args.wheel, args.docs / "qgis_installer.png")
        written.append("qgis_installer.png")
    print("wrote " + ", ".join(str(args.docs / n) for n in written))
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
