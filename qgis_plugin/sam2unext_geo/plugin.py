"""The plugin object: toolbar button, menu entry, Processing provider."""

from __future__ import annotations

import os
from typing import Optional

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from . import aoi, commands, environment
from .provider import Sam2UnextProvider

MENU = "&SAM2-UNeXT Geo"
ICON = os.path.join(os.path.dirname(__file__), "icon.png")


class Sam2UnextGeoPlugin:
    """Adds the toolbar button and menu entry (GUI) and the Processing provider (GUI and qgis_process)."""

    def __init__(self, iface):
        self.iface = iface
        self.provider: Optional[Sam2UnextProvider] = None
        self.action: Optional[QAction] = None
        self.install_action: Optional[QAction] = None
        self.installer = None
        self.toolbar = None
        self.tasks: list = []

    def initProcessing(self) -> None:  # noqa: N802 - QGIS API
        """Register the Processing provider (called alone by qgis_process)."""
        if self.provider is None:
            self.provider = Sam2UnextProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 - QGIS API
        """Create the action, its toolbar and menu entry, and the provider."""
        self.initProcessing()
        self.action = QAction(QIcon(ICON), "SAM2-UNeXT: segment raster…", self.iface.mainWindow())
        self.action.setObjectName("sam2unext_geo_predict")
        self.action.setToolTip("Segment the active raster with SAM2-UNeXT (runs in the background)")
        self.action.triggered.connect(self.show_dialog)
        self.toolbar = self.iface.addToolBar("SAM2-UNeXT Geo")
        self.toolbar.setObjectName("sam2unext_geo_toolbar")
        self.toolbar.addAction(self.action)
        self.iface.addPluginToRasterMenu(MENU, self.action)
        self.install_action = QAction(QIcon(ICON), "Install the sam2unext-geo environment…", self.iface.mainWindow())
        self.install_action.setObjectName("sam2unext_geo_install")
        self.install_action.triggered.connect(self.show_installer)
        self.iface.addPluginToRasterMenu(MENU, self.install_action)

    def unload(self) -> None:
        """Remove everything initGui/initProcessing added; cancel running tasks."""
        for task in self.tasks:
            try:
                task.cancel()
            except RuntimeError:
                pass
        self.tasks = []
        if self.install_action is not None:
            self.iface.removePluginRasterMenu(MENU, self.install_action)
            self.install_action.deleteLater()
            self.install_action = None
        if self.action is not None:
            self.iface.removePluginRasterMenu(MENU, self.action)
            if self.toolbar is not None:
                self.toolbar.removeAction(self.action)
                self.toolbar.deleteLater()
                self.toolbar = None
            self.action.deleteLater()
            self.action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    # GUI ------------------------------------------------------------------------------------
    def show_dialog(self) -> None:
        """Open the dialog; on Run, start the background task."""
        from .dialog import PredictDialog

        canvas = self.iface.mapCanvas() if hasattr(self.iface, "mapCanvas") else None
        dialog = PredictDialog(self.iface.mainWindow(), self.iface.activeLayer(), canvas)
        if not dialog.exec():
            return
        options = None
        try:
            options = dialog.options(export_aoi=True)
            self.start_task(dialog.executable(), options)
        except (ValueError, environment.EnvironmentProblem) as exc:
            if options is not None:
                aoi.remove_file(options.aoi)
            self.notify(str(exc), Qgis.MessageLevel.Critical)

    def show_installer(self) -> None:
        """Open the one-click install dialog (non-modal)."""
        from .install_dialog import InstallDialog

        self.installer = InstallDialog(
            self.iface.mainWindow(),
            on_installed=lambda exe: self.notify(f"sam2unext-geo installed: {exe}", Qgis.MessageLevel.Success),
        )
        self.installer.show()

    def start_task(self, executable: str, options: commands.PredictOptions, **kwargs):
        """Queue a :class:`PredictTask` in QGIS's task manager and return it.

        A temporary AOI file in ``options.aoi`` made by the dialog is removed when the task ends.

        Raises:
            ValueError: another task of this plugin is writing the same output file.
        """
        from .task import PredictTask

        task = PredictTask(executable, options, notify=self.notify, on_finished=self._forget, **kwargs)
        busy = set(task.output_paths()).intersection(p for t in self.tasks for p in t.output_paths())
        if busy:
            raise ValueError(
                f"{sorted(busy)[0]} is being written by a run that has not finished; wait for it, "
                "or choose another output folder."
            )
        if options.aoi and os.path.basename(options.aoi).startswith("sam2unext_aoi_"):
            task.cleanup = lambda: aoi.remove_file(options.aoi)
        self.tasks.append(task)
        QgsApplication.taskManager().addTask(task)
        return task

    def _forget(self, task) -> None:
        if task in self.tasks:
            self.tasks.remove(task)

    def notify(self, message: str, level: int = Qgis.MessageLevel.Info) -> None:
        """Message bar in the GUI, the log otherwise."""
        if self.iface is not None and hasattr(self.iface, "messageBar"):
            self.iface.messageBar().pushMessage(
                "SAM2-UNeXT Geo", message, level=level, duration=0 if level == Qgis.MessageLevel.Critical else 8
            )
        else:
            from qgis.core import QgsMessageLog

            QgsMessageLog.logMessage(message, "SAM2-UNeXT Geo", level)
