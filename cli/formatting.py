"""Human-readable formatting of sizes, durations and tables (areas: ``sam2unext.geo.vectors.units.format_area``)."""

from __future__ import annotations

import sys

from sam2unext.geo.progress import format_seconds as seconds  # one duration format for the bar and the summary

__all__ = ["echo", "megabytes", "seconds", "table", "warn"]


def echo(message: str = "", *, err: bool = False) -> None:
    """Print one line to stdout (or stderr) and flush."""
    stream = sys.stderr if err else sys.stdout
    print(message, file=stream, flush=True)


def warn(message: str) -> None:
    """Print ``warning: <message>`` on stderr."""
    echo(f"warning: {message}", err=True)


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
