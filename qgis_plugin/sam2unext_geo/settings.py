"""Plugin settings kept in QgsSettings (so they survive sessions): executable and last dialog values."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsSettings

PREFIX = "sam2unext_geo/"
DEFAULTS = {
    "executable": "",
    "weights_mode": "preset",  # "preset" or "checkpoint"
    "preset": "demo",  # "demo" = bundled demo weights (--checkpoint demo)
    "checkpoint": "",
    "tile_size": 0,  # 0 = the model's input size
    "overlap": 0.25,
    "batch_size": 4,
    "device": "auto",
    "bands": "",
    "threshold": 0.5,
    "out_dir": "",
    "vector": True,
    "overwrite": False,
    "tta": "none",  # commands.TTA_MODES key
    "regularize": False,
    "regularize_tolerance": 0.0,  # metres; 0 = the command's default (two pixel sizes)
    "aoi_mode": "scene",  # "scene", "extent" or "selected"
}


def get(key: str) -> Any:
    """Read a setting, typed like its default."""
    default = DEFAULTS[key]
    value = QgsSettings().value(PREFIX + key, default)
    if isinstance(default, bool):
        return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")
    try:
        return type(default)(value)
    except (TypeError, ValueError):
        return default


def set(key: str, value: Any) -> None:  # noqa: A001 - mirrors QgsSettings
    """Store a setting."""
    if key not in DEFAULTS:
        raise KeyError(key)
    QgsSettings().setValue(PREFIX + key, value)


def executable_setting() -> str:
    """The configured ``sam2unext-geo`` path ('' → look on PATH)."""
    return get("executable").strip()
