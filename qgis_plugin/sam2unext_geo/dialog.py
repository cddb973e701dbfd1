"""The run dialog: raster layer, area of interest, weights, tiling, device, bands, threshold, output
folder, and the environment (checked in the background; Install… and Copy diagnostics)."""

from __future__ import annotations

import os
from typing import Optional

from qgis.core import QgsMapLayerProxyModel, QgsRasterLayer
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
)

from . import aoi, background, commands, diagnostics, environment, settings

PRESETS = (
    "demo",
    "sam2unext-large",
    "sam2unext-base_plus",
    "sam2unext-small",
    "sam2unext-tiny",
    "sam2unet-large",
    "sam2unet-base_plus",
    "sam2unet-small",
    "sam2unet-tiny",
    "sam2unext-test",
    "sam2unet-test",
)
DEVICES = (("Auto (GPU when available)", "auto"), ("CPU", "cpu"), ("GPU (CUDA)", "cuda"))
ICON = os.path.join(os.path.dirname(__file__), "icon.png")


AOI_MODES = (("Whole scene", "scene"), ("Current map extent", "extent"), ("Selected features of", "selected"))


def georeferencing_problem(layer: Optional[QgsRasterLayer]) -> Optional[str]:
    """A warning when the raster has no geotransform or no CRS (outputs would not line up), else None."""
    path = local_raster_path(layer)
    if path is None:
        return None
    try:
        from osgeo import gdal

        ds = gdal.Open(path)
        transform = ds.GetGeoTransform(can_return_null=True) if ds is not None else None
        has_gcps = ds is not None and ds.GetGCPCount() > 0
        ds = None
    except Exception:  # noqa: BLE001 - cannot tell: no warning
        return None
    if transform is None and not has_gcps:
        return (
            f"{layer.name()} is not georeferenced: the probability raster and polygons will be in pixel "
            "coordinates and will not line up with other layers. Georeference it first "
            "(Raster ▸ Georeferencer) if it should."
        )
    if not layer.crs().isValid():
        return (
            f"{layer.name()} has no CRS: the outputs will have none either. Set it in the layer's "
            "Properties ▸ Source first."
        )
    return None


def local_raster_path(layer: Optional[QgsRasterLayer]) -> Optional[str]:
    """The file behind a GDAL raster layer, or ``None`` (web/virtual layers are not supported)."""
    if layer is None or layer.providerType() != "gdal":
        return None
    path = layer.source().split("|")[0]
    return path if os.path.isfile(path) else None


