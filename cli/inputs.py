"""Command-line argument parsing that typer does not do: globs, band lists, output naming."""

from __future__ import annotations

import glob
import os
from pathlib import Path, PurePosixPath

from sam2unext.errors import InputError, OutputError
from sam2unext.geo.storage.urls import is_url, join, stem_of

_GLOB_CHARS = set("*?[")
RASTER_SUFFIXES = (".tif", ".tiff")


def expand_scenes(patterns: list[str]) -> list[Path | str]:
    """Scene paths from arguments that are paths or glob patterns, in order, without duplicates.

    GDAL ``/vsi...`` names and ``s3://``, ``gs://``, ``https://`` URLs stay strings: ``Path()`` would
    turn ``https://`` into ``https:/``. A URL is checked when the scene is opened.

    Raises:
        InputError: a path that does not exist, or a glob that matches nothing.
    """
    from sam2unext.geo.reading.opening import require_input

    scenes: list[Path | str] = []
    for pattern in patterns:
        if pattern.startswith("/vsi") or is_url(pattern):  # read by GDAL, not on the local file system
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


def local_output_folders(output: str | None) -> list[Path]:
    """The local folders ``-o`` would create (none for a ``.tif`` file or a URL)."""
    if output is None or is_url(output) or Path(output).suffix.lower() in RASTER_SUFFIXES:
        return []
    return new_folders(Path(output))


def probability_outputs(scenes: list[Path | str], output: str | Path | None) -> list[Path | str | None]:
    """Where each scene's probability raster goes.

    ``output`` may be a ``.tif`` file (one scene only) or a folder (created if missing; each
    scene becomes ``<folder>/<stem>_prob.tif``), locally or as an ``s3://``/``gs://`` object or
    prefix (nothing is created there). None leaves the default, next to the scene.

    Raises:
        OutputError: a ``.tif`` output with several scenes, an output folder that cannot be
            created or written, or two scenes with the same name going to one folder.
    """
    if output is None:
        return [None] * len(scenes)
    remote = is_url(output)
    target = str(output) if remote else Path(output)
    if PurePosixPath(str(output)).suffix.lower() in RASTER_SUFFIXES and (remote or not Path(output).is_dir()):
        if len(scenes) > 1:
            raise OutputError(f"-o {output} is a file but {len(scenes)} scenes were given; pass a folder with -o")
        return [target]
    if not remote:
        make_folder(Path(output))
    targets = [join(target, f"{stem_of(scene)}_prob.tif") for scene in scenes]
    seen: dict[Path | str, Path | str] = {}
    for scene, target in zip(scenes, targets):
        if target in seen:
            raise OutputError(f"scenes {seen[target]} and {scene} would both write {target}; rename one")
        seen[target] = scene
    return targets


def quicklook_outputs(scenes: list[Path | str], targets: list[Path | str | None], overwrite: bool) -> list[Path]:
    """``<scene stem>_quicklook.png`` next to each scene's probability raster, checked before any work.

    Raises:
        OutputError: an existing PNG without ``overwrite``, an unwritable folder, or an output at a URL.
    """
    from sam2unext.geo.writing.cog import check_output

    for scene, target in zip(scenes, targets):
        if is_url(target if target is not None else scene):
            raise OutputError(
                f"--quicklook draws a local PNG but the output of {scene} goes to a URL; drop --quicklook "
                "or write the output to a local folder"
            )

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
