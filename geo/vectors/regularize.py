"""Building-style regularization: staircase pixel outlines → straight walls at right angles.

Each polygon is handled in a local metric frame (see :class:`~sam2unext.geo.vectors.units.LocalFrames`),
so the tolerance is in metres and right angles are right angles on the ground:

1. **Coarse outline**: Douglas-Peucker with the tolerance removes the pixel staircase; its
   vertices are vertices of the traced outline.
2. **Dominant direction**: the length-weighted mean of the coarse edges' directions modulo 90°
   (a circular mean of four times the angle).
3. **Snapping**: in the frame turned to that direction, consecutive coarse edges within
   :data:`ANGLE_TOLERANCE` of horizontal (or vertical) form one wall; a wall's position is the
   mean position of the traced outline it covers (``∫ y dx / ∫ dx``: the staircase's area is
   balanced on both sides), so the area is kept. Other edges stay as sloped walls (a line fitted
   to their stretch of outline). Walls shorter than the tolerance are dropped; corners are the
   intersections of consecutive walls. Holes are squared in the same frame.
4. **Fallbacks**: a snapped outline that is invalid or matches the traced one poorly
   (IoU below :data:`MIN_IOU`) is replaced by the minimum rotated rectangle when that matches
   well, else the polygon is kept as traced. No polygon disappears.

:func:`resolve_overlaps` then keeps the polygons apart: squared neighbours that would overlap
(e.g. an island in a courtyard) go back to their traced outlines, which never overlap.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import Polygon

from sam2unext.errors import InputError, option

__all__ = ["check_regularize", "dominant_angle", "regularize_polygon", "regularize_polygons", "resolve_overlaps"]

#: Edges within this many degrees of the dominant directions snap to them.
ANGLE_TOLERANCE = 20.0
#: A squared (or rectangle) outline is kept only when its IoU with the traced outline reaches this.
MIN_IOU = 0.8
#: A sloped wall (neither along nor across the dominant direction) is kept only when it is this
#: many tolerances long (shorter ones are noise at a corner).
SLOPED_WALL = 3.0
#: Consecutive sloped walls closer than this in direction (degrees) meet at their shared vertex.
PARALLEL = 10.0


def check_regularize(regularize: bool | float | None) -> float | bool:
    """The ``regularize`` option: False (off), True (default tolerance) or a tolerance in metres (> 0).

    Raises:
        InputError: a tolerance that is not a positive number.
    """
    if regularize is None or regularize is False or regularize is True:
        return bool(regularize)
    try:
        tolerance = float(regularize)
    except (TypeError, ValueError):
        tolerance = math.nan
    if not tolerance > 0:
        raise InputError(
            f"{option('regularize', regularize)} must be True (tolerance: two pixel sizes), False or a positive "
            "tolerance in metres"
        )
    return tolerance


def dominant_angle(coords: np.ndarray) -> float:
    """The dominant wall direction of a closed ring ``[N, 2]`` (first = last), in radians in [0, π/2)."""
    d = np.diff(coords, axis=0)
    length = np.hypot(d[:, 0], d[:, 1])
    four = 4.0 * np.arctan2(d[:, 1], d[:, 0])
    angle = math.atan2(float((length * np.sin(four)).sum()), float((length * np.cos(four)).sum())) / 4.0
    return angle % (math.pi / 2)


def _rotate(xy: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return xy @ np.array([[c, s], [-s, c]])


def _span(dense: np.ndarray, start: int, end: int) -> np.ndarray:
    """Vertices ``start..end`` of the open ring ``dense`` (wrapping around)."""
    if end >= start:
        return dense[start : end + 1]
    return np.concatenate([dense[start:], dense[: end + 1]])


def _level(points: np.ndarray, axis: int) -> float:
    """Position of a horizontal (axis 1: y) or vertical (axis 0: x) wall through a traced stretch.

    ``∫ y dx / ∫ dx`` along the stretch (the area between the staircase and the wall is balanced);
    the length-weighted mean of the segment midpoints when the stretch doubles back.
    """
    along, across = points[:, 1 - axis], points[:, axis]
    step = np.diff(along)
    mid = (across[1:] + across[:-1]) / 2
    total = float(step.sum())
    seg = np.hypot(np.diff(points[:, 0]), np.diff(points[:, 1]))
    if seg.sum() == 0:
        return float(across.mean())
    if abs(total) >= 0.5 * float(seg.sum()):
        return float((mid * step).sum() / total)
    return float((mid * seg).sum() / seg.sum())


def _fit_line(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A point and a unit direction of the total-least-squares line through ``points``
    (the principal axis of their 2 x 2 covariance, in closed form), pointing from first to last."""
    centre = points.mean(axis=0)
    if len(points) < 2:
        return centre, np.array([1.0, 0.0])
    d = points - centre
    sxx, syy, sxy = float(d[:, 0] @ d[:, 0]), float(d[:, 1] @ d[:, 1]), float(d[:, 0] @ d[:, 1])
    theta = 0.5 * math.atan2(2.0 * sxy, sxx - syy)
    direction = np.array([math.cos(theta), math.sin(theta)])
    chord = points[-1] - points[0]
    if direction @ chord < 0:
        direction = -direction
    return centre, direction