class PredictDialog(QDialog):
    """Collects :class:`commands.PredictOptions`; values are remembered in QgsSettings."""

    def __init__(self, parent=None, active_layer=None, canvas=None, *, check_on_open: bool = True):
        super().__init__(parent)
        self.setWindowTitle("SAM2-UNeXT Geo — segment a raster")
        self.setWindowIcon(QIcon(ICON))
        self.canvas = canvas
        self.check_task = None
        self.check_finished = True
        self.installer = None
        self.last_probe: Optional[dict] = None
        self.env_problem: Optional[str] = None
        outer = QVBoxLayout(self)
        outer.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)  # grow, never squash rows

        form = QFormLayout()
        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        if isinstance(active_layer, QgsRasterLayer):
            self.layer_combo.setLayer(active_layer)
        form.addRow("Input raster", self.layer_combo)
        self.georef_label = QLabel("")
        self.georef_label.setWordWrap(True)
        self.georef_label.setStyleSheet("color: #9a6700;")
        form.addRow("", self.georef_label)
        self.layer_combo.layerChanged.connect(self._sync_georeferencing)

        area = QGroupBox("Area of interest")
        al = QFormLayout(area)
        self.aoi_combo = QComboBox()
        for label, value in AOI_MODES:
            self.aoi_combo.addItem(label, value)
        self.aoi_layer_combo = QgsMapLayerComboBox()
        self.aoi_layer_combo.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.aoi_layer_combo.setAllowEmptyLayer(True)
        self.aoi_layer_combo.setToolTip("Only the selected features of this layer are used (any CRS).")
        aoi_row = QHBoxLayout()
        aoi_row.addWidget(self.aoi_combo)
        aoi_row.addWidget(self.aoi_layer_combo, 1)
        al.addRow("Segment", aoi_row)
        self.aoi_combo.currentIndexChanged.connect(self._sync_aoi)

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
        self.ckpt_widget.setToolTip(
            "Our .safetensors files carry their preset; an upstream SAM2-UNeXT/SAM2-UNet "
            ".pth file is read with the preset chosen above."
        )
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
        self.tta_combo = QComboBox()
        for value, label in commands.TTA_MODES.items():
            self.tta_combo.addItem(label, value)
        self.tta_combo.setToolTip(
            "Average each tile's prediction over its mirror image (flip) or its 8 rotations and "
            "mirror images (rotations and flips): smoother edges, 2x or 8x the inference time."
        )
        tl.addRow("Tile size", self.tile_spin)
        tl.addRow("Overlap", self.overlap_spin)
        tl.addRow("Batch size", self.batch_spin)
        tl.addRow("Device", self.device_combo)
        tl.addRow("Bands", self.bands_edit)
        tl.addRow("Threshold", self.threshold_spin)
        tl.addRow(commands.OPTION_LABELS["tta"], self.tta_combo)

        output = QGroupBox("Output")
        ol = QFormLayout(output)
        self.out_widget = QgsFileWidget()
        self.out_widget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.vector_check = QCheckBox(commands.OPTION_LABELS["vector"] + " (GeoPackage)")
        self.overwrite_check = QCheckBox(commands.OPTION_LABELS["overwrite"])
        self.resume_check = QCheckBox(commands.OPTION_LABELS["resume"])
        self.resume_check.setToolTip(
            "After a crash or failure: continue from the output's .partial store; only "
            "unfinished chunks are computed. (Cancel keeps nothing to resume.)"
        )
        self.regularize_check = QCheckBox(commands.OPTION_LABELS["regularize"])
        self.regularize_check.setToolTip(
            "Straight walls at right angles along each polygon's dominant direction; "
            "shapes that are not building-like keep their outline."
        )
        self.tolerance_spin = QDoubleSpinBox()
        self.tolerance_spin.setRange(0.0, 1000.0)
        self.tolerance_spin.setSingleStep(0.5)
        self.tolerance_spin.setSuffix(" m")
        self.tolerance_spin.setSpecialValueText("two pixel sizes")
        self.tolerance_spin.setToolTip("Outline details smaller than this are removed when squaring.")
        ol.addRow(commands.OPTION_LABELS["output"], self.out_widget)
        ol.addRow("", self.vector_check)
        ol.addRow("", self.regularize_check)
        ol.addRow(commands.OPTION_LABELS["regularize_tolerance"], self.tolerance_spin)
        self.vector_check.toggled.connect(self._sync_regularize)
        self.regularize_check.toggled.connect(self._sync_regularize)
        ol.addRow("", self.overwrite_check)
        ol.addRow("", self.resume_check)

        env = QGroupBox("Environment (sam2unext-geo command)")
        el = QVBoxLayout(env)
        row = QHBoxLayout()
        self.exe_widget = QgsFileWidget()
        self.exe_widget.lineEdit().setPlaceholderText("found on PATH")
        self.check_button = QPushButton("Check")
        self.check_button.setToolTip("Runs --version, models and a torch probe in the background (cached).")
        self.check_button.clicked.connect(lambda: self.check_environment(use_cache=False))
        self.install_button = QPushButton("Install…")
        self.install_button.setToolTip("Make the plugin's own environment (torch + sam2unext-geo) in one click.")
        self.install_button.clicked.connect(self.open_installer)
        self.copy_button = QPushButton("Copy diagnostics")
        self.copy_button.clicked.connect(self.copy_diagnostics)
        row.addWidget(self.exe_widget, 1)
        row.addWidget(self.check_button)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # indeterminate: a spinner while checking
        self.busy.setMaximumWidth(80)
        self.busy.setTextVisible(False)
        self.busy.hide()
        row.addWidget(self.busy)
        self.env_label = QLabel("")
        self.env_label.setWordWrap(True)
        self.env_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.env_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.env_scroll = QScrollArea()  # a long error scrolls; it never squashes the form
        self.env_scroll.setWidgetResizable(True)
        self.env_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.env_scroll.setWidget(self.env_label)
        self.env_scroll.setFixedHeight(4 * self.fontMetrics().lineSpacing() + 8)
        self.env_scroll.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        actions = QHBoxLayout()
        actions.addStretch(1)
        actions.addWidget(self.install_button)
        actions.addWidget(self.copy_button)
        el.addLayout(row)
        el.addWidget(self.env_scroll)
        el.addLayout(actions)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Run")
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)

        outer.addLayout(form)
        for box in (area, weights, tiling, output, env):
            outer.addWidget(box)
        outer.addWidget(self.buttons)
        self.load_settings()
        self._sync_georeferencing()
        self._sync_aoi()
        hint = self.sizeHint()
        self.resize(max(600, hint.width()), hint.height())  # the layout keeps it from getting any smaller
        if check_on_open:
            self.check_environment(use_cache=True, quiet=True)

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
        self.out_widget.setFilePath(settings.get("out_dir") or os.path.join(os.path.expanduser("~"), "sam2unext-geo"))
        self.vector_check.setChecked(settings.get("vector"))
        self.overwrite_check.setChecked(settings.get("overwrite"))
        self.exe_widget.setFilePath(settings.executable_setting())
        self.aoi_combo.setCurrentIndex(max(self.aoi_combo.findData(settings.get("aoi_mode")), 0))
        self.tta_combo.setCurrentIndex(max(self.tta_combo.findData(settings.get("tta")), 0))
        self.regularize_check.setChecked(settings.get("regularize"))
        self.tolerance_spin.setValue(settings.get("regularize_tolerance"))
        self._sync_weights()
        self._sync_regularize()

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
        settings.set("aoi_mode", self.aoi_combo.currentData())
        settings.set("tta", self.tta_combo.currentData())
        settings.set("regularize", self.regularize_check.isChecked())
        settings.set("regularize_tolerance", self.tolerance_spin.value())

    def _sync_weights(self) -> None:
        self.ckpt_widget.setEnabled(not self.preset_radio.isChecked())

    def _sync_regularize(self, *args) -> None:
        self.regularize_check.setEnabled(self.vector_check.isChecked())
        on = self.vector_check.isChecked() and self.regularize_check.isChecked()
        self.tolerance_spin.setEnabled(on)

    def _sync_aoi(self) -> None:
        mode = self.aoi_combo.currentData()
        self.aoi_layer_combo.setEnabled(mode == "selected")
        extent_item = self.aoi_combo.model().item(self.aoi_combo.findData("extent"))
        extent_item.setEnabled(self.canvas is not None)

    def _sync_georeferencing(self, *args) -> None:
        problem = georeferencing_problem(self.layer_combo.currentLayer())
        self.georef_label.setText(f"⚠ {problem}" if problem else "")
        self.georef_label.setVisible(bool(problem))

    # values ---------------------------------------------------------------------------------
    def options(self, export_aoi: bool = False) -> commands.PredictOptions:
        """The run options from the widgets.

        Args:
            export_aoi: write the selected AOI features to a temporary GeoPackage (``options.aoi``;
                the caller removes it with :func:`aoi.remove_file` when the run ends). Without it,
                a selected-features AOI is only validated.

        Raises:
            ValueError: no usable input raster, weights, bands, output folder or area of interest
                (one-line message).
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
        commands.check_output_folder(out_dir)
        bbox, bbox_crs, aoi_path = self.area_of_interest(export_aoi)
        return commands.PredictOptions(
            scene=scene,
            out_dir=out_dir,
            preset=preset,
            checkpoint=checkpoint,
            tile_size=self.tile_spin.value() or None,
            overlap=self.overlap_spin.value(),
            batch_size=self.batch_spin.value(),
            device=self.device_combo.currentData(),
            bands=commands.normalize_bands(bands) if bands else None,
            threshold=self.threshold_spin.value(),
            vector=self.vector_check.isChecked(),
            overwrite=self.overwrite_check.isChecked(),
            resume=self.resume_check.isChecked(),
            bbox=bbox,
            bbox_crs=bbox_crs,
            aoi=aoi_path,
            tta=self.tta_combo.currentData(),
            regularize=self.vector_check.isChecked() and self.regularize_check.isChecked(),
            regularize_tolerance=self.tolerance_spin.value() or None,
        )

    def area_of_interest(self, export: bool = False) -> tuple:
        """``(bbox, bbox_crs, aoi_file)`` for the chosen area (all None: whole scene).

        Raises:
            ValueError: no map canvas, no polygon layer, or nothing selected.
        """
        mode = self.aoi_combo.currentData()
        if mode == "extent":
            if self.canvas is None:
                raise ValueError("There is no map canvas here; choose another area of interest.")
            crs = self.canvas.mapSettings().destinationCrs()
            return aoi.extent_bbox(self.canvas.extent()), aoi.crs_text(crs), None
        if mode == "selected":
            layer = self.aoi_layer_combo.currentLayer()
            if layer is None:
                raise ValueError("Choose a polygon layer for the area of interest.")
            if layer.selectedFeatureCount() == 0:
                raise ValueError(f"No features are selected in {layer.name()}; select the polygons to segment within.")
            return None, None, aoi.selected_polygons(layer) if export else None
        return None, None, None

    def executable(self) -> str:
        """The ``sam2unext-geo`` path (configured or on PATH). Raises EnvironmentProblem."""
        return environment.find_executable(self.exe_widget.filePath().strip() or None)

    def check_environment(self, use_cache: bool = True, quiet: bool = False):
        """Check the command in the background: ``--version``, ``models`` and a torch probe.

        Returns at once; a spinner and "checking…" show until the result lands in the label
        (``check_finished`` is then True). A cached result (same command, unchanged) is shown
        immediately. ``quiet``: a missing command shows the short hint only (used on open).

        Returns:
            The background task, or None when the result came from the cache or no command was found.
        """
        self.check_finished = False
        try:
            exe = self.executable()
        except environment.EnvironmentProblem as exc:
            self._show_problem(str(exc) if not quiet else "No sam2unext-geo command yet: click Install…")
            self.check_finished = True
            return None
        hit = environment.cached_probe(exe) if use_cache else None
        if hit is not None:
            self._show_probe(hit)
            self.check_finished = True
            return None
        self.check_button.setEnabled(False)
        self.busy.show()
        self.env_label.setText(f"checking {exe}…")
        self.check_task = background.start(
            "SAM2-UNeXT: check the environment",
            lambda task: environment.probe_environment(exe, use_cache=use_cache),
            self._checked,
        )
        return self.check_task

    def _checked(self, info, error) -> None:
        try:
            self._apply_check(info, error)
        except RuntimeError:
            pass  # the dialog was closed while checking: its widgets are gone

    def _apply_check(self, info, error) -> None:
        self.check_task = None
        self.busy.hide()
        self.check_button.setEnabled(True)
        if error is not None:
            self._show_problem(str(error))
        else:
            self._show_probe(info)
        self.check_finished = True

    def _show_probe(self, info: dict) -> None:
        self.add_presets(info.get("presets", []))
        self.set_gpu_available(info.get("gpu"))
        problem = environment.torch_problem(info)
        if problem:
            self._show_problem(f"{info['executable']} — {info['version']}: {problem}")
            return
        self.last_probe, self.env_problem = info, None
        versions = f"torch {info['torch']}" if info.get("torch") else "torch not probed"
        versions += f" + torchvision {info['torchvision']}" if info.get("torchvision") else ""
        self.env_label.setText(
            f"OK: {info['executable']} — {info['version']} — {versions} — {environment.gpu_text(info)}"
            + (" (cached)" if info.get("cached") else "")
        )

    def _show_problem(self, message: str) -> None:
        self.last_probe, self.env_problem = None, message
        diagnostics.remember_error(message)
        self.env_label.setText(message)

    def copy_diagnostics(self) -> str:
        """Copy QGIS, plugin, environment, Python, torch, CUDA, GPU and the last error to the clipboard."""
        from .install_dialog import diagnostics_for

        try:
            exe = self.executable()
        except environment.EnvironmentProblem:
            exe = None
        text = diagnostics_for(
            exe, self.last_probe or (environment.cached_probe(exe) if exe else None), self.env_problem
        )
        QApplication.clipboard().setText(text)
        return text

    def open_installer(self):
        """Open the install dialog; when it succeeds, use the new command and check it."""
        from .install_dialog import InstallDialog

        def installed(executable: str) -> None:
            self.exe_widget.setFilePath(executable)
            self.check_environment(use_cache=False)

        self.installer = InstallDialog(self, on_installed=installed)
        self.installer.show()
        return self.installer

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
            self.options(export_aoi=False)
            self.executable()
        except (ValueError, environment.EnvironmentProblem) as exc:
            QMessageBox.warning(self, "SAM2-UNeXT Geo", str(exc))
            return
        self.save_settings()
        self.accept()
