"""The weights bundled with the package: the demo checkpoint and what it is worth.

Plain paths and words (no torch): the loader, ``load_model`` and the command all name the demo
weights through here.
"""

from __future__ import annotations

from pathlib import Path


def demo_weights_path() -> Path:
    """The bundled demo weights file (``demo.json`` beside it records how they were trained)."""
    return Path(__file__).resolve().parent / "demo.safetensors"


DEMO_NOTE = (
    "the demo weights were trained only on synthetic demo scenes (sam2unext-geo demo); they do not work on real imagery"
)