def _intersect(p1: np.ndarray, d1: np.ndarray, p2: np.ndarray, d2: np.ndarray) -> np.ndarray | None:
    cross = d1[0] * d2[1] - d1[1] * d2[0]
    if abs(cross) < math.sin(math.radians(PARALLEL)):
        return None
    t = ((p2[0] - p1[0]) * d2[1] - (p2[1] - p1[1]) * d2[0]) / cross
    return p1 + t * d1


def _kind(angle: float) -> str:
    """``H``, ``V`` or ``D`` (sloped) for a direction in radians (the frame's axes are the walls')."""
    angle %= math.pi
    tol = math.radians(ANGLE_TOLERANCE)
    if min(angle, math.pi - angle) <= tol:
        return "H"
    return "V" if abs(angle - math.pi / 2) <= tol else "D"


def _wall_points(dense: np.ndarray, coarse: np.ndarray, wall: list) -> np.ndarray:
    return _span(dense, int(coarse[wall[1]]), int(coarse[(wall[2] + 1) % len(coarse)]))


def _walls(dense: np.ndarray, coarse: np.ndarray) -> list[list]:
    """The walls ``[kind, first coarse edge, last coarse edge]`` of a ring in a frame turned to its walls."""
    m = len(coarse)
    ends = dense[coarse], dense[np.roll(coarse, -1)]
    d = ends[1] - ends[0]
    walls = _merge_runs([[_kind(math.atan2(dy, dx)), i, i] for i, (dx, dy) in enumerate(d)])
    # a sloped edge whose stretch of outline runs along an axis after all joins that axis
    for w in walls:
        if w[0] == "D" and m:
            _, direction = _fit_line(_wall_points(dense, coarse, w))
            w[0] = _kind(math.atan2(direction[1], direction[0]))
    return _merge_runs(walls)


def wall_correction(dense: np.ndarray, coarse: np.ndarray, walls: list[list], tolerance: float) -> float:
    """The turn (radians) that best aligns the H and V walls' fitted lines with the axes.

    Each wall's line is fitted to its stretch of outline without the ``tolerance`` nearest each
    end (the corners' rounding); walls are weighted by their length.
    """
    num = den = 0.0
    for w in walls:
        if w[0] == "D":
            continue
        points = _wall_points(dense, coarse, w)
        ends = np.minimum(np.hypot(*(points - points[0]).T), np.hypot(*(points - points[-1]).T))
        points = points[ends >= tolerance]
        if len(points) < 3:
            continue
        _, d = _fit_line(points)
        off = math.atan2(math.sin(4 * math.atan2(d[1], d[0])), math.cos(4 * math.atan2(d[1], d[0]))) / 4
        weight = float(np.hypot(*(points[-1] - points[0])))
        num, den = num + weight * off, den + weight
    return num / den if den > 0 else 0.0


