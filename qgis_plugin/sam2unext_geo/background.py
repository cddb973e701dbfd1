"""Run a slow function off the GUI thread in QGIS's task manager; deliver its result on the GUI thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from qgis.core import QgsApplication, QgsTask


class FunctionTask(QgsTask):
    """A :class:`QgsTask` that calls ``function(task)`` in a worker thread.

    ``on_done(result, error)`` runs on the GUI thread when it ends: ``error`` is the exception
    the function raised (None on success). The function may call ``task.setProgress`` and poll
    ``task.isCanceled()``. Keep a reference to the task while it runs.
    """

    def __init__(
        self,
        description: str,
        function: Callable[[FunctionTask], Any],
        on_done: Callable[[Any, Optional[BaseException]], None],
        *,
        can_cancel: bool = False,
    ):
        flags = QgsTask.Flag.CanCancel if can_cancel else QgsTask.Flag(0)
        super().__init__(description, flags)
        self.function = function
        self.on_done = on_done
        self.result: Any = None
        self.exception: Optional[BaseException] = None
        self.ended = False

    def run(self) -> bool:
        """Worker thread: no widgets or project access here."""
        try:
            self.result = self.function(self)
            return True
        except BaseException as exc:  # noqa: BLE001 - handed to on_done on the GUI thread
            self.exception = exc
            return False

    def finished(self, ok: bool) -> None:
        """GUI thread."""
        self.ended = True
        if self.exception is None and not ok:
            self.exception = RuntimeError("cancelled")
        self.on_done(self.result, self.exception)


def start(description: str, function: Callable, on_done: Callable, *, can_cancel: bool = False) -> FunctionTask:
    """Create a :class:`FunctionTask`, queue it in QGIS's task manager and return it."""
    task = FunctionTask(description, function, on_done, can_cancel=can_cancel)
    QgsApplication.taskManager().addTask(task)
    return task
