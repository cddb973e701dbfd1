"""The *Install* dialog: make the plugin's own environment in one click, with progress and a log;
*Repair* reinstalls a matching torch and torchvision when the environment's check fails."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Optional

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtGui import QFontDatabase
from qgis.PyQt.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from . import background, diagnostics, environment, installer, settings


class InstallDialog(QDialog):
    """Plans the install in the background, then runs it (or the repair) in a QgsTask; the log streams in.

    The environment line (``env_line``) says what the last check proved: the torch pair, where it
    came from, whether torch found a GPU and which, and the prediction check. After a failed check
    the status says what failed and *Repair* is the one button to press.

    Args:
        parent: parent widget.
        on_installed: called (GUI thread) with the new command's path after a successful install.
        plan_options: keyword arguments for :func:`installer.make_plan` (tests: ``pip_options``,
            ``reuse_site_packages``, ``pypi_options``, ``torch_index``, ``python``, ``venv``,
            ``gpu``/``detect``).
    """

    def __init__(self, parent=None, on_installed: Optional[Callable[[str], None]] = None, **plan_options):
        super().__init__(parent)
        self.setWindowTitle("SAM2-UNeXT Geo — install the environment")
        self.setMinimumSize(640, 460)
        self.on_installed = on_installed
        self.plan_options = plan_options
        self.plan: Optional[installer.InstallPlan] = None
        self.installed: Optional[str] = None
        self.result: Optional[installer.InstallResult] = None
        self.error: Optional[str] = None
        self.task = None
        self._lines: list = []
        self._lock = threading.Lock()
        self._progress = 0.0

        layout = QVBoxLayout(self)
        intro = QLabel(
            "Creates a Python environment for sam2unext-geo in your QGIS profile folder, installs "
            f"torch {installer.TORCH_VERSION} with torchvision {installer.TORCHVISION_VERSION} (from PyTorch's "
            "index: the CUDA build when nvidia-smi reports an NVIDIA GPU, else the CPU build; from PyPI "
            "when that index does not answer) and the sam2unext-geo wheel carried by this plugin, checks "
            "it with a small prediction, then points the plugin at it. Downloads about 1 GB (CPU) to 3 GB (CUDA)."
        )
        intro.setWordWrap(True)
        self.plan_label = QLabel("Looking for Python and a GPU…")
        self.plan_label.setWordWrap(True)
        self.plan_label.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.env_line = QLabel("Environment: not checked yet")
        self.env_line.setWordWrap(True)
        self.env_line.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log.setMaximumBlockCount(5000)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.install_button = QPushButton("Install")
        self.install_button.setEnabled(False)
        self.repair_button = QPushButton("Repair")
        self.repair_button.setEnabled(False)
        self.repair_button.setToolTip(
            f"Reinstall torch {installer.TORCH_VERSION} and torchvision {installer.TORCHVISION_VERSION} "
            "(a matching pair) into the existing environment, then check it again."
        )
        self.copy_button = QPushButton("Copy diagnostics")
        self.buttons.addButton(self.install_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(self.repair_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.HelpRole)
        self.buttons.rejected.connect(self.reject)
        self.install_button.clicked.connect(self.start_install)
        self.repair_button.clicked.connect(self.start_repair)
        self.copy_button.clicked.connect(self.copy_diagnostics)
        for widget in (intro, self.plan_label, self.progress, self.env_line, self.status, self.log, self.buttons):
            layout.addWidget(widget)
        self.timer = QTimer(self)
        self.timer.setInterval(100)
        self.timer.timeout.connect(self._flush)
        self.plan_task = background.start("SAM2-UNeXT: plan the install", self._make_plan, self._planned)

    # planning -------------------------------------------------------------------------------
    def _make_plan(self, task) -> installer.InstallPlan:
        return installer.make_plan(QgsApplication.qgisSettingsDirPath(), **self.plan_options)

    def _planned(self, plan, error) -> None:
        try:
            self._show_plan(plan, error)
        except RuntimeError:
            pass  # closed while planning

    def _show_plan(self, plan, error) -> None:
        if error is not None:
            self.error = str(error)
            self.plan_label.setText(self.error)
            diagnostics.remember_error(self.error)
            return
        self.plan = plan
        self.plan_label.setText(plan.describe())
        self.install_button.setEnabled(True)
        self.repair_button.setEnabled(plan.exists())

    # installing -----------------------------------------------------------------------------
    def start_install(self) -> None:
        """Run :func:`installer.install` in a background task; the log and bar update every 100 ms."""
        self._start("install", installer.install, "Installing… (QGIS stays usable; this dialog can stay open)")

    def start_repair(self) -> None:
        """Run :func:`installer.repair`: reinstall the torch pair into the existing environment, check it."""
        self._start("repair", installer.repair, "Repairing: reinstalling torch and torchvision…")

    def _start(self, kind: str, function, status: str) -> None:
        if self.plan is None or self.task is not None:
            return
        self.install_button.setEnabled(False)
        self.repair_button.setEnabled(False)
        self.error = None
        self.status.setText(status)
        self.timer.start()
        plan = self.plan
        self.task = background.start(
            f"SAM2-UNeXT: {kind} the environment",
            lambda task: function(plan, log=self._log, progress=self._set_progress, is_cancelled=task.isCanceled),
            self._done,
            can_cancel=True,
        )

    def _log(self, line: str) -> None:  # worker thread
        with self._lock:
            self._lines.append(line)

    def _set_progress(self, value: float) -> None:  # worker thread
        self._progress = value

    def _flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
        if lines:
            self.log.appendPlainText("\n".join(lines))
        self.progress.setValue(int(self._progress))

    def _done(self, result, error) -> None:
        if error is None:
            settings.set("executable", result.executable)  # first: it must happen even if the dialog is gone
            environment.forget_probes()
        else:
            diagnostics.remember_error(str(error))
        try:
            self._show_done(result, error)
        except RuntimeError:
            pass  # the dialog was closed and deleted while installing

    def _show_done(self, result, error) -> None:
        self.timer.stop()
        self._flush()
        self.task = None
        self.install_button.setEnabled(True)
        if error is not None:
            self.error = str(error)
            repairable = getattr(error, "repairable", False) and self.plan.exists()
            self.repair_button.setEnabled(self.plan.exists())
            if repairable:
                self.env_line.setText("Environment: does not work (see below)")
                self.repair_button.setDefault(True)
                self.repair_button.setFocus()
            self.status.setText(f"Failed: {self.error}")
            return
        self.result, self.installed = result, result.executable
        self.repair_button.setEnabled(True)
        self.progress.setValue(100)
        self.env_line.setText(f"Environment: {result.summary()}")
        self.status.setText(f"Installed and checked. The plugin now uses {result.executable}.")
        if self.on_installed:
            self.on_installed(result.executable)

    # diagnostics ----------------------------------------------------------------------------
    def copy_diagnostics(self) -> str:
        """Put :func:`diagnostics.diagnostics_text` on the clipboard (and return it)."""
        exe = self.installed or settings.executable_setting() or None
        probe = environment.cached_probe(exe) if exe else None
        if probe is None and self.result is not None:
            probe = dict(self.result.torch, version=installer.wheel_version(self.plan.wheel))
        text = diagnostics_for(exe, probe, self.error)
        QApplication.clipboard().setText(text)
        self.status.setText("Diagnostics copied to the clipboard.")
        return text

    def reject(self) -> None:
        """Close; a running install goes on in the task manager (its log is lost)."""
        self.timer.stop()
        super().reject()


def diagnostics_for(executable: Optional[str], probe: Optional[dict], problem: Optional[str]) -> str:
    """:func:`diagnostics.diagnostics_text` with this QGIS's version."""
    return diagnostics.diagnostics_text(Qgis.QGIS_VERSION, executable, probe, problem)
