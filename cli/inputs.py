"""Command-line argument parsing that typer does not do: globs, band lists, output naming."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from sam2unext.errors import InputError, OutputError

_GLOB_CHARS = set("*?[")
RASTER_SUFFIXES = (".tif", ".tiff")


def expand_scenes(patterns: list[str]) -> list[Path | str]:
    """Scene paths from arguments that are paths or glob patterns, in order, without duplicates.

    GDAL ``/vsi...`` names stay strings: ``Path()`` would turn ``/vsicurl/https://`` into ``https:/``.

    Raises:
        InputError: a path that does not exist, or a glob that matches nothing.
    """
    from sam2unext.geo.reading.opening import require_input

    scenes: list[Path | str] = []
    for pattern in patterns:
        if pattern.startswith("/vsi"):  # read by GDAL, not on the local file system
            scenes.append(pattern)
            continue
        if _GLOB_CHARS & set(pattern) and not Path(pattern).exists():
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                raise InputError(f"no file matches {pattern!r}; check the pattern")
            scenes += [Path(m) for m in matches if Path(m).is_file()]
        else:
            path = Path(pattern)
            require_input(path)
            scenes.append(path)
    unique = list(dict.fromkeys(scenes))
    if not unique:
        raise InputError(f"no scene files in {' '.join(patterns)}")
    return unique


def parse_bands(text: str | None, name: str = "bands") -> tuple[int | str, ...] | None:
    """``"3,2,1"`` → ``(3, 2, 1)`` (any count, e.g. ``4,3,2,8``); ``"red,green,blue"`` →
    ``("red", "green", "blue")`` (band descriptions, resolved against each scene; ``--bands``
    only); None stays None.

    Raises:
        InputError: an empty list, a band number below 1, or an empty item.
    """
    if text is None:
        return None
    flag = "--" + name.replace("_", "-")
    items = [b.strip() for b in text.split(",")]
    if not items or any(not b for b in items):
        raise InputError(
            f"{flag} {text!r} must be 1-based band numbers or band descriptions, e.g. 3,2,1 or red,green,blue"
        )
    bands = tuple(int(b) if b.lstrip("-").isdigit() else b for b in items)
    if any(isinstance(b, int) and b < 1 for b in bands):
        raise InputError(f"{flag} {text!r}: band numbers are 1-based, e.g. 3,2,1")
    if name != "bands" and any(isinstance(b, str) for b in bands):
        raise InputError(f"{flag} {text!r} must be 1-based band numbers, e.g. 3,2,1")
    return bands


def probability_outputs(scenes: list[Path | str], output: Path | None) -> list[Path | None]:
    """Where each scene's probability raster goes.

    ``output`` may be a ``.tif`` file (one scene only) or a folder (created if missing; each
    scene becomes ``<folder>/<stem>_prob.tif``). None leaves the default, next to the scene.

    Raises:
        OutputError: a ``.tif`` output with several scenes, an output folder that cannot be
            created or written, or two scenes with the same name going to one folder.
    """
    if output is None:
        return [None] * len(scenes)
    if output.suffix.lower() in RASTER_SUFFIXES and not output.is_dir():
        if len(scenes) > 1:
            raise OutputError(f"-o {output} is a file but {len(scenes)} scenes were given; pass a folder with -o")
        return [output]
    make_folder(output)
    targets = [output / f"{Path(scene).stem}_prob.tif" for scene in scenes]
    seen: dict[Path, Path | str] = {}
    for scene, target in zip(scenes, targets):
        if target in seen:
            raise OutputError(f"scenes {seen[target]} and {scene} would both write {target}; rename one")
        seen[target] = scene
    return targets


def quicklook_outputs(scenes: list[Path | str], targets: list[Path | None], overwrite: bool) -> list[Path]:
    """``<scene stem>_quicklook.png`` next to each scene's probability raster, checked before any work.

    Raises:
        OutputError: an existing PNG without ``overwrite``, or an unwritable folder.
    """
    from sam2unext.geo.writing.cog import check_output

    return [
        check_output(
            (target.parent if target is not None else Path(str(scene)).parent)
            / f"{Path(str(scene)).stem}_quicklook.png",
            overwrite,
        )
        for scene, target in zip(scenes, targets)
    ]


def new_folders(folder: Path) -> list[Path]:
    """The folders :func:`make_folder` would create for ``folder`` (deepest last)."""
    missing: list[Path] = []
    p = folder
    while not p.exists() and p != p.parent:
        missing.insert(0, p)
        p = p.parent
    return missing


def remove_empty_folders(folders: list[Path]) -> None:
    """Remove folders made for a run that was refused, deepest first, if they are still empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def make_folder(folder: Path) -> Path:
    """Create ``folder`` (and parents) and check it can be written.

    Raises:
        OutputError: it cannot be created, is a file, or is not writable.
    """
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output {folder} is a file, not a folder; choose a folder with -o")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder} ({exc.strerror}); choose another with -o") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable; choose another with -o")
    return folder
