"""Build the installable plugin zip without make: ``python qgis_plugin/build_zip.py``.

Writes ``dist/sam2unext_geo_qgis.zip`` (repository root) with the single top-level folder
``sam2unext_geo/`` that QGIS's "Install from ZIP" and the plugin repository expect, and in it
``sam2unext_geo/wheels/sam2unext_geo-<version>-py3-none-any.whl``: the core built from this
checkout (``pip wheel --no-deps``), which the plugin's *Install* button puts into its own
environment. The wheel's version must equal the plugin's (metadata.txt) and pyproject.toml's.
``--wheel FILE`` uses a wheel built before instead of building one.
"""

from __future__ import annotations

import argparse
import configparser
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN = "sam2unext_geo"
SOURCE = HERE / PLUGIN
DEFAULT_OUTPUT = HERE.parent / "dist" / "sam2unext_geo_qgis.zip"
ROOT = HERE.parent
REQUIRED_METADATA = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "icon")
#: Fields plugins.qgis.org also requires; the project has no public repository yet, so they are
#: left out rather than filled with placeholders (the builder says so).
PUBLISHING_METADATA = ("email", "repository", "tracker")
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


def project_version(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """``[project] version`` of pyproject.toml."""
    match = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(encoding="utf-8"), flags=re.M)
    if not match:
        raise SystemExit(f"{pyproject} has no [project] version.")
    return match.group(1)


def build_wheel(folder: Path, project: Path = ROOT) -> Path:
    """``pip wheel --no-deps`` of the project into ``folder``; returns the wheel.

    Raises:
        SystemExit: pip failed (its last line is shown).
    """
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(folder), str(project)],
        capture_output=True,
        text=True,
    )
    wheels = sorted(folder.glob("sam2unext_geo-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr.strip().splitlines() or ["no wheel written"])[-1]
        raise SystemExit(f"pip wheel --no-deps {project} failed: {tail}")
    return wheels[-1]


def check_wheel(wheel: Path, version: str) -> None:
    """The wheel is sam2unext-geo at the plugin's version.

    Raises:
        SystemExit: another package or version (the installer would put a mismatched core in place).
    """
    parts = wheel.name.split("-")
    if len(parts) < 3 or parts[0] != "sam2unext_geo" or not wheel.name.endswith(".whl"):
        raise SystemExit(f"{wheel} is not a sam2unext-geo wheel.")
    if parts[1] != version:
        raise SystemExit(
            f"{wheel.name} is version {parts[1]} but the plugin is {version}; build the wheel "
            "from this checkout (omit --wheel) or bump metadata.txt and pyproject.toml together."
        )


def plugin_files(source: Path = SOURCE) -> list[Path]:
    """The files that go into the zip, sorted (no caches or editor leftovers)."""
    return sorted(
        p
        for p in source.rglob("*")
        if p.is_file()
        and not SKIP_DIRS.intersection(p.relative_to(source).parts)
        and p.suffix not in SKIP_SUFFIXES
        and not p.name.startswith(".")
    )


def build_zip(output: Path = DEFAULT_OUTPUT, source: Path = SOURCE, wheel: Path | None = None) -> Path:
    """Write the zip (deterministic order and timestamps) with the matching wheel; return its path."""
    meta = check_plugin(source)
    version = project_version()
    if meta["version"] != version:
        raise SystemExit(
            f"metadata.txt version {meta['version']} differs from pyproject.toml {version}; "
            "keep them equal so the plugin installs its own core."
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sam2unext_wheel_") as tmp:
        wheel = Path(wheel) if wheel else build_wheel(Path(tmp))
        check_wheel(wheel, version)
        files = [
            (f"{PLUGIN}/{p.relative_to(source).as_posix()}", p)
            for p in plugin_files(source)
            if "wheels" not in p.relative_to(source).parts
        ]
        files.append((f"{PLUGIN}/wheels/{wheel.name}", wheel))
        with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, path in files:
                info = zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, path.read_bytes())
    return output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--wheel",
        type=Path,
        default=None,
        help="a sam2unext-geo wheel built before (default: pip wheel --no-deps of this checkout)",
    )
    args = parser.parse_args(argv)
    out = build_zip(args.output, wheel=args.wheel)
    meta = check_plugin()
    with zipfile.ZipFile(out) as zf:
        wheel = next(n for n in zf.namelist() if n.endswith(".whl"))
    print(f"{out} ({out.stat().st_size // 1024} KiB): {meta['name']} {meta['version']} with {wheel}")
    missing = [k for k in PUBLISHING_METADATA if not meta.get(k)]
    if missing:
        print(
            f"note: metadata.txt has no {', '.join(missing)}: fine for Install from ZIP, required before "
            "uploading to plugins.qgis.org",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
