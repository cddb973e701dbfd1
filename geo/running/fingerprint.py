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

from sam2unext.files import file_fingerprint

__all__ = [
    "describe_difference",
    "environment_fingerprint",
    "file_fingerprint",
    "model_fingerprint",
    "scene_fingerprint",
]


def scene_fingerprint(path: str | Path) -> dict[str, Any]:
    """What identifies a scene file's content wherever it lies: bytes and GDAL's header, not the path.

    Returns:
        ``{"size", "sample_hash", "header"}``; ``header`` holds width, height, band count,
        data types, nodata, CRS and transform as GDAL reads them. A GDAL expression whose bytes
        are not a local file (``/vsizip/...``) keeps its path in place of size and hash. (An
        object at a URL is fingerprinted by its size and version tag, see
        :func:`sam2unext.geo.running.scene.scene_manifest`.)
    """
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


def environment_fingerprint() -> dict[str, Any]:
    """Versions that can change pixels: this package, torch (when imported) and GDAL."""
    import rasterio

    from sam2unext import __version__

    out = {"sam2unext_geo": __version__, "gdal": rasterio.__gdal_version__}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.__version__
    return out
