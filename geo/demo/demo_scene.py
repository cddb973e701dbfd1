"""Procedural georeferenced demo scenes with a truth mask.

No real imagery or weights can be shipped, so the demo runs on scenes drawn here: textured
ground (fractal noise, crop fields with row stripes, roads, a sea with a sandy coast) and
salient objects (buildings with shadows, ships with wakes on the sea, ponds on land). The truth
mask is 1 on the salient objects and 0 elsewhere; it is rasterized from the same polygons that
paint the image, so it matches the picture pixel for pixel.

Scenes are in a projected CRS (UTM 33N by default) with square pixels, and are fully
determined by ``(size, seed)``. :mod:`sam2unext.geo.demo.demo_run` runs the model on them.

Example:
    >>> from sam2unext.geo.demo.demo_scene import write_demo_scene
    >>> scene_tif, truth_tif = write_demo_scene("demo_out", size=3072, seed=7)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from affine import Affine
from rasterio.features import rasterize
from scipy import ndimage
from shapely import affinity
from shapely.geometry import LineString, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from sam2unext.errors import OutputError, option

DEMO_CRS = "EPSG:32633"
DEMO_ORIGIN = (500_000.0, 5_400_000.0)  # upper-left corner, metres (UTM 33N, central Europe)
DEMO_PIXEL_SIZE = 0.5  # metres
DEMO_SIZE = 3072
DEMO_SEED = 2025

_CROP_COLOURS = np.array(
    [[104, 128, 64], [132, 150, 72], [170, 160, 96], [150, 122, 84], [92, 112, 60], [186, 176, 110]],
    dtype=np.float32,
)
_ROOF_COLOURS = np.array([[178, 84, 60], [206, 204, 206], [196, 120, 90], [226, 214, 186]], dtype=np.float32)
_HULL_COLOURS = np.array([[232, 232, 236], [214, 90, 60], [240, 200, 80]], dtype=np.float32)
_POND_COLOUR = np.array([40, 128, 132], dtype=np.float32)
_SEA_COLOUR = np.array([26, 52, 86], dtype=np.float32)
_SAND_COLOUR = np.array([198, 182, 136], dtype=np.float32)
_ROAD_COLOUR = np.array([98, 98, 104], dtype=np.float32)
_SHADOW_FACTOR = 0.45


@dataclass
class DemoScene:
    """A generated scene.

    Attributes:
        image: RGB pixels, uint8 ``(3, H, W)``.
        truth: salient-object mask, uint8 ``(H, W)`` with values 0/1.
        transform: affine pixel → CRS transform.
        crs: CRS as an ``EPSG:`` string.
        counts: number of buildings, ships and ponds drawn.
    """

    image: np.ndarray
    truth: np.ndarray
    transform: Affine
    crs: str
    counts: dict[str, int]


def fractal_noise(
    shape: tuple[int, int], rng: np.random.Generator, *, base: int = 4, octaves: int = 6, persistence: float = 0.55
) -> np.ndarray:
    """Sum of bilinearly upsampled random grids (value noise), scaled to [0, 1].

    Args:
        shape: output ``(H, W)``.
        rng: random generator.
        base: number of cells along the longer side at the coarsest octave.
        octaves: number of octaves; each doubles the frequency.
        persistence: amplitude ratio between successive octaves.

    Returns:
        float32 array of ``shape`` in [0, 1].
    """
    h, w = shape
    out = np.zeros(shape, dtype=np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        cells = base * 2**octave
        gh, gw = max(2, math.ceil(cells * h / max(h, w)) + 1), max(2, math.ceil(cells * w / max(h, w)) + 1)
        grid = torch.from_numpy(rng.random((gh, gw), dtype=np.float32))[None, None]
        layer = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
        out += amplitude * layer
        amplitude *= persistence
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


def _burn(geoms: list[BaseGeometry], shape: tuple[int, int], values: list[int] | None = None) -> np.ndarray:
    """Rasterize shapes given in pixel coordinates (x = column, y = row) into an int32 label image."""
    if not geoms:
        return np.zeros(shape, dtype=np.int32)
    values = values if values is not None else [1] * len(geoms)
    return rasterize(list(zip(geoms, values)), out_shape=shape, fill=0, dtype="int32", all_touched=False)


def _rotated_rect(cx: float, cy: float, length: float, width: float, angle: float) -> Polygon:
    rect = Polygon(
        [(-length / 2, -width / 2), (length / 2, -width / 2), (length / 2, width / 2), (-length / 2, width / 2)]
    )
    return affinity.translate(affinity.rotate(rect, angle, origin=(0, 0)), cx, cy)


def _hull(cx: float, cy: float, length: float, width: float, angle: float) -> Polygon:
    """A ship outline: a rectangle with a pointed bow."""
    bow = length * 0.22
    hull = Polygon(
        [
            (-length / 2, -width / 2),
            (length / 2 - bow, -width / 2),
            (length / 2, 0),
            (length / 2 - bow, width / 2),
            (-length / 2, width / 2),
        ]
    )
    return affinity.translate(affinity.rotate(hull, angle, origin=(0, 0)), cx, cy)


def _blob(cx: float, cy: float, radius: float, rng: np.random.Generator) -> Polygon:
    """An irregular round pond outline."""
    n = 40
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    wobble = np.zeros(n)
    for k in (2, 3, 5):
        wobble += rng.uniform(0.04, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r = radius * (1 + wobble)
    return Polygon(np.c_[cx + r * np.cos(theta), cy + r * np.sin(theta)]).buffer(0)


class _Placer:
    """Keeps placed footprints apart (with a margin) using a rebuilt-on-demand spatial index."""

    def __init__(self, margin: float):
        self.margin = margin
        self.shapes: list[BaseGeometry] = []

    def fits(self, geom: BaseGeometry, blockers: BaseGeometry | None = None) -> bool:
        grown = geom.buffer(self.margin)
        if blockers is not None and grown.intersects(blockers):
            return False
        if self.shapes:
            tree = STRtree(self.shapes)
            if len(tree.query(grown, predicate="intersects")):
                return False
        return True

    def add(self, geom: BaseGeometry) -> None:
        self.shapes.append(geom)


def generate_scene(
    size: int = DEMO_SIZE,
    *,
    seed: int = DEMO_SEED,
    pixel_size: float = DEMO_PIXEL_SIZE,
    crs: str = DEMO_CRS,
    origin: tuple[float, float] = DEMO_ORIGIN,
) -> DemoScene:
    """Draw one demo scene.

    Args:
        size: side length in pixels (the scene is square); at least 256.
        seed: random seed; the same ``(size, seed)`` gives the same scene.
        pixel_size: ground sampling distance in CRS units (metres).
        crs: projected CRS of the scene.
        origin: CRS coordinates of the upper-left corner.

    Returns:
        The :class:`DemoScene`.

    Raises:
        ValueError: if ``size`` is below 256.
    """
    if size < 256:
        raise ValueError(f"demo scene size must be at least 256 pixels, got {size}")
    rng = np.random.default_rng(seed)
    shape = (size, size)
    area = (size / 1024) ** 2
    scene = _ground(shape, rng)

    # Sea on one side of a noisy coastline, with a sandy beach.
    side = int(rng.integers(4))
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    along = np.broadcast_to(ramp[None, :] if side % 2 else ramp[:, None], shape)
    along = along if side < 2 else 1 - along
    coast = along + 0.18 * (fractal_noise(shape, rng, base=2, octaves=5) - 0.5)
    sea = coast > 0.74
    sand = (coast > 0.74 - 14 / size) & ~sea
    waves = fractal_noise(shape, rng, base=16, octaves=3)
    scene[sea] = _SEA_COLOUR + (waves[sea, None] - 0.5) * 18
    scene[sand] = _SAND_COLOUR + (waves[sand, None] - 0.5) * 20
    land = ~(sea | sand)
    sea_geom_mask = ndimage.binary_erosion(sea, iterations=24)

    # Roads: gently curved polylines across the land.
    roads, road_widths = [], []
    for _ in range(max(2, round(3 * math.sqrt(area)))):
        roads.append(_road_line(size, rng))
        road_widths.append(float(rng.uniform(9, 16)))
    road_polys = [r.buffer(w / 2, cap_style="flat") for r, w in zip(roads, road_widths)]
    road_mask = _burn(road_polys, shape) > 0
    road_mask &= land
    scene[road_mask] = _ROAD_COLOUR + (waves[road_mask, None] - 0.5) * 10
    road_union = _union(road_polys)

    placer = _Placer(margin=8)
    ships, ponds = [], []

    buildings = _place_buildings(round(30 * area), roads, road_widths, land, road_union, placer, rng)

    # Ponds on open land.
    for _ in range(max(1, round(4 * area))):
        for _try in range(40):
            cx, cy = rng.uniform(0, size, 2)
            poly = _blob(cx, cy, rng.uniform(28, 75), rng)
            if _inside(poly, land, size) and placer.fits(poly, road_union):
                placer.add(poly)
                ponds.append(poly)
                break

    # Ships well inside the sea.
    if sea_geom_mask.any():
        for _ in range(max(1, round(3 * area))):
            for _try in range(40):
                cx, cy = rng.uniform(0, size, 2)
                length = rng.uniform(60, 170)
                angle = rng.uniform(0, 360)
                poly = _hull(cx, cy, length, length * rng.uniform(0.2, 0.3), angle)
                if _inside(poly, sea_geom_mask, size) and placer.fits(poly):
                    placer.add(poly)
                    ships.append((poly, angle))
                    break

    _paint_objects(scene, shape, buildings, ships, ponds, rng)
    truth = (_burn([b for b, _ in buildings] + [s for s, _ in ships] + ponds, shape) > 0).astype(np.uint8)

    # A touch of optical blur and sensor noise.
    scene = ndimage.gaussian_filter(scene, sigma=(0.6, 0.6, 0))
    scene += rng.normal(0, 3.0, scene.shape).astype(np.float32)
    image = np.clip(scene, 0, 255).astype(np.uint8).transpose(2, 0, 1).copy()
    transform = Affine(pixel_size, 0, origin[0], 0, -pixel_size, origin[1])
    counts = {"buildings": len(buildings), "ships": len(ships), "ponds": len(ponds)}
    return DemoScene(image=image, truth=truth, transform=transform, crs=crs, counts=counts)


def _place_buildings(
    count: int,
    roads: list,
    road_widths: list[float],
    land: np.ndarray,
    road_union: BaseGeometry,
    placer: _Placer,
    rng: np.random.Generator,
) -> list[tuple[Polygon, float]]:
    """Up to ``count`` buildings (polygon, angle) on ``land``: mostly in rows along the roads,
    aligned with them; some scattered (30 tries each)."""
    buildings = []
    for _ in range(count):
        for _try in range(30):
            if rng.random() < 0.8:
                k = int(rng.integers(len(roads)))
                line = roads[k]
                s = rng.uniform(0, line.length)
                p, q = line.interpolate(s), line.interpolate(min(line.length, s + 1.0))
                angle = math.degrees(math.atan2(q.y - p.y, q.x - p.x + 1e-9))
                length, width = rng.uniform(34, 110), rng.uniform(30, 70)
                offset = road_widths[k] / 2 + width / 2 + rng.uniform(8, 40)
                sign = 1 if rng.random() < 0.5 else -1
                nx, ny = -math.sin(math.radians(angle)), math.cos(math.radians(angle))
                cx, cy = p.x + sign * offset * nx, p.y + sign * offset * ny
            else:
                cx, cy = rng.uniform(0, land.shape[0], 2)
                angle = rng.uniform(0, 180)
                length, width = rng.uniform(34, 110), rng.uniform(30, 70)
            poly = _rotated_rect(cx, cy, length, width, angle)
            if _inside(poly, land, land.shape[0]) and placer.fits(poly, road_union):
                placer.add(poly)
                buildings.append((poly, angle))
                break
    return buildings


def _ground(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Textured land: fractal grass/soil with Voronoi crop fields carrying row stripes."""
    h, w = shape
    low = fractal_noise(shape, rng, base=3, octaves=6)
    fine = fractal_noise(shape, rng, base=64, octaves=3)
    grass, soil = np.array([88, 112, 66], np.float32), np.array([142, 128, 94], np.float32)
    scene = grass + low[..., None] * (soil - grass) + (fine[..., None] - 0.5) * 26

    # Fields: nearest-seed parcels on a coarse grid, upsampled (blocky, fence-like borders).
    step = 4
    gh, gw = math.ceil(h / step), math.ceil(w / step)
    n_fields = max(6, round(18 * h * w / 1024**2))
    seeds = rng.uniform(0, 1, (n_fields, 2)) * (gh, gw)
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    best = np.full((gh, gw), np.inf, np.float32)
    label = np.zeros((gh, gw), np.int32)
    for i, (sy, sx) in enumerate(seeds):
        d = (yy - sy) ** 2 + (xx - sx) ** 2
        closer = d < best
        best[closer], label[closer] = d[closer], i
    label = np.repeat(np.repeat(label, step, 0), step, 1)[:h, :w]
    is_field = rng.random(n_fields) < 0.7
    colours = _CROP_COLOURS[rng.integers(len(_CROP_COLOURS), size=n_fields)]
    angles = rng.uniform(0, np.pi, n_fields)
    periods = rng.uniform(6, 14, n_fields)
    rows = np.arange(h, dtype=np.float32)[:, None]
    cols = np.arange(w, dtype=np.float32)[None, :]
    cos, sin = (np.cos(angles) / periods).astype(np.float32), (np.sin(angles) / periods).astype(np.float32)
    phase = cols * cos[label] + rows * sin[label]
    stripes = np.sin(2 * np.pi * phase) * 9
    field_px = is_field[label]
    scene[field_px] = colours[label[field_px]] + (stripes[field_px] + (fine[field_px] - 0.5) * 16)[:, None]
    return scene


