"""Build the installable plugin zip without make: ``python qgis_plugin/build_zip.py``.

Writes ``dist/sam2unext_geo_qgis.zip`` (repository root) with the single top-level folder
``sam2unext_geo/`` that QGIS's "Install from ZIP" and the plugin repository expect.
"""

from __future__ import annotations

import argparse
import configparser
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN = "sam2unext_geo"
SOURCE = HERE / PLUGIN
DEFAULT_OUTPUT = HERE.parent / "dist" / "sam2unext_geo_qgis.zip"
REQUIRED_METADATA = ("name", "qgisMinimumVersion", "description", "about", "version", "author",
                     "email", "repository", "tracker", "icon")
REQUIRED_FILES = ("__init__.py", "metadata.txt", "LICENSE", "icon.png")
SKIP_DIRS = {"__pycache__", ".pytest_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".swp"}


def check_plugin(source: Path = SOURCE) -> dict:
    """Validate the plugin folder; returns its ``[general]`` metadata.

    Raises:
        SystemExit: a required file or metadata field is missing (message names it).
    """
    for name in REQUIRED_FILES:
        if not (source / name).is_file():
            raise SystemExit(f"{source / name} is missing; the plugin repository requires it.")
    meta = configparser.ConfigParser()
    meta.read(source / "metadata.txt", encoding="utf-8")
    general = dict(meta["general"]) if meta.has_section("general") else {}
    missing = [k for k in REQUIRED_METADATA if not general.get(k.lower())]
    if missing:
        raise SystemExit(f"{source / 'metadata.txt'} lacks {', '.join(missing)} in [general].")
    if not (source / general["icon"]).is_file():
        raise SystemExit(f"metadata icon={general['icon']} does not exist in {source}.")
    return general


def plugin_files(source: Path = SOURCE) -> list[Path]:
    """The files that go into the zip, sorted (no caches or editor leftovers)."""
    return sorted(p for p in source.rglob("*")
                  if p.is_file() and not SKIP_DIRS.intersection(p.relative_to(source).parts)
                  and p.suffix not in SKIP_SUFFIXES and not p.name.startswith("."))


def build_zip(output: Path = DEFAULT_OUTPUT, source: Path = SOURCE) -> Path:
    """Write the zip (deterministic order and timestamps) and return its path."""
    check_plugin(source)
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in plugin_files(source):
            info = zipfile.ZipInfo(f"{PLUGIN}/{path.relative_to(source).as_posix()}", (2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    return output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    out = build_zip(args.output)
    meta = check_plugin()
    print(f"{out} ({out.stat().st_size // 1024} KiB): {meta['name']} {meta['version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
