"""Fine-tune a model on georeferenced scenes and vector labels (torchgeo).

Each (GeoTIFF, vector file) pair becomes a torchgeo ``RasterDataset ∩ VectorDataset``;
a ``RandomGeoSampler`` draws tiles of the model's input size, torchgeo rasterizes the
polygons of each tile on the fly (1 inside, 0 outside), and the tile's bands go through the
same band choice and scene stretch as prediction (:func:`sam2unext.geo.reading.make_plan`,
:func:`~sam2unext.geo.reading.apply_stretch`), so training and prediction see the same
pixels. Tiles are then ImageNet-normalized and randomly flipped like image-folder training,
and the loop of :mod:`sam2unext.train` runs unchanged.

Sampling is reseeded from ``(seed, epoch, scene)`` each epoch, so runs are reproducible
and resumable.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from sam2unext.data import EpochDataset, random_flips, sample_generator
from sam2unext.errors import DatasetError, InputError
from sam2unext.train import TrainConfig, TrainResult, make_training_model, resume_preset, train_model
from sam2unext.transforms import normalize

from .reading import ReadPlan, apply_stretch, make_plan

#: Tiles drawn per scene and epoch when not given.
DEFAULT_TILES_PER_SCENE = 200


@dataclass(frozen=True)
class LabeledScene:
    """One raster and the vector file that labels it."""

    raster: Path
    labels: Path


def pair_scenes(rasters: Sequence[str | Path], labels: Sequence[str | Path]) -> list[LabeledScene]:
    """Pair rasters with label files in order (``--raster A --labels A.gpkg --raster B …``).

    Raises:
        InputError: if the counts differ or a file is missing.
    """
    if not rasters:
        raise InputError("no --raster given; pass at least one GeoTIFF with its --labels file")
    if len(rasters) != len(labels):
        raise InputError(
            f"{len(rasters)} --raster but {len(labels)} --labels; give one labels file per raster, in order"
        )
    scenes = []
    for raster, label in zip(rasters, labels):
        for path in (raster, label):
            if not Path(path).is_file():
                raise InputError(f"file not found: {path}; check the path")
        scenes.append(LabeledScene(Path(raster), Path(label)))
    return scenes


def _scene_dataset(scene: LabeledScene, resolution: float | None):
    """torchgeo ``RasterDataset ∩ VectorDataset`` of one scene (labels burned as 1)."""
    from torchgeo.datasets import RasterDataset, VectorDataset

    class SceneRaster(RasterDataset):
        filename_glob = "*"
        is_image = True

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            raster = SceneRaster(paths=[str(scene.raster)], res=resolution)
        except Exception as exc:  # torchgeo raises its own not-found / rasterio errors
            raise InputError(f"torchgeo cannot read {scene.raster}: {exc}") from exc
        try:
            vector = VectorDataset(paths=[str(scene.labels)], crs=raster.crs, res=raster.res)
        except Exception as exc:
            raise InputError(f"cannot read labels {scene.labels}: {exc}; pass a polygon file (gpkg, shp, geojson)") from exc
    try:
        return raster & vector
    except Exception as exc:
        raise DatasetError(f"labels {scene.labels} do not overlap raster {scene.raster}: {exc}") from exc


def tile_from_sample(image: torch.Tensor, plan: ReadPlan, tile_size: int) -> torch.Tensor:
    """Raw torchgeo bands ``[C, H, W]`` → stretched uint8 RGB as float ``[3, T, T]`` in [0, 1].

    Uses the plan's 1-based bands and scene stretch, then crops/pads to ``tile_size``.
    """
    data = image.numpy()[[b - 1 for b in plan.bands]]
    rgb = apply_stretch(data, plan.stretch)
    out = np.zeros((3, tile_size, tile_size), dtype=np.uint8)
    h, w = min(tile_size, rgb.shape[1]), min(tile_size, rgb.shape[2])
    out[:, :h, :w] = rgb[:, :h, :w]
    return torch.from_numpy(out).float().div_(255.0)


def _mask_tile(mask: torch.Tensor, tile_size: int) -> torch.Tensor:
    out = torch.zeros(1, tile_size, tile_size)
    h, w = min(tile_size, mask.shape[-2]), min(tile_size, mask.shape[-1])
    out[0, :h, :w] = (mask.reshape(mask.shape[-2], mask.shape[-1])[:h, :w] > 0).float()
    return out


class GeoTileDataset(EpochDataset):
    """Random labeled tiles from several scenes, redrawn every epoch.

    Items: ``{"image": [3,T,T] normalized, "mask": [1,T,T] in {0,1}, "name": str}``.

    Args:
        scenes: raster/labels pairs.
        tile_size: tile side in pixels (the model's input size).
        tiles_per_scene: tiles drawn from each scene per epoch.
        bands: 1-based bands used as RGB (None: the geo processor's default).
        stretch: stretch as for prediction (None: automatic).
        resolution: resample to this pixel size (map units), as for prediction.
        seed: seed of sampling and flips.
        train: apply random flips.

    Raises:
        InputError: unreadable files, bad bands/stretch, scene smaller than a tile.
        DatasetError: labels outside the raster.
    """

    def __init__(
        self,
        scenes: Sequence[LabeledScene],
        tile_size: int,
        *,
        tiles_per_scene: int = DEFAULT_TILES_PER_SCENE,
        bands: Sequence[int] | None = None,
        stretch=None,
        resolution: float | None = None,
        seed: int = 0,
        train: bool = True,
    ):
        self.scenes = list(scenes)
        self.tile_size = tile_size
        self.tiles_per_scene = tiles_per_scene
        self.seed = seed
        self.train = train
        self.plans = [make_plan(s.raster, bands=bands, stretch=stretch, resolution=resolution) for s in self.scenes]
        for scene, plan in zip(self.scenes, self.plans):
            if plan.height < tile_size or plan.width < tile_size:
                raise InputError(
                    f"{scene.raster} is {plan.width}x{plan.height} px, smaller than one {tile_size}-px tile; "
                    "use a larger scene or a smaller preset"
                )
        self.datasets = [_scene_dataset(s, resolution) for s in self.scenes]
        self.epoch = 0
        self.queries: list[tuple[int, tuple]] = []
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's tiles with a seeded ``RandomGeoSampler`` per scene."""
        from torchgeo.samplers import RandomGeoSampler

        self.epoch = epoch
        queries = []
        for i, ds in enumerate(self.datasets):
            gen = sample_generator(self.seed, epoch, 1_000_000 + i)
            torch_state = torch.get_rng_state()
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))  # multinomial uses it
            sampler = RandomGeoSampler(ds, size=self.tile_size, length=self.tiles_per_scene, generator=gen)
            queries.extend((i, q) for q in sampler)
            torch.set_rng_state(torch_state)
        if not queries:
            raise DatasetError("no tiles could be drawn from the scenes; check that labels overlap the rasters")
        self.queries = queries

    def __len__(self) -> int:
        return len(self.queries)

    def sample(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Tile ``index`` as (RGB float [3,T,T] in [0,1], mask [1,T,T])."""
        scene, query = self.queries[index]
        item = self.datasets[scene][query]
        rgb = tile_from_sample(item["image"], self.plans[scene], self.tile_size)
        return rgb, _mask_tile(item["mask"], self.tile_size)

    def __getitem__(self, index: int) -> dict:
        rgb, mask = self.sample(index)
        image = normalize(rgb)
        if self.train:
            image, mask = random_flips(image, mask, sample_generator(self.seed, self.epoch, index))
        scene = self.queries[index][0]
        return {"image": image, "mask": mask, "name": f"{self.scenes[scene].raster.stem}_{index}"}


def scene_iou(
    model: nn.Module,
    scene: LabeledScene,
    *,
    bands: Sequence[int] | None = None,
    stretch=None,
    resolution: float | None = None,
    threshold: float = 0.5,
    device: str = "cpu",
) -> float:
    """IoU of the thresholded prediction against the rasterized labels over a scene's tiles.

    Tiles are the non-overlapping grid of a torchgeo ``GridGeoSampler`` at the model's input size.

    Returns:
        Intersection over union of foreground pixels (1.0 when both are empty).
    """
    from torchgeo.samplers import GridGeoSampler

    size = model.input_size
    plan = make_plan(scene.raster, bands=bands, stretch=stretch, resolution=resolution)
    ds = _scene_dataset(scene, resolution)
    model.eval().to(device)
    inter = union = 0
    with torch.inference_mode():
        for query in GridGeoSampler(ds, size=size, stride=size):
            item = ds[query]
            x = normalize(tile_from_sample(item["image"], plan, size)).unsqueeze(0).to(device)
            out = model(x)
            out = out if isinstance(out, torch.Tensor) else out[0]
            pred = torch.sigmoid(out.float())[0, 0].cpu() > threshold
            truth = _mask_tile(item["mask"], size)[0] > 0.5
            inter += int((pred & truth).sum())
            union += int((pred | truth).sum())
    return 1.0 if union == 0 else inter / union


def finetune(
    rasters: Sequence[str | Path],
    labels: Sequence[str | Path],
    run_dir: str | Path,
    *,
    preset: str | None = None,
    checkpoint: str | Path | None = None,
    hiera: str | Path | None = None,
    dinov2: str | Path | None = None,
    config: TrainConfig | None = None,
    tiles_per_scene: int = DEFAULT_TILES_PER_SCENE,
    bands: Sequence[int] | None = None,
    stretch=None,
    resolution: float | None = None,
    task: str | None = "geo",
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    stop_after_epoch: int | None = None,
) -> TrainResult:
    """Fine-tune a model on GeoTIFF scenes labeled by polygon files.

    Args:
        rasters: GeoTIFFs, paired in order with ``labels``.
        labels: vector files (gpkg/shp/geojson) of the foreground polygons.
        run_dir: output run folder (snapshots, resume state, loss curve).
        preset: model preset (needed unless ``checkpoint`` carries one).
        checkpoint: weights to start from (our file, an upstream .pth with ``preset``, "demo").
        hiera: SAM2 weights for a fresh model (ignored with ``checkpoint``).
        dinov2: DINOv2 weights for a fresh SAM2-UNeXT (ignored with ``checkpoint``).
        config: training settings (recipe defaults of the model family).
        tiles_per_scene: random tiles per scene per epoch.
        bands: 1-based bands used as RGB, as for prediction.
        stretch: stretch as for prediction.
        resolution: resample to this pixel size, as for prediction.
        task: task name stored in snapshots.
        resume: continue the run in ``run_dir``.
        progress: show a progress bar.
        log: message sink.
        stop_after_epoch: stop early after this epoch.

    Returns:
        The training result.

    Raises:
        InputError, DatasetError, OutputError, CheckpointError, PresetError: user mistakes.
    """
    config = config or TrainConfig()
    scenes = pair_scenes(rasters, labels)
    if resume and preset is None:
        preset, checkpoint = resume_preset(run_dir), None  # weights come from the snapshot
    model = make_training_model(preset, hiera=hiera, dinov2=dinov2, checkpoint=checkpoint, seed=config.seed)
    dataset = GeoTileDataset(
        scenes, model.input_size, tiles_per_scene=tiles_per_scene, bands=bands, stretch=stretch,
        resolution=resolution, seed=config.seed,
    )
    extra = {"rasters": [str(s.raster) for s in scenes], "labels": [str(s.labels) for s in scenes],
             "bands": list(dataset.plans[0].bands)}
    return train_model(
        model, dataset, run_dir, config, task=task, resume=resume, progress=progress, log=log,
        stop_after_epoch=stop_after_epoch, extra=extra,
    )