def _road_line(size: int, rng: np.random.Generator) -> LineString:
    """A gently curved road crossing the scene from one edge to the opposite one."""
    t = np.linspace(-0.1, 1.1, 24)
    a, b = rng.uniform(0.1, 0.9, 2) * size
    bend = rng.uniform(-0.08, 0.08) * size
    main = t * size
    across = a + (b - a) * t + bend * np.sin(np.pi * t)
    xy = np.c_[main, across] if rng.random() < 0.5 else np.c_[across, main]
    return LineString(xy)


def _union(geoms: list[BaseGeometry]) -> BaseGeometry:
    from shapely import union_all

    return union_all(geoms)


def _inside(poly: BaseGeometry, allowed: np.ndarray, size: int) -> bool:
    """True if the footprint lies in the scene and every boundary vertex/centroid is on ``allowed``."""
    minx, miny, maxx, maxy = poly.bounds
    if minx < 4 or miny < 4 or maxx > size - 4 or maxy > size - 4:
        return False
    pts = np.asarray(poly.exterior.coords)
    c = poly.centroid
    pts = np.vstack([pts, [c.x, c.y]]).astype(int)
    return bool(allowed[pts[:, 1], pts[:, 0]].all())


def _paint_objects(
    scene: np.ndarray, shape: tuple[int, int], buildings: list, ships: list, ponds: list, rng: np.random.Generator
) -> None:
    """Paint shadows, wakes, buildings (two-tone pitched roofs), ships and ponds into ``scene``."""
    sun = (7.0, 6.0)
    shadows = [affinity.translate(b, *sun) for b, _ in buildings]
    shadow = _burn(shadows, shape) > 0
    scene[shadow] *= _SHADOW_FACTOR

    wakes = []
    for ship, angle in ships:
        # Wake: a faint lighter streak behind the stern, along the ship axis.
        c, length = ship.centroid, ship.length / 2.5
        dx, dy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        wakes.append(LineString([(c.x, c.y), (c.x - dx * length * 1.2, c.y - dy * length * 1.2)]).buffer(length * 0.08))
    wake = _burn(wakes, shape) > 0
    scene[wake] = scene[wake] * 0.85 + np.array([120, 140, 160], np.float32) * 0.15

    roof_colours = _ROOF_COLOURS[rng.integers(len(_ROOF_COLOURS), size=max(1, len(buildings)))]
    halves = []
    for poly, angle in buildings:
        c = poly.centroid
        # Darker half of a pitched roof: the building clipped to one side of its long axis.
        half = _rotated_rect(c.x, c.y, 400, 400, angle)
        half = affinity.translate(half, -200 * math.sin(math.radians(angle)), 200 * math.cos(math.radians(angle)))
        halves.append(poly.intersection(half))
    ids = _burn([b for b, _ in buildings], shape, list(range(1, len(buildings) + 1)))
    sel = ids > 0
    scene[sel] = roof_colours[ids[sel] - 1] + (rng.normal(0, 4, (int(sel.sum()), 1))).astype(np.float32)
    dark = (_burn([h for h in halves if not h.is_empty], shape) > 0) & sel
    scene[dark] *= 0.82

    hull_colours = _HULL_COLOURS[rng.integers(len(_HULL_COLOURS), size=max(1, len(ships)))]
    ids = _burn([s for s, _ in ships], shape, list(range(1, len(ships) + 1)))
    sel = ids > 0
    scene[sel] = hull_colours[ids[sel] - 1]
    cabins = [affinity.scale(s, 0.35, 0.35, origin="centroid") for s, _ in ships]
    cabin = (_burn(cabins, shape) > 0) & sel
    scene[cabin] = np.array([70, 74, 84], np.float32)

    sel = _burn(ponds, shape) > 0
    ripple = fractal_noise(shape, rng, base=32, octaves=2)
    scene[sel] = _POND_COLOUR + (ripple[sel, None] - 0.5) * 14


