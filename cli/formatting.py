"""Human-readable formatting of sizes, areas, durations and result summaries."""

from __future__ import annotations

import sys
from pathlib import Path

from sam2unext.geo.progress import format_seconds as seconds  # one duration format for the bar and the summary

__all__ = ["area", "echo", "linear_units_of", "megabytes", "seconds", "table", "warn"]


def echo(message: str = "", *, err: bool = False) -> None:
    """Print one line to stdout (or stderr) and flush."""
    stream = sys.stderr if err else sys.stdout
    print(message, file=stream, flush=True)


def warn(message: str) -> None:
    """Print ``warning: <message>`` on stderr."""
    echo(f"warning: {message}", err=True)


def area(value: float, linear_units: str | None) -> str:
    """An area in map units: ``m²``/``ha``/``km²`` for metre CRSs, else ``<n> <unit>²``."""
    if linear_units in ("metre", "meter", "m"):
        if value < 10_000:
            return f"{value:,.0f} m²"
        if value < 1_000_000:
            return f"{value / 10_000:,.2f} ha"
        return f"{value / 1_000_000:,.3f} km²"
    unit = linear_units or "map unit"
    return f"{value:,.6g} {unit}²"


def linear_units_of(raster: str | Path) -> str | None:
    """The CRS linear unit name of a raster (``"metre"``, ``"degree"``), ``"pixel"`` for a raster
    without georeferencing (its polygons are in pixel units), or None when unknown."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(raster)
        with ds:
            if ds.crs is None and ds.transform.is_identity:
                return "pixel"
            if ds.crs is None or ds.crs.is_geographic:
                return "degree" if ds.crs is not None else None
            return ds.crs.linear_units
    except Exception:  # a summary must not fail the run
        return None


def megabytes(n_bytes: int) -> str:
    """``12.3 MB``."""
    return f"{n_bytes / 1e6:.1f} MB"


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain left-aligned text table."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)
