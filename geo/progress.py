"""Progress reporting: a tqdm bar (notebook-aware), a JSON-lines stream, or nothing.

The JSON stream is the contract read by the QGIS plugin (docs/CONTRACTS.md): one object per
line on stdout, flushed after each line, nothing else on stdout. ``predict_raster`` emits
``start``, ``progress`` and ``done`` per scene; the command adds ``error`` and ``complete``
with :meth:`Progress.error` and :meth:`Progress.complete`.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, TYPE_CHECKING, Any

from sam2unext.errors import Words, api_words, render_options

if TYPE_CHECKING:
    from tqdm.std import tqdm as tqdm_std

MODES = ("bar", "json", "none")


class Progress:
    """Silent reporter; the base of the other modes.

    Methods are called with the events of docs/CONTRACTS.md. ``words`` renders the options a
    warning names (:func:`sam2unext.errors.option`): the API's words unless a front end sets its own.
    """

    words: Words = staticmethod(api_words)

    def start(self, scene: str, tiles: int, width: int, height: int, **info: Any) -> None:
        """A scene starts; ``info`` adds fields to the event (chunks, computations, estimated_seconds ...)."""

    def update(self, stage: str, done: int, total: int) -> None:
        """``done`` of ``total`` units of ``stage`` are finished."""

    def done(
        self,
        scene: str,
        probability: str,
        vector: str | None,
        tiles_run: int,
        tiles_skipped: int,
        seconds: float,
        area: float,
        area_unit: str = "m²",
        *,
        tiles_computed: int | None = None,
        tiles_resumed: int = 0,
    ) -> None:
        """A scene is finished (``area``: total polygon area in ``area_unit``).

        ``tiles_run`` = ``tiles_computed`` (this run) + ``tiles_resumed`` (from the store).
        """

    def warning(self, message: str) -> None:
        """Something the user should know that does not stop the run: one line on stderr."""
        print(f"warning: {render_options(message, self.words)}", file=sys.stderr, flush=True)

    def error(self, message: str, exit_code: int, options: list[str] | None = None) -> None:
        """A run failed (the command calls this; it prints the stderr line itself).

        ``options``: API names of the options the message tells the user to set.
        """

    def complete(self, scenes: int, seconds: float) -> None:
        """All scenes are finished (the command calls this)."""

    def close(self) -> None:
        """Release resources (bars)."""


class JsonProgress(Progress):
    """JSON lines on ``stream`` (default stdout); ``progress`` events are rate-limited.

    Args:
        stream: where lines go.
        min_interval: least seconds between two ``progress`` lines of a stage (the last one,
            ``done == total``, is always written).
    """

    def __init__(self, stream: IO[str] | None = None, min_interval: float = 0.2):
        self.stream = stream
        self.min_interval = min_interval
        self._last: dict[str, float] = {}

    def emit(self, event: dict[str, Any]) -> None:
        """Write one event as a JSON line and flush."""
        out = self.stream or sys.stdout
        out.write(json.dumps(event, separators=(",", ":")) + "\n")
        out.flush()

    def start(self, scene: str, tiles: int, width: int, height: int, **info: Any) -> None:
        self.emit(
            {"event": "start", "scene": scene, "tiles": int(tiles), "width": int(width), "height": int(height), **info}
        )

    def update(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last.get(stage, -1e9) < self.min_interval:
            return
        self._last[stage] = now
        self.emit({"event": "progress", "stage": stage, "done": int(done), "total": int(total)})

    def done(
        self,
        scene: str,
        probability: str,
        vector: str | None,
        tiles_run: int,
        tiles_skipped: int,
        seconds: float,
        area: float,
        area_unit: str = "m²",
        *,
        tiles_computed: int | None = None,
        tiles_resumed: int = 0,
    ) -> None:
        from sam2unext.geo.vectors.units import format_area

        self.emit(
            {
                "event": "done",
                "scene": scene,
                "probability": probability,
                "vector": vector,
                "tiles_run": int(tiles_run),
                "tiles_skipped": int(tiles_skipped),
                "tiles_computed": int(tiles_run - tiles_resumed if tiles_computed is None else tiles_computed),
                "tiles_resumed": int(tiles_resumed),
                "seconds": round(float(seconds), 3),
                "area": float(area),
                "area_unit": area_unit,
                "area_text": format_area(area, area_unit),
            }
        )

    def warning(self, message: str) -> None:
        text = render_options(message, self.words)
        self.emit({"event": "warning", "message": text})
        print(f"warning: {text}", file=sys.stderr, flush=True)

    def error(self, message: str, exit_code: int, options: list[str] | None = None) -> None:
        event: dict[str, Any] = {"event": "error", "message": message, "exit_code": int(exit_code)}
        if options:
            event["options"] = list(options)
        self.emit(event)

    def complete(self, scenes: int, seconds: float) -> None:
        self.emit({"event": "complete", "scenes": int(scenes), "seconds": round(float(seconds), 3)})


#: Said once per process when a notebook has no ipywidgets (no bar can be drawn there).
NO_WIDGETS_NOTE = (
    "progress: ipywidgets is not installed, so one line per finished stage is printed instead of "
    "a bar; pip install 'sam2unext-geo[notebook]' for progress bars"
)
_noted = False


def in_notebook() -> bool:
    """True inside a Jupyter kernel (notebook, lab, VS Code), where text bars print line after line."""
    return "ipykernel.zmqshell" in sys.modules


def _bar_class() -> type[tqdm_std] | None:
    """The tqdm class to use: widgets in a notebook, text elsewhere; None in a notebook without ipywidgets."""
    if in_notebook():
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            return None
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm


class BarProgress(Progress):
    """tqdm bars: a widget in notebooks (ipywidgets), text on stderr elsewhere.

    In a notebook without ipywidgets a text bar would print each refresh as a new line, so
    this reporter prints one note (once per process) and one line per finished stage instead.
    """

    def __init__(self) -> None:
        self._bars: dict[str, Any] = {}
        self._finished: set[str] = set()
        self._scene = ""
        self._tqdm = _bar_class()

    def start(self, scene: str, tiles: int, width: int, height: int, **info: Any) -> None:
        self._scene = scene
        self._finished.clear()
        line = describe_start(scene, tiles, info)
        if line:
            self._say(line, err=False)

    def _say(self, text: str, *, err: bool) -> None:
        """A line between the bars: stderr on a terminal (stdout stays clean); stdout in a notebook
        unless ``err`` (a notebook shows stderr as an error)."""
        if self._tqdm is None or in_notebook():
            print(text, file=sys.stderr if err else sys.stdout, flush=True)
        else:
            self._tqdm.write(text, file=sys.stderr)

    def update(self, stage: str, done: int, total: int) -> None:
        bar = self._bars.get(stage)
        if bar is None and stage in self._finished:
            return  # a repeated final update: the bar is already closed
        if self._tqdm is None:
            self._line(stage, done, total)
            if done >= total:
                self._finished.add(stage)
            return
        if bar is None:
            bar = self._bars[stage] = self._tqdm(
                total=total,
                desc=f"{stage} {self._scene}".strip(),
                unit="tile" if stage == "predict" else "it",
                leave=False,
            )
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            self._bars.pop(stage, None)
            self._finished.add(stage)

    def _line(self, stage: str, done: int, total: int) -> None:
        global _noted
        if not _noted:
            _noted = True
            print(NO_WIDGETS_NOTE, flush=True)
        if done >= total:
            unit = "tiles" if stage == "predict" else "steps"
            print(f"{f'{stage} {self._scene}'.strip()}: {done}/{total} {unit}", flush=True)

    def warning(self, message: str) -> None:
        self._say(f"warning: {render_options(message, self.words)}", err=True)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


def describe_start(scene: str, tiles: int, info: dict[str, Any]) -> str:
    """One line on what a scene's run will do: tiles, chunks, border recomputation, estimated time."""
    if "chunks" not in info:
        return ""
    parts = [f"{scene}: {tiles:,} tiles"]
    extra = int(info.get("computations", tiles)) - int(tiles)
    if extra > 0:
        parts.append(f"(+{extra:,} recomputed at chunk borders)")
    parts.append(f"in {info['chunks']:,} chunks")
    if info.get("resumed_chunks"):
        parts.append(f"({info['resumed_chunks']:,} already done)")
    line = " ".join(parts)
    est = info.get("estimated_seconds")
    if est is not None:
        line += f"; about {format_seconds(est)} at {info['seconds_per_tile'] * 1000:.0f} ms/tile (measured)"
    if info.get("precision"):
        line += f"; {info['precision']}"
    return line


def format_seconds(value: float) -> str:
    """``12.3 s``, ``4 min 05 s`` or ``1 h 02 min``."""
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(round(value)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def make_progress(progress: str | Progress | None) -> Progress:
    """A reporter from a mode name (``"bar"``, ``"json"``, ``"none"``/None) or an instance.

    Raises:
        InputError: unknown mode.
    """
    if isinstance(progress, Progress):
        return progress
    if progress in (None, "none", False):
        return Progress()
    if progress == "json":
        return JsonProgress()
    if progress in ("bar", True):
        return BarProgress()
    from sam2unext.errors import InputError

    raise InputError(f"progress {progress!r} must be one of {', '.join(MODES)}")
