"""The run dialog: raster layer, weights, tiling, device, bands, threshold, output folder."""

from __future__ import annotations

import os
from typing import Optional

from qgis.core import QgsMapLayerProxyModel, QgsRasterLayer
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import (QApplication, QCheckBox, QComboBox, QDialog, QDialogButtonBox,
                                 QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                                 QLineEdit, QMessageBox, QPushButton, QRadioButton, QSpinBox,
                                 QVBoxLayout)

from . import commands, environment, settings

PRESETS = ("demo", "sam2unext-large", "sam2unext-base_plus", "sam2unext-small", "sam2unext-tiny",
           "sam2unet-large", "sam2unet-base_plus", "sam2unet-small", "sam2unet-tiny",
           "sam2unext-test", "sam2unet-test")
DEVICES = (("Auto (GPU when available)", "auto"), ("CPU", "cpu"), ("GPU (CUDA)", "cuda"))
ICON = os.path.join(os.path.dirname(__file__), "icon.png")


def local_raster_path(layer: Optional[QgsRasterLayer]) -> Optional[str]:
    """The file behind a GDAL raster layer, or ``None`` (web/virtual layers are not supported)."""
    if layer is None or layer.providerType() != "gdal":
        return None
    path = layer.source().split("|")[0]
    return path if os.path.isfile(path) else None