def tiled_profile(height: int, width: int, crs: Any, transform: Affine) -> dict[str, Any]:
    """The GeoTIFF profile of the generated demo rasters (256 px DEFLATE tiles), without band count and type."""
    return dict(
        driver="GTiff",
        width=width,
        height=height,
        crs=crs,
        transform=transform,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
    )


def write_scene(scene: DemoScene, image_path: str | Path, truth_path: str | Path | None = None) -> None:
    """Write the scene as a tiled, compressed RGB GeoTIFF, and optionally its truth mask.

    Args:
        scene: a :class:`DemoScene`.
        image_path: output GeoTIFF for the image (3 bands, uint8).
        truth_path: output GeoTIFF for the truth mask (1 band, uint8 0/1), or None.
    """
    _, h, w = scene.image.shape
    profile = tiled_profile(h, w, scene.crs, scene.transform)
    with rasterio.open(image_path, "w", count=3, dtype="uint8", photometric="RGB", **profile) as dst:
        dst.write(scene.image)
        dst.update_tags(source="sam2unext-geo procedural demo scene (synthetic)")
    if truth_path is not None:
        with rasterio.open(truth_path, "w", count=1, dtype="uint8", **profile) as dst:
            dst.write(scene.truth, 1)
            dst.update_tags(source="sam2unext-geo demo truth: 1 = building, ship or pond")


def write_demo_scene(
    folder: str | Path, *, size: int = DEMO_SIZE, seed: int = DEMO_SEED, overwrite: bool = False
) -> tuple[Path, Path]:
    """Generate a scene and write ``demo_scene.tif`` and ``demo_truth.tif`` into ``folder``.

    Args:
        folder: output folder (created if missing).
        size: scene side in pixels.
        seed: random seed.
        overwrite: replace existing files.

    Returns:
        ``(scene_path, truth_path)``.

    Raises:
        OutputError: if the folder cannot be created or written, or a file exists and
            ``overwrite`` is False.
    """
    folder = Path(folder)
    scene_path, truth_path = folder / "demo_scene.tif", folder / "demo_truth.tif"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder}: {exc.strerror}; choose another with -o") from None
    for path in (scene_path, truth_path):
        if path.exists() and not overwrite:
            raise OutputError(f"{path} already exists; pass {option('overwrite')} or choose another folder")
    if not _writable(folder):
        raise OutputError(f"output folder {folder} is not writable; choose another with -o")
    write_scene(generate_scene(size, seed=seed), scene_path, truth_path)
    return scene_path, truth_path


def _writable(folder: Path) -> bool:
    import os

    return os.access(folder, os.W_OK | os.X_OK)
