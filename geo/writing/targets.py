"""The outputs of a scene run: where they go, what is checked before any work, a killed run's leftovers.

Paths on disk or ``s3://``/``gs://`` URLs: the probability raster, its polygons and the run store
beside them (:class:`~sam2unext.geo.writing.store.RunStore`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sam2unext.errors import OutputError, option
from sam2unext.geo.options import SceneOptions
from sam2unext.geo.storage import (
    as_target,
    check_remote_output,
    is_url,
    name_of,
    output_exists,
    stem_of,
    with_name,
)
from sam2unext.geo.vectors.vectorize import default_vector_path, format_from, leftover_vector_temporaries
from sam2unext.geo.writing.cog import check_output, leftover_temporaries, remove_quietly
from sam2unext.geo.writing.store import RunStore, store_path_for


def default_output(source: str | Path) -> str | Path:
    """The probability raster written when none is named: ``<source stem>_prob.tif`` next to the source.

    Beside a URL scene it is a URL (an ``https://`` scene needs an explicit output).
    """
    if is_url(source):
        return with_name(str(source), stem_of(source) + "_prob.tif")
    return Path(str(source)).with_name(Path(str(source)).stem + "_prob.tif")


@dataclass(frozen=True)
class Outputs:
    """The checked outputs of a scene: probability raster, its run store, polygons (or None) and their format.

    The paths may be ``s3://``/``gs://`` URLs: such outputs are built in a scratch folder and
    uploaded whole (:func:`sam2unext.geo.storage.publish`).
    """

    probability: str | Path
    store: RunStore
    vector: str | Path | None
    vector_format: str | None


def check_outputs(output: str | Path, options: SceneOptions, discard: bool = True) -> Outputs:
    """The checked outputs (paths, or ``s3://``/``gs://`` URLs); refuses what would lose or mix work.

    ``discard``: remove an unfinished run's store when ``overwrite`` (False: only check).

    Raises:
        OutputError: an unfinished run without resume/overwrite, nothing to resume, an existing
            output without overwrite, an unwritable folder, a bad polygon format; for a URL also
            a missing bucket, no credentials or denied access.
    """
    out, store = _check_store(as_target(output), options.overwrite, options.resume, discard)
    vector = options.vector
    if vector:
        fmt = format_from(None if vector is True else vector, options.vector_format if vector is True else None)
        return Outputs(
            out, store, check_vector_output(out, vector, fmt, options.overwrite or options.resume), fmt
        )  # a resume's own
    return Outputs(out, store, None, None)


def check_vector_output(out: str | Path, vector: bool | str | Path, fmt: str, overwrite: bool) -> str | Path:
    """The checked polygon output: ``<probability stem>_polygons.<ext>`` beside ``out``, or the path/URL given.

    Raises:
        OutputError: an existing output without ``overwrite``, an unwritable folder or bucket.
    """
    if vector is True:
        name = default_vector_path(Path(name_of(out)), fmt).name
        target: str | Path = with_name(out, name)
    else:
        target = as_target(vector)  # type: ignore[arg-type]
    return _check_target(target, overwrite)


def _check_store(out: str | Path, overwrite: bool, resume: bool, discard: bool) -> tuple[str | Path, RunStore]:
    """The checked probability path (or URL) and its run store (see :func:`check_outputs`)."""
    store = RunStore(store_path_for(out))
    if resume:
        if not store.exists():
            done = " (the output is complete)" if output_exists(out) else ""
            raise OutputError(
                f"nothing to resume for {out}: no unfinished run in {store.folder}{done}; drop {option('resume')}"
            )
        return _check_target(out, True), store
    if store.present():
        if not overwrite:
            raise OutputError(
                f"an unfinished run of {out} is in {store.folder}; pass {option('resume')} to "
                f"continue it or {option('overwrite')} to discard it and start over"
            )
        if discard:
            store.remove()
    return _check_target(out, overwrite), store


def _check_target(out: str | Path, overwrite: bool) -> str | Path:
    """The checked output path or URL (see :func:`~sam2unext.geo.writing.cog.check_output`)."""
    return check_remote_output(str(out), overwrite) if is_url(out) else check_output(out, overwrite)


def remove_leftovers(out: str | Path, vector: str | Path | None) -> None:
    """Remove the temporary files a killed run of these outputs left beside them (a resume's own).

    Only the names this package makes for these outputs (:func:`leftover_temporaries`,
    :func:`leftover_vector_temporaries`) are removed; outputs at URLs are built in a scratch
    folder and leave nothing beside them.
    """
    found = [] if is_url(out) else leftover_temporaries(Path(out))
    if vector is not None and not is_url(vector):
        found += leftover_vector_temporaries(Path(vector))
    remove_quietly(*found)
