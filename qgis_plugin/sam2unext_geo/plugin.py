"""The plugin object: toolbar button, menu entry, Processing provider."""

from __future__ import annotations

import os
from typing import Optional

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from . import commands, environment
from .provider import Sam2UnextProvider

MENU = "&SAM2-UNeXT Geo"
ICON = os.path.join(os.path.dirname(__file__), "icon.png")


class Sam2UnextGeoPlugin:
    """Adds the toolbar button and menu entry (GUI) and the Processing provider (GUI and qgis_process)."""

    def __init__(self, iface):
        self.iface = iface
        self.provider: Optional[Sam2UnextProvider] = None
        self.action: Optional[QAction] = None
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

    def unload(self) -> None:
        """Remove everything initGui/initProcessing added; cancel running tasks."""
        for task in self.tasks:
            try:
                task.cancel()
            except RuntimeError:
                pass
        self.tasks = []
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

        dialog = PredictDialog(self.iface.mainWindow(), self.iface.activeLayer())
        if not dialog.exec_():
            return
        try:
            self.start_task(dialog.executable(), dialog.options())
        except (ValueError, environment.EnvironmentProblem) as exc:
            self.notify(str(exc), Qgis.Critical)

    def start_task(self, executable: str, options: commands.PredictOptions, **kwargs):
        """Queue a :class:`PredictTask` in QGIS's task manager and return it."""
        from .task import PredictTask

        task = PredictTask(executable, options, notify=self.notify, on_finished=self._forget, **kwargs)
        self.tasks.append(task)
        QgsApplication.taskManager().addTask(task)
        return task

    def _forget(self, task) -> None:
        if task in self.tasks:
            self.tasks.remove(task)

    def notify(self, message: str, level: int = Qgis.Info) -> None:
        """Message bar in the GUI, the log otherwise."""
        if self.iface is not None and hasattr(self.iface, "messageBar"):
            self.iface.messageBar().pushMessage("SAM2-UNeXT Geo", message, level=level,
                                                duration=0 if level == Qgis.Critical else 8)
        else:
            from qgis.core import QgsMessageLog

            QgsMessageLog.logMessage(message, "SAM2-UNeXT Geo", level)