def _square_ring(dense: np.ndarray, coarse: np.ndarray, tolerance: float) -> np.ndarray | None:
    """Squared vertices (open ring) of a traced ring, in a frame where the walls are horizontal/vertical.

    Args:
        dense: the traced ring's vertices, open (no repeated last vertex).
        coarse: indexes into ``dense`` of the coarse outline's vertices, in ring order.
        tolerance: walls shorter than this are dropped.

    Returns:
        The corners, or None when fewer than three walls remain.
    """
    if len(coarse) < 3:
        return None
    walls = _walls(dense, coarse)
    if len(walls) < 3:
        return None
    cache: dict = {}
    for _ in range(2 * len(walls)):
        found = _corners(dense, coarse, walls, cache)
        if found is None:
            return None
        corners, chords = found
        # wall k runs corner k → k+1; its length counts along its traced direction, so that a wall
        # turned back on itself (a zigzag between corners) is negative and goes first
        step = np.roll(corners, -1, axis=0) - corners
        norm = np.hypot(*chords.T)
        lengths = np.where(norm > 0, (step * chords).sum(1) / np.where(norm > 0, norm, 1), np.hypot(*step.T))
        lengths = np.minimum(lengths, norm)  # and a wall is no longer than the outline it stands for
        shortest = np.array([tolerance * (SLOPED_WALL if w[0] == "D" else 1.0) for w in walls])
        short = int(np.argmin(lengths / shortest))
        if lengths[short] >= shortest[short] or len(walls) <= 4:
            return corners
        walls = _drop_wall(walls, short)
        if len(walls) < 3:
            return None
    return None


def _merge_runs(walls: list[list]) -> list[list]:
    """Consecutive H/H or V/V walls (around the ring) as one wall."""
    out: list[list] = []
    for w in walls:
        if out and w[0] != "D" and out[-1][0] == w[0]:
            out[-1][2] = w[2]
        else:
            out.append(list(w))
    if len(out) > 1 and out[0][0] == out[-1][0] != "D":
        out[0][1] = out[-1][1]
        out.pop()
    return out


def _drop_wall(walls: list[list], k: int) -> list[list]:
    """``walls`` without wall ``k``; its neighbours merge when they run along the same axis."""
    n = len(walls)
    p, q = (k - 1) % n, (k + 1) % n
    if p != q and walls[p][0] == walls[q][0] != "D":
        merged = [walls[p][0], walls[p][1], walls[q][2]]
        return [merged if i == p else w for i, w in enumerate(walls) if i not in (k, q)]
    return [w for i, w in enumerate(walls) if i != k]


def _wall_line(dense: np.ndarray, coarse: np.ndarray, wall: tuple) -> tuple:
    """(point, direction, traced stretch, chord) of one wall's line."""
    kind, first, last = wall
    points = _span(dense, int(coarse[first]), int(coarse[(last + 1) % len(coarse)]))
    chord = points[-1] - points[0]
    if kind == "H":
        return np.array([0.0, _level(points, 1)]), np.array([1.0, 0.0]), points, chord
    if kind == "V":
        return np.array([_level(points, 0), 0.0]), np.array([0.0, 1.0]), points, chord
    p, d = _fit_line(points)
    return p, d, points, chord


