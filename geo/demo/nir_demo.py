"""A generated 4-band (red, green, blue, near-infrared) scene where some targets show only in NIR.

Targets are roofs. Half of them are red tiles (visible in colour); the other half are painted
green with exactly the colour statistics of the grass around them, and differ from it only in
the near-infrared band (grass reflects NIR strongly, paint does not). Green fields of the same
shapes and sizes as the roofs, with grass's NIR, are scattered as decoys, so shape does not
give the painted roofs away either. An RGB model cannot find the painted roofs; an RGB+NIR
model can. Values are surface reflectance x 10 000 in uint16 (as Sentinel-2 L2A), or scaled
to uint8.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

#: Mean reflectance x 10 000 of each material in bands (red, green, blue, nir).
MATERIALS = {
    "grass": (450.0, 900.0, 350.0, 3800.0),
    "soil": (1600.0, 1350.0, 1050.0, 2300.0),
    "red_roof": (2600.0, 950.0, 750.0, 1700.0),
    "green_roof": (450.0, 900.0, 350.0, 1100.0),  # grass's colour, not its NIR
}
#: Relative per-pixel noise of every material (the same for all, so texture tells nothing).
NOISE = 0.08
BAND_NAMES = ("red", "green", "blue", "nir")


@dataclass
class NirScene:
    """A generated scene: ``data [4, H, W]``, ``truth [H, W]`` (1 = roof), roof polygons,
    which roofs are painted green, georeferencing."""

    data: np.ndarray
    truth: np.ndarray
    roofs: list
    painted: list[bool]
    transform: Affine
    crs: str


def _smooth_field(shape: tuple[int, int], rng: np.random.Generator, cells: int = 8) -> np.ndarray:
    """A smooth field in [0, 1] (bilinear upsampling of a coarse random grid)."""
    import torch
    import torch.nn.functional as F

    coarse = torch.from_numpy(rng.random((1, 1, cells, cells)).astype(np.float32))
    return F.interpolate(coarse, size=shape, mode="bilinear", align_corners=True)[0, 0].numpy()


def generate_nir_scene(
    size: int = 512, *, seed: int = 0, roofs: int = 24, decoys: int = 12, pixel_size: float = 0.5
) -> NirScene:
    """Draw a grass/soil background with red roofs, green-painted roofs and green decoy fields.

    Args:
        size: scene side in pixels.
        seed: random seed.
        roofs: number of roofs (every other one painted green).
        decoys: number of grass rectangles shaped like roofs (not targets).
        pixel_size: metres per pixel (UTM 33N, EPSG:32633).
    """
    from rasterio.features import rasterize
    from shapely.affinity import rotate
    from shapely.geometry import box

    rng = np.random.default_rng(seed)
    transform = Affine.translation(500_000.0, 5_000_000.0) * Affine.scale(pixel_size, -pixel_size)
    h = w = size
    material = np.zeros((h, w), dtype=np.uint8)  # 0 grass, 1 soil, 2 red roof, 3 green roof
    material[_smooth_field((h, w), rng) > 0.72] = 1
    shapes: list = []
    painted: list[bool] = []
    placed: list = []

    def place() -> Any:
        for _ in range(200):
            length, width = rng.uniform(14, 34), rng.uniform(10, 22)
            cx, cy = rng.uniform(20, w - 20), rng.uniform(20, h - 20)
            poly = rotate(
                box(cx - length / 2, cy - width / 2, cx + length / 2, cy + width / 2),
                rng.uniform(0, 180),
                origin=(cx, cy),
            )
            if poly.bounds[0] < 2 or poly.bounds[1] < 2 or poly.bounds[2] > w - 2 or poly.bounds[3] > h - 2:
                continue
            if all(poly.distance(p) > 6 for p in placed):
                placed.append(poly)
                return poly
        return None

    for i in range(roofs):
        poly = place()
        if poly is None:
            break
        shapes.append(poly)
        painted.append(i % 2 == 1)
    decoy_polys = [p for p in (place() for _ in range(decoys)) if p is not None]
    pixel = Affine.identity()
    for poly in decoy_polys:
        material[rasterize([(poly, 1)], out_shape=(h, w), transform=pixel).astype(bool)] = 0
    for poly, is_green in zip(shapes, painted):
        material[rasterize([(poly, 1)], out_shape=(h, w), transform=pixel).astype(bool)] = 3 if is_green else 2
    truth = (material >= 2).astype(np.uint8)

    means = np.array([MATERIALS[m] for m in ("grass", "soil", "red_roof", "green_roof")], dtype=np.float64)
    data = means[material].transpose(2, 0, 1)  # [4, H, W]
    light = 0.9 + 0.2 * _smooth_field((h, w), rng, cells=5)  # slow illumination change, all bands
    data = data * light * (1.0 + NOISE * rng.standard_normal((4, h, w)))
    data = np.clip(np.rint(data), 0, 10_000).astype(np.uint16)
    world = [_to_world(p, transform) for p in shapes]
    return NirScene(data, truth, world, painted, transform, "EPSG:32633")


def _to_world(poly: Any, transform: Affine) -> Any:
    from shapely.affinity import affine_transform

    a, b, c, d, e, f = transform[:6]
    return affine_transform(poly, [a, b, d, e, c, f])


def write_nir_scene(
    folder: str | Path, *, name: str = "nir_scene", size: int = 512, seed: int = 0, dtype: str = "uint16", **kwargs: Any
) -> tuple[Path, Path, Path]:
    """Write ``<name>.tif`` (4 bands R, G, B, NIR), ``<name>_roofs.gpkg`` (all roofs) and
    ``<name>_truth.tif`` (1 = roof) into ``folder``.

    Args:
        dtype: ``"uint16"`` (reflectance x 10 000) or ``"uint8"`` (reflectance x 10 000 / 20,
            clipped).

    Returns:
        ``(raster, labels, truth)``.
    """
    import geopandas as gpd
    import rasterio
    from rasterio.enums import ColorInterp

    from sam2unext.geo.demo.demo_scene import tiled_profile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scene = generate_nir_scene(size, seed=seed, **kwargs)
    data = scene.data if dtype == "uint16" else np.clip(scene.data / 20.0, 0, 255).astype(np.uint8)
    raster, labels, truth = folder / f"{name}.tif", folder / f"{name}_roofs.gpkg", folder / f"{name}_truth.tif"
    profile = tiled_profile(size, size, scene.crs, scene.transform)
    with rasterio.open(raster, "w", count=4, dtype=dtype, **profile) as dst:
        dst.write(data)
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.undefined]
        for i, band in enumerate(BAND_NAMES, start=1):
            dst.set_band_description(i, band)
    with rasterio.open(truth, "w", count=1, dtype="uint8", **profile) as dst:
        dst.write(scene.truth, 1)
    gpd.GeoDataFrame({"painted": scene.painted}, geometry=scene.roofs, crs=scene.crs).to_file(labels)
    return raster, labels, truth


#: The two fine-tuning variants compared by :func:`compare_rgb_nir`.
VARIANTS: dict[str, dict[str, Any]] = {
    "rgb": dict(bands=(1, 2, 3)),
    "rgbn": dict(bands=(1, 2, 3, 4), rgb_bands=(1, 2, 3)),
}


def compare_rgb_nir(
    folder: str | Path,
    *,
    size: int = 512,
    epochs: int = 3,
    tiles: int = 24,
    lr: float = 1e-3,
    batch_size: int = 4,
    seed: int = 0,
    dtype: str = "uint16",
    checkpoint: str = "demo",
    train_seed: int = 1,
    test_seed: int = 2,
    device: str = "cpu",
) -> dict:
    """Fine-tune ``checkpoint`` on one generated scene with RGB and with RGB+NIR (same epochs,
    tiles, lr and seed) and score both on a second scene (another seed) against its roofs.

    Returns:
        ``{"iou": {"rgb", "rgbn"}, "seconds": {...}, "trainable": {...}, "snapshots": {...}}`` and
        the settings.
    """
    import time

    from sam2unext import load_model
    from sam2unext.geo.finetune import LabeledScene, finetune, scene_iou
    from sam2unext.train import TrainConfig

    folder = Path(folder)
    train = LabeledScene(*write_nir_scene(folder, name="train", size=size, seed=train_seed, dtype=dtype)[:2])
    test = LabeledScene(*write_nir_scene(folder, name="test", size=size, seed=test_seed, dtype=dtype)[:2])
    config = TrainConfig(
        epochs=epochs, lr=lr, batch_size=batch_size, snapshot_every=epochs, seed=seed, num_workers=0, device=device
    )
    result: dict = {
        "size": size,
        "epochs": epochs,
        "tiles_per_epoch": tiles,
        "lr": lr,
        "batch_size": batch_size,
        "dtype": dtype,
        "checkpoint": checkpoint,
        "iou": {},
        "seconds": {},
        "trainable": {},
        "snapshots": {},
    }
    for name, bands in VARIANTS.items():
        t0 = time.perf_counter()
        run = finetune(
            [train.raster],
            [train.labels],
            folder / f"run_{name}",
            checkpoint=checkpoint,
            config=config,
            tiles_per_scene=tiles,
            progress=False,
            log=None,
            **bands,
        )
        model = load_model(run.last_snapshot, device=device)
        result["iou"][name] = scene_iou(model, test, device=device)
        result["seconds"][name] = round(time.perf_counter() - t0, 1)
        result["trainable"][name] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        result["snapshots"][name] = str(run.last_snapshot)
    return result
