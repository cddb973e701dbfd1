"""Fingerprints of a run's inputs: the scene file, the weights, the parameters that change pixels.

A resumed run must compute exactly what the interrupted one would have, so the run store's
manifest records these and a resume compares them. A scene is fingerprinted by its content,
never its path: size, a hash of sampled bytes (the header and a few spread-out blocks) and
GDAL's view of it (size, bands, types, CRS, transform), so a 100 GB mosaic is fingerprinted
in milliseconds and a run folder moved or mounted elsewhere is still resumed; models by their
weights.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
from pathlib import Path
from typing import Any

from sam2unext.errors import option
from sam2unext.files import file_fingerprint
from sam2unext.geo.reading.array_raster import ArraySource

__all__ = [
    "describe_difference",
    "environment_fingerprint",
    "file_fingerprint",
    "model_fingerprint",
    "resume_refusal",
    "scene_fingerprint",
]

#: Manifest fields a user sets with one option: (field, option, how the option writes the value).
#: In the order a refusal names them: the tile size before the overlap in pixels that follows it.
OPTION_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("tiles.tile_size", "tile_size", "{}"),
    ("tiles.overlap_px", "overlap", "{}px"),
    ("chunk_size", "chunk_size", "{}"),
    ("out_dtype", "out_dtype", "{}"),
)
#: A differing part of the manifest no single option sets: (what differs, how to continue instead).
PARTS = {
    "input": ("the scene's content differs from the one it was started on", "rerun on that scene"),
    "weights": ("the model's weights or settings differ from those it was started with", "rerun with those weights"),
    "environment": (
        "it was started by another version of sam2unext-geo, torch or GDAL",
        "finish it with that version",
    ),
    "aoi": ("it was started with another area of interest", "rerun with that area"),
    "grid": (
        "the scene's grid, bands, stretch or resolution differ from those it was started with",
        "rerun with those options",
    ),
}


def scene_fingerprint(path: str | Path | ArraySource) -> dict[str, Any]:
    """What identifies a scene file's content wherever it lies: bytes and GDAL's header, not the path.

    A dask-backed array is fingerprinted by its graph's name and its header
    (:meth:`~sam2unext.geo.reading.array_raster.ArraySource.fingerprint`): no pixel is computed.

    Returns:
        ``{"size", "sample_hash", "header"}``; ``header`` holds width, height, band count,
        data types, nodata, CRS and transform as GDAL reads them. A GDAL expression whose bytes
        are not a local file (``/vsizip/...``) keeps its path in place of size and hash. (An
        object at a URL is fingerprinted by its size and version tag, see
        :func:`sam2unext.geo.running.scene.scene_manifest`.)
    """
    if isinstance(path, ArraySource):
        return path.fingerprint()
    text = str(path)
    return {**file_fingerprint(text), "header": _header(text)}


def _header(text: str) -> dict[str, Any]:
    """GDAL's view of the scene: size, bands, data types, nodata, CRS and transform."""
    import rasterio

    with rasterio.open(text) as src:
        return {
            "width": src.width,
            "height": src.height,
            "count": src.count,
            "dtypes": list(src.dtypes),
            "nodata": None if src.nodata is None else repr(src.nodata),
            "crs": src.crs.to_wkt() if src.crs else None,
            "transform": list(src.transform)[:6],
        }


def _tensor_digest(state: dict) -> str:
    import torch

    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in state.items():
        digest.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        digest.update(str(t.dtype).encode())
        digest.update(repr(tuple(t.shape)).encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def model_fingerprint(model: object) -> dict[str, Any]:
    """What identifies the weights and numerics of a model, a model factory or a stand-in.

    Uses, in order: the object's own ``fingerprint()``; a torch module's weights, device and
    compute precision; the pickled object; its type name.
    """
    own = getattr(model, "fingerprint", None)
    if callable(own):
        return own()
    if hasattr(model, "state_dict") and callable(model.state_dict):
        first = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
        return {
            "weights": _tensor_digest(model.state_dict()),
            "type": type(model).__name__,
            "device": str(first.device.type) if first is not None else "cpu",
            "precision": str(getattr(model, "inference_dtype", "float32")),
        }
    try:
        return {"pickle": hashlib.blake2b(pickle.dumps(model), digest_size=16).hexdigest()}
    except Exception:  # noqa: BLE001 (an unpicklable stand-in: its type is all we can name)
        return {"type": f"{type(model).__module__}.{type(model).__qualname__}"}


def describe_difference(old: dict, new: dict, prefix: str = "") -> str | None:
    """The first key (dotted path) whose value differs between two manifests, or None."""
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = describe_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}"
    return None


def _field(manifest: dict, dotted: str) -> Any:
    for key in dotted.split("."):
        manifest = manifest.get(key) if isinstance(manifest, dict) else None  # type: ignore[assignment]
    return manifest


def resume_refusal(found: dict, expected: dict) -> str | None:
    """Why a run store with manifest ``found`` cannot be resumed by a run with ``expected``, or None.

    An option the user changed is named with the value the run was started with, so the
    message says exactly how to continue it; other differences name what differs. Either way
    the other way out is to start over (overwrite instead of resume).
    """
    start_over = f"or rerun with {option('overwrite')} instead of {option('resume')} to start over"
    for dotted, name, written in OPTION_FIELDS:
        was, now = _field(found, dotted), _field(expected, dotted)
        if was != now and was is not None:
            started = option(name, written.format(was) if written != "{}" else was)
            this = option(name, written.format(now) if written != "{}" else now)
            return (
                f"it was started with {started}, this run has {this}; rerun with {option('resume')} {started} "
                f"to continue it, {start_over}"
            )
    differs = describe_difference(found, expected)
    if differs is None:
        return None
    what, advice = PARTS.get(
        differs.split(".")[0], (f"its {differs} differs from this run's", "rerun with the options it was started with")
    )
    return f"{what} ({differs}); {advice} to continue it, {start_over}"


def environment_fingerprint() -> dict[str, Any]:
    """Versions that can change pixels: this package, torch (when imported) and GDAL."""
    import rasterio

    from sam2unext import __version__

    out = {"sam2unext_geo": __version__, "gdal": rasterio.__gdal_version__}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.__version__
    return out
