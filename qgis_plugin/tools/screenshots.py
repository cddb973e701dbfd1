"""Regenerate ``docs/qgis_dialog.png`` and ``docs/qgis_result.png`` inside real QGIS (under Xvfb).

    xvfb-run -a /usr/bin/python3 qgis_plugin/tools/screenshots.py \
        --cli .venv/bin/sam2unext-geo [--weights demo|sam2unext-test|PATH] [--size 768]

A demo scene is drawn with ``sam2unext.geo.demo`` in the command's own environment (the Python
next to ``--cli``), the plugin's dialog is rendered, then the plugin's background task runs the
command and the result layers are shown in a layer tree next to a map canvas.
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
    code = ("import sys; from sam2unext.geo.demo import write_demo_scene; "
            f"print(write_demo_scene({str(folder)!r}, size={size}, seed={seed})[0])")
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
    dlg.check_environment()
    dlg.show()
    settle()
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
    splitter = QSplitter(Qt.Horizontal)
    view = QgsLayerTreeView()
    model = QgsLayerTreeModel(project.layerTreeRoot())
    view.setModel(model)
    view.expandAll()
    canvas = QgsMapCanvas()
    canvas.setCanvasColor(QColor("white"))
    bridge = QgsLayerTreeMapCanvasBridge(project.layerTreeRoot(), canvas)  # noqa: F841 - keeps layers in sync
    canvas.setDestinationCrs(scene_layer.crs())
    splitter.addWidget(view)
    splitter.addWidget(canvas)
    splitter.setSizes([260, 760])
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
    grab_dialog(scene_layer, args.cli, args.weights, out_dir, args.docs / "qgis_dialog.png")

    is_file = os.path.isfile(args.weights)
    options = commands.PredictOptions(
        scene=str(scene), out_dir=str(out_dir),
        preset=None if (is_file or args.weights == "demo") else args.weights,
        checkpoint=args.weights if (is_file or args.weights == "demo") else None,
        overlap=0.25, batch_size=4, device="auto", threshold=0.5, vector=True, overwrite=True)
    run_task(args.cli, options)
    grab_result(scene_layer, args.docs / "qgis_result.png")
    print(f"wrote {args.docs / 'qgis_dialog.png'} and {args.docs / 'qgis_result.png'}")
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