class PredictDialog(QDialog):
    """Collects :class:`commands.PredictOptions`; values are remembered in QgsSettings."""

    def __init__(self, parent=None, active_layer=None):
        super().__init__(parent)
        self.setWindowTitle("SAM2-UNeXT Geo — segment a raster")
        self.setWindowIcon(QIcon(ICON))
        self.setMinimumWidth(520)
        outer = QVBoxLayout(self)

        form = QFormLayout()
        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        if isinstance(active_layer, QgsRasterLayer):
            self.layer_combo.setLayer(active_layer)
        form.addRow("Input raster", self.layer_combo)

        weights = QGroupBox("Weights")
        wl = QFormLayout(weights)
        self.preset_radio = QRadioButton("Preset")
        self.preset_combo = QComboBox()
        self.preset_combo.setEditable(True)
        self.preset_combo.addItems(PRESETS)
        self.preset_combo.setToolTip("'demo' = bundled demo weights; *-test = tiny random weights for testing.")
        self.ckpt_radio = QRadioButton("Checkpoint")
        self.ckpt_widget = QgsFileWidget()
        self.ckpt_widget.setFilter("Checkpoints (*.safetensors *.pth *.pt);;All files (*)")
        self.ckpt_widget.setToolTip("Our .safetensors files carry their preset; an upstream SAM2-UNeXT/SAM2-UNet "
                                    ".pth file is read with the preset chosen above.")
        wl.addRow(self.preset_radio, self.preset_combo)
        wl.addRow(self.ckpt_radio, self.ckpt_widget)
        self.preset_radio.toggled.connect(self._sync_weights)

        tiling = QGroupBox("Tiling and inference")
        tl = QFormLayout(tiling)
        self.tile_spin = QSpinBox()
        self.tile_spin.setRange(0, 8192)
        self.tile_spin.setSingleStep(64)
        self.tile_spin.setSpecialValueText("Model input size")
        self.tile_spin.setSuffix(" px")
        self.overlap_spin = QDoubleSpinBox()
        self.overlap_spin.setRange(0.0, 0.9)
        self.overlap_spin.setSingleStep(0.05)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 256)
        self.device_combo = QComboBox()
        for label, value in DEVICES:
            self.device_combo.addItem(label, value)
        self.bands_edit = QLineEdit()
        self.bands_edit.setPlaceholderText("default bands (e.g. 3,2,1; 4,3,2,8 for a 4-band model)")
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.01, 0.99)
        self.threshold_spin.setSingleStep(0.05)
        tl.addRow("Tile size", self.tile_spin)
        tl.addRow("Overlap", self.overlap_spin)
        tl.addRow("Batch size", self.batch_spin)
        tl.addRow("Device", self.device_combo)
        tl.addRow("Bands", self.bands_edit)
        tl.addRow("Threshold", self.threshold_spin)

        output = QGroupBox("Output")
        ol = QFormLayout(output)
        self.out_widget = QgsFileWidget()
        self.out_widget.setStorageMode(QgsFileWidget.GetDirectory)
        self.vector_check = QCheckBox("Vectorize to polygons (GeoPackage)")
        self.overwrite_check = QCheckBox("Overwrite existing outputs")
        ol.addRow("Folder", self.out_widget)
        ol.addRow("", self.vector_check)
        ol.addRow("", self.overwrite_check)

        env = QGroupBox("Environment (sam2unext-geo command)")
        el = QVBoxLayout(env)
        row = QHBoxLayout()
        self.exe_widget = QgsFileWidget()
        self.exe_widget.lineEdit().setPlaceholderText("found on PATH")
        self.check_button = QPushButton("Check")
        self.check_button.clicked.connect(self.check_environment)
        row.addWidget(self.exe_widget)
        row.addWidget(self.check_button)
        self.env_label = QLabel("")
        self.env_label.setWordWrap(True)
        self.env_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        el.addLayout(row)
        el.addWidget(self.env_label)

        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Run")
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)

        outer.addLayout(form)
        for box in (weights, tiling, output, env):
            outer.addWidget(box)
        outer.addWidget(self.buttons)
        self.load_settings()

    # settings -------------------------------------------------------------------------------
    def load_settings(self) -> None:
        """Fill the widgets from QgsSettings."""
        mode = settings.get("weights_mode")
        (self.ckpt_radio if mode == "checkpoint" else self.preset_radio).setChecked(True)
        self.preset_combo.setCurrentText(settings.get("preset"))
        self.ckpt_widget.setFilePath(settings.get("checkpoint"))
        self.tile_spin.setValue(settings.get("tile_size"))
        self.overlap_spin.setValue(settings.get("overlap"))
        self.batch_spin.setValue(settings.get("batch_size"))
        idx = self.device_combo.findData(settings.get("device"))
        self.device_combo.setCurrentIndex(max(idx, 0))
        self.bands_edit.setText(settings.get("bands"))
        self.threshold_spin.setValue(settings.get("threshold"))
        self.out_widget.setFilePath(settings.get("out_dir") or os.path.join(os.path.expanduser("~"),
                                                                            "sam2unext-geo"))
        self.vector_check.setChecked(settings.get("vector"))
        self.overwrite_check.setChecked(settings.get("overwrite"))
        self.exe_widget.setFilePath(settings.executable_setting())
        self._sync_weights()

    def save_settings(self) -> None:
        """Remember the current values for the next session."""
        settings.set("weights_mode", "preset" if self.preset_radio.isChecked() else "checkpoint")
        settings.set("preset", self.preset_combo.currentText().strip())
        settings.set("checkpoint", self.ckpt_widget.filePath())
        settings.set("tile_size", self.tile_spin.value())
        settings.set("overlap", self.overlap_spin.value())
        settings.set("batch_size", self.batch_spin.value())
        settings.set("device", self.device_combo.currentData())
        settings.set("bands", self.bands_edit.text().strip())
        settings.set("threshold", self.threshold_spin.value())
        settings.set("out_dir", self.out_widget.filePath())
        settings.set("vector", self.vector_check.isChecked())
        settings.set("overwrite", self.overwrite_check.isChecked())
        settings.set("executable", self.exe_widget.filePath().strip())

    def _sync_weights(self) -> None:
        self.ckpt_widget.setEnabled(not self.preset_radio.isChecked())

    # values ---------------------------------------------------------------------------------
    def options(self) -> commands.PredictOptions:
        """The run options from the widgets.

        Raises:
            ValueError: no usable input raster, weights, bands or output folder (one-line message).
        """
        layer = self.layer_combo.currentLayer()
        scene = local_raster_path(layer)
        if scene is None:
            raise ValueError("Choose a raster layer backed by a local file (GeoTIFF or any GDAL raster).")
        preset, checkpoint = None, None
        if self.preset_radio.isChecked():
            preset = self.preset_combo.currentText().strip()
            if not preset:
                raise ValueError("Choose a preset, or a checkpoint file.")
            if preset == "demo":
                preset, checkpoint = None, "demo"
        else:
            checkpoint = self.ckpt_widget.filePath().strip()
            if not os.path.isfile(checkpoint):
                raise ValueError(f"Checkpoint file {checkpoint!r} does not exist; choose a .safetensors or .pth file.")
            chosen = self.preset_combo.currentText().strip()
            if checkpoint.lower().endswith((".pth", ".pt")) and chosen and chosen != "demo":
                preset = chosen  # upstream state_dicts do not say which architecture they are
        bands = self.bands_edit.text().strip()
        out_dir = self.out_widget.filePath().strip()
        if not out_dir:
            raise ValueError("Choose an output folder.")
        return commands.PredictOptions(
            scene=scene, out_dir=out_dir, preset=preset, checkpoint=checkpoint,
            tile_size=self.tile_spin.value() or None, overlap=self.overlap_spin.value(),
            batch_size=self.batch_spin.value(), device=self.device_combo.currentData(),
            bands=commands.normalize_bands(bands) if bands else None,
            threshold=self.threshold_spin.value(), vector=self.vector_check.isChecked(),
            overwrite=self.overwrite_check.isChecked())

    def executable(self) -> str:
        """The ``sam2unext-geo`` path (configured or on PATH). Raises EnvironmentProblem."""
        return environment.find_executable(self.exe_widget.filePath().strip() or None)

    def check_environment(self) -> bool:
        """Run ``--version`` and ``models``; show the result under the executable field."""
        QApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            exe = self.executable()
            info = environment.check_environment(exe)
            self.add_presets(environment.preset_names(info["models"]))
            gpu = environment.gpu_available(exe)
            self.set_gpu_available(gpu)
            gpu_text = {True: "GPU available", False: "no GPU: CPU only", None: "GPU unknown"}[gpu]
            self.env_label.setText(f"OK: {info['executable']} — {info['version']} — {gpu_text}")
            return True
        except environment.EnvironmentProblem as exc:
            self.env_label.setText(str(exc))
            return False
        finally:
            QApplication.restoreOverrideCursor()

    def add_presets(self, names: list) -> None:
        """Offer the presets the installed command knows (keeps the current choice)."""
        current = self.preset_combo.currentText()
        for name in names:
            if self.preset_combo.findText(name) < 0:
                self.preset_combo.addItem(name)
        self.preset_combo.setCurrentText(current)

    def set_gpu_available(self, available) -> None:
        """Enable the GPU device entry unless the environment has no CUDA GPU (``False``)."""
        item = self.device_combo.model().item(self.device_combo.findData("cuda"))
        item.setEnabled(available is not False)
        if available is False and self.device_combo.currentData() == "cuda":
            self.device_combo.setCurrentIndex(self.device_combo.findData("auto"))

    def _accept(self) -> None:
        try:
            self.options()
            self.executable()
        except (ValueError, environment.EnvironmentProblem) as exc:
            QMessageBox.warning(self, "SAM2-UNeXT Geo", str(exc))
            return
        self.save_settings()
        self.accept()

