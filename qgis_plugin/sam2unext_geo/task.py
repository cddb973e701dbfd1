"""Background QgsTask: run ``sam2unext-geo predict`` and add the results when it finishes."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Optional

from qgis.core import Qgis, QgsMessageLog, QgsProject, QgsTask

from . import commands, environment, runner
from .layers import add_result_layers, scene_name

LOG_TAG = "SAM2-UNeXT Geo"


class PredictTask(QgsTask):
    """Runs the command in a worker thread; progress from its JSON stream; Cancel stops it.

    ``finished`` (main thread) adds the layers in an expanded group named after the scene and the
    time the run started (:func:`layers.result_group_name`), or reports the error.
    ``on_finished(task)`` is called afterwards (used by the dialog and the tests). ``stage`` is the
    text of the current stage (``loading model…`` while the model loads), also shown in the task's
    description.
    """

    def __init__(
        self,
        executable: str,
        options: commands.PredictOptions,
        *,
        project: Optional[QgsProject] = None,
        check_environment: bool = True,
        notify: Optional[Callable[[str, int], None]] = None,
        on_finished: Optional[Callable[[PredictTask], None]] = None,
    ):
        self.title = f"SAM2-UNeXT: {scene_name(options.scene)}"
        super().__init__(self.title, QgsTask.Flag.CanCancel)
        self.stage = "queued"
        self.stages: list = []  # every stage text shown, in order
        self.executable = executable
        self.options = options
        self.project = project
        self.check_env = check_environment
        self.notify = notify or (lambda msg, level: None)
        self.on_finished = on_finished
        self.result: Optional[runner.RunResult] = None
        self.error: Optional[str] = None
        self.cancelled_run = False
        self.layers: tuple = ()
        self.group = None
        self.cleanup: Optional[Callable[[], None]] = None  # removes temporary inputs (AOI file) afterwards
        self.started = datetime.now()  # replaced by the moment the run starts

    def output_paths(self) -> list:
        """The absolute paths of the files this run writes (probability first)."""
        return [os.path.abspath(os.path.join(self.options.out_dir, n)) for n in commands.output_names(self.options)]

    def run(self) -> bool:
        """Worker thread: no GUI or project access here."""
        self.started = datetime.now()
        try:
            if self.check_env:
                environment.check_environment(self.executable, full=False)
            args = commands.predict_args(self.executable, self.options)
            QgsMessageLog.logMessage("Running: " + " ".join(args), LOG_TAG, Qgis.MessageLevel.Info)
            self.result = runner.run_command(
                args,
                on_event=self._on_event,
                is_cancelled=self.isCanceled,
                out_dir=self.options.out_dir,
                outputs=commands.output_names(self.options),
            )
            if not self.result.done:
                self.error = "sam2unext-geo finished without reporting any output."
                return False
            return True
        except runner.CancelledRun:
            self.cancelled_run = True
            return False
        except (environment.EnvironmentProblem, runner.CommandFailed, ValueError) as exc:
            self.error = str(exc)
            return False
        except Exception as exc:  # noqa: BLE001 - a worker thread must not raise
            self.error = f"{type(exc).__name__}: {exc}"
            return False

    def _on_event(self, event: dict) -> None:
        label = commands.stage_label(event)
        if label and label != self.stage:
            self.stage = label
            self.stages.append(label)
            self.setDescription(f"{self.title} — {label}")
        pct = commands.progress_percent(event)
        if pct is not None:
            self.setProgress(max(pct, 0.5))  # > 0 as soon as the command speaks (the bar moves)

    def finished(self, ok: bool) -> None:
        """Main thread: add layers on success; never on cancel or failure."""
        try:
            if ok and self.result is not None and not self.isCanceled():
                done = self.result.done[-1]
                scene = scene_name(done.get("scene") or self.options.scene)
                self.group, *self.layers = add_result_layers(
                    done["probability"], done.get("vector"), scene, self.project, self.started
                )
                skipped = int(done.get("tiles_skipped") or 0)
                tiles = f"{done.get('tiles_run', '?')} tiles" + (f", {skipped} skipped" if skipped else "")
                self.notify(
                    f"{scene}: added “{self.group.name()}” ({tiles}, {done.get('seconds', 0):.1f} s).",
                    Qgis.MessageLevel.Success,
                )
            elif self.cancelled_run or self.isCanceled():
                self.cancelled_run = True
                self.notify("Cancelled; no layers or files were kept.", Qgis.MessageLevel.Info)
            else:
                self.error = self.error or "sam2unext-geo failed."
                QgsMessageLog.logMessage(self.error, LOG_TAG, Qgis.MessageLevel.Critical)
                self.notify(self.error, Qgis.MessageLevel.Critical)
        except Exception as exc:  # noqa: BLE001 - show it instead of a silent failure
            self.error = str(exc)
            self.notify(self.error, Qgis.MessageLevel.Critical)
        finally:
            if self.error:
                from . import diagnostics

                diagnostics.remember_error(self.error)
            if self.cleanup:
                self.cleanup()
            if self.on_finished:
                self.on_finished(self)