def _corners(
    dense: np.ndarray, coarse: np.ndarray, walls: list[list], cache: dict | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """The corners (corner k starts wall k) and each wall's traced chord (end - start of its stretch).

    ``cache``: lines of walls already fitted, by wall (the drop loop refits only new walls).
    """
    cache = {} if cache is None else cache
    lines = []
    for w in walls:
        key = tuple(w)
        if key not in cache:
            cache[key] = _wall_line(dense, coarse, key)
        lines.append(cache[key])
    corners = []
    for k in range(len(lines)):
        p1, d1, before, _ = lines[k - 1]
        p2, d2, _, _ = lines[k]
        x = _intersect(p1, d1, p2, d2)
        corners.append(before[-1] if x is None else x)
    out = np.array(corners)
    return (out, np.array([line[3] for line in lines])) if np.isfinite(out).all() else None


def _coarse_indexes(dense: np.ndarray, coarse: np.ndarray) -> np.ndarray | None:
    """Indexes in ``dense`` of the coarse vertices (a subset, in ring order), or None."""
    where: dict[tuple[float, float], list[int]] = {}
    for i, (x, y) in enumerate(dense.tolist()):
        where.setdefault((x, y), []).append(i)
    found = []
    start = 0
    for x, y in coarse.tolist():
        hits = where.get((x, y))
        if not hits:
            return None
        idx = next((h for h in hits if h >= start), hits[0])
        found.append(idx)
        start = idx
    return np.array(found) if len(set(found)) == len(found) and len(dense) >= 3 else None


def _squared(ring: np.ndarray, coarse: np.ndarray, angle: float, tolerance: float) -> np.ndarray | None:
    """Squared corners of one traced ring (closed ``[N, 2]``) given its coarse outline's vertices."""
    dense = ring[:-1]
    if len(coarse) < 4 or len(dense) < 3:
        return None
    idx = _coarse_indexes(dense, coarse[:-1])
    if idx is None:
        return None
    corners = _square_ring(_rotate(dense, -angle), idx, tolerance)
    return None if corners is None or len(corners) < 3 else _rotate(corners, angle)


def refined_angle(ring: np.ndarray, coarse: np.ndarray, angle: float, tolerance: float) -> float:
    """``angle`` corrected by the fitted directions of the ring's walls (see :func:`wall_correction`)."""
    dense = ring[:-1]
    idx = _coarse_indexes(dense, coarse[:-1]) if len(coarse) >= 4 and len(dense) >= 3 else None
    if idx is None:
        return angle
    turned = _rotate(dense, -angle)
    return angle + wall_correction(turned, idx, _walls(turned, idx), tolerance)


def _rings(geoms: np.ndarray, tolerance: float) -> tuple[list[list[np.ndarray]], list[list[np.ndarray]]]:
    """Per polygon: its rings' coordinates (shell first) and their coarse outlines (Douglas-Peucker)."""
    rings, owner = shapely.get_rings(geoms, return_index=True)
    coarse = shapely.simplify(rings, tolerance)
    dense_xy, dense_i = shapely.get_coordinates(rings, return_index=True)
    coarse_xy, coarse_i = shapely.get_coordinates(coarse, return_index=True)
    dense_split = np.split(dense_xy, np.searchsorted(dense_i, np.arange(1, len(rings))))
    coarse_split = np.split(coarse_xy, np.searchsorted(coarse_i, np.arange(1, len(rings))))
    dense_by: list[list[np.ndarray]] = [[] for _ in range(len(geoms))]
    coarse_by: list[list[np.ndarray]] = [[] for _ in range(len(geoms))]
    for k, g in enumerate(owner):
        dense_by[g].append(dense_split[k])
        coarse_by[g].append(coarse_split[k])
    return dense_by, coarse_by


def _square(dense: list[np.ndarray], coarse: list[np.ndarray], tolerance: float) -> Polygon | None:
    """The snapped polygon of one traced polygon's rings, or None."""
    if not dense or len(coarse[0]) < 4:
        return None
    angle = refined_angle(dense[0], coarse[0], dominant_angle(coarse[0]), tolerance)
    outer = _squared(dense[0], coarse[0], angle, tolerance)
    if outer is None:
        return None
    holes = []
    for ring, c in zip(dense[1:], coarse[1:]):
        h = _squared(ring, c, angle, tolerance)
        if h is not None and shapely.is_valid(shapely.polygons(h)):
            holes.append(h)
    candidate = Polygon(outer, holes)
    if holes and not candidate.is_valid:
        candidate = Polygon(outer)
    return candidate


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of each pair; pairs whose areas alone rule out :data:`MIN_IOU` are not intersected (0)."""
    area_a, area_b = shapely.area(a), shapely.area(b)
    bound = np.minimum(area_a, area_b) / np.maximum(np.maximum(area_a, area_b), 1e-300)  # IoU <= smaller / larger
    out = np.zeros(len(a))
    todo = bound >= MIN_IOU
    if todo.any():
        inter = shapely.area(shapely.intersection(a[todo], b[todo]))
        union = area_a[todo] + area_b[todo] - inter
        out[todo] = np.divide(inter, union, out=np.zeros(len(inter)), where=union > 0)
    return out


def regularize_polygons(geoms: np.ndarray, tolerance: float) -> np.ndarray:
    """Each polygon (metric frames) squared, else its minimum rotated rectangle, else itself; order kept.

    Args:
        geoms: valid polygons, coordinates in metres (local frames).
        tolerance: metres; outline details smaller than this are removed.
    """
    geoms = np.asarray(geoms, dtype=object)
    out = geoms.copy()
    if not len(geoms) or tolerance <= 0:
        return out
    dense, coarse = _rings(geoms, tolerance)
    squared = np.array([_square(d, c, tolerance) for d, c in zip(dense, coarse)], dtype=object)
    made = np.array([g is not None for g in squared], dtype=bool)
    ok = np.zeros(len(geoms), dtype=bool)
    if made.any():
        cand = squared[made]
        good = shapely.is_valid(cand) & (shapely.area(cand) > 0)
        # compared with the coarse outline (within the tolerance of the traced one, and far
        # cheaper to intersect than a pixel staircase), or the traced one where that is invalid
        reference = shapely.simplify(geoms[made][good], tolerance)
        broken = ~shapely.is_valid(reference)
        reference[broken] = geoms[made][good][broken]
        good[good] = _iou(cand[good], reference) >= MIN_IOU
        ok[np.nonzero(made)[0][good]] = True
        out[ok] = squared[ok]
    rest = np.nonzero(~ok & (shapely.area(geoms) > 0))[0]
    if len(rest):
        rect = shapely.minimum_rotated_rectangle(geoms[rest])
        # the rectangle holds the polygon: their IoU is the ratio of their areas
        fits = (shapely.get_type_id(rect) == 3) & (shapely.area(rect) > 0)
        fits[fits] = shapely.area(geoms[rest][fits]) / shapely.area(rect[fits]) >= MIN_IOU
        out[rest[fits]] = rect[fits]
    return out


def regularize_polygon(poly: Polygon, tolerance: float) -> Polygon:
    """One polygon through :func:`regularize_polygons`."""
    return regularize_polygons(np.array([poly], dtype=object), tolerance)[0]


def resolve_overlaps(squared: np.ndarray, traced: np.ndarray, *, max_rounds: int = 8) -> np.ndarray:
    """``squared`` where no two polygons overlap: each polygon of an overlapping pair goes back to ``traced``.

    ``traced`` (the polygons before squaring, in the same order and frame) must not overlap each
    other, as polygons traced from one raster never do. Touching is allowed.
    """
    out = np.array(squared, dtype=object)
    if len(out) < 2:
        return out
    changed = np.ones(len(out), dtype=bool)
    for _ in range(max_rounds):
        tree = shapely.STRtree(out)
        left, right = tree.query(out[changed], predicate="intersects")
        left = np.nonzero(changed)[0][left]
        pairs = left != right
        left, right = left[pairs], right[pairs]
        if not len(left):
            return out
        overlap = shapely.area(shapely.intersection(out[left], out[right]))
        scale = np.minimum(shapely.area(out[left]), shapely.area(out[right]))
        bad = overlap > 1e-9 * scale
        if not bad.any():
            return out
        revert = np.unique(np.concatenate([left[bad], right[bad]]))
        changed = np.zeros(len(out), dtype=bool)
        changed[revert] = True
        out[revert] = traced[revert]
    bad_all = np.zeros(len(out), dtype=bool)
    tree = shapely.STRtree(traced)
    left, right = tree.query(out, predicate="intersects")
    keep = left != right
    bad_all[left[keep]] = True
    out[bad_all] = traced[bad_all]
    return out
