"""Fine-tune a model on georeferenced scenes and vector labels (torchgeo).

Each (GeoTIFF, vector file) pair becomes a torchgeo ``RasterDataset ∩ VectorDataset``;
a ``RandomGeoSampler`` draws tiles of the model's input size, torchgeo rasterizes the
polygons of each tile on the fly (1 inside, 0 outside), and the tile's bands go through the
same band choice and scene stretch as prediction (:func:`sam2unext.geo.reading.plan.make_plan`,
:func:`~sam2unext.geo.reading.bands.apply_stretch`), so training and prediction see the same
pixels. Tiles are then ImageNet-normalized and randomly flipped like image-folder training,
and the loop of :mod:`sam2unext.train` runs unchanged.

Sampling is reseeded from ``(seed, epoch, scene)`` each epoch, so runs are reproducible
and resumable.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sam2unext import SegmentationModel
from sam2unext.bands import BandConfig, adapt_model_bands, parameter_counts
from sam2unext.data import EpochDataset, random_flips, sample_generator
from sam2unext.errors import DatasetError, InputError
from sam2unext.geo.reading.bands import apply_stretch, rgb_channels_of
from sam2unext.geo.reading.model_bands import StretchChoice
from sam2unext.geo.reading.plan import ReadPlan, band_statistics, make_plan
from sam2unext.geo.running.tiling import mirror_pad, pad_to_tile
from sam2unext.train import TrainConfig, TrainResult, make_training_model, resume_preset, train_model
from sam2unext.transforms import normalize, to_unit_float

if TYPE_CHECKING:
    from torchgeo.datasets import IntersectionDataset

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


def _scene_dataset(scene: LabeledScene, resolution: float | None) -> IntersectionDataset:
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
            raise InputError(
                f"cannot read labels {scene.labels}: {exc}; pass a polygon file (gpkg, shp, geojson)"
            ) from exc
    try:
        return raster & vector
    except Exception as exc:
        raise DatasetError(f"labels {scene.labels} do not overlap raster {scene.raster}: {exc}") from exc


def tile_from_sample(
    image: torch.Tensor, plan: ReadPlan, tile_size: int, inside: np.ndarray | None = None
) -> torch.Tensor:
    """Raw torchgeo bands ``[B, H, W]`` → the plan's bands, stretched to uint8, as float
    ``[C, T, T]`` in [0, 1] (C = number of plan bands: 3 for RGB).

    Uses the plan's 1-based bands and scene stretch, then crops to ``tile_size``. Pixels past
    the scene edge (outside ``inside``, the :func:`_inside_scene` mask, or beyond a sample
    shorter than the tile) are filled by mirroring the scene's pixels, as prediction pads its
    edge tiles (:func:`~sam2unext.geo.running.tiling.pad_to_tile`), so a model is scored on the inputs
    that ``predict`` gives it (torchgeo fills them with zeros).
    """
    data = image.numpy()[[b - 1 for b in plan.bands]]
    tile = apply_stretch(data, plan.stretch)[:, :tile_size, :tile_size]
    if inside is not None and inside.any() and not inside.all():
        rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        tile = mirror_pad(tile[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], (rows[0], cols[0]), tile_size)
    else:
        tile = pad_to_tile(tile, tile_size)
    return to_unit_float(tile[None])[0]


def _mask_tile(mask: torch.Tensor, tile_size: int) -> torch.Tensor:
    out = torch.zeros(1, tile_size, tile_size)
    h, w = min(tile_size, mask.shape[-2]), min(tile_size, mask.shape[-1])
    out[0, :h, :w] = (mask.reshape(mask.shape[-2], mask.shape[-1])[:h, :w] > 0).float()
    return out


def _xy_slices(box: Any) -> tuple[slice, slice]:
    """The x and y extent of a torchgeo query or dataset bounds: ``(x slice, y slice, t slice)``
    from torchgeo 0.8, a ``BoundingBox`` before."""
    if hasattr(box, "minx"):  # torchgeo < 0.8
        return slice(box.minx, box.maxx), slice(box.miny, box.maxy)
    return box[0], box[1]


def _inside_scene(query: Any, plan: ReadPlan, size: int) -> np.ndarray:
    """Boolean ``[size, size]``: which pixels of a north-up sampler tile lie inside the raster.

    ``query`` is torchgeo's ``(x slice, y slice, t slice)``; the tile spans it, row 0 at the top.
    """
    xs, ys = _xy_slices(query)
    t = plan.transform
    left, top = t.c, t.f
    right, bottom = left + t.a * plan.width, top + t.e * plan.height
    centre = (np.arange(size) + 0.5) / size
    x = xs.start + centre * (xs.stop - xs.start)
    y = ys.stop - centre * (ys.stop - ys.start)
    inside_x = (x >= min(left, right)) & (x <= max(left, right))
    inside_y = (y >= min(top, bottom)) & (y <= max(top, bottom))
    return inside_y[:, None] & inside_x[None, :]


class GeoTileDataset(EpochDataset):
    """Random labeled tiles from several scenes, redrawn every epoch.

    Items: ``{"image": [C,T,T] normalized, "mask": [1,T,T] in {0,1}, "name": str}``.

    Args:
        scenes: raster/labels pairs.
        tile_size: tile side in pixels (the model's input size).
        tiles_per_scene: tiles drawn from each scene per epoch.
        bands: 1-based bands read into the model's channels (None: the geo processor's
            default, or ``band_config.source_bands``).
        band_config: the model's :class:`~sam2unext.bands.BandConfig` (band count and
            per-channel normalization; None: RGB with ImageNet statistics). The attribute
            may be replaced before training (e.g. with measured band statistics).
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
        stretch: StretchChoice | None = None,
        resolution: float | None = None,
        seed: int = 0,
        train: bool = True,
        band_config: BandConfig | None = None,
    ):
        self.band_config = band_config or BandConfig()
        self.scenes = list(scenes)
        self.tile_size = tile_size
        self.tiles_per_scene = tiles_per_scene
        self.seed = seed
        self.train = train
        cfg = self.band_config
        self.plans = [
            make_plan(
                s.raster,
                bands=bands,
                stretch=stretch,
                resolution=resolution,
                n_bands=cfg.in_chans,
                default_bands=cfg.source_bands,
            )
            for s in self.scenes
        ]
        for scene, plan in zip(self.scenes, self.plans):
            if plan.height < tile_size or plan.width < tile_size:
                raise InputError(
                    f"{scene.raster} is {plan.width}x{plan.height} px, smaller than one {tile_size}-px tile; "
                    "use a larger scene or a smaller preset"
                )
        self.datasets = [_scene_dataset(s, resolution) for s in self.scenes]
        self.epoch = 0
        self.queries: list[tuple[int, Any]] = []  # (scene, torchgeo query: a BoundingBox or slices)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's tiles with a seeded ``RandomGeoSampler`` per scene."""
        from torchgeo.samplers import RandomGeoSampler

        self.epoch = epoch
        queries: list[tuple[int, Any]] = []
        for i, ds in enumerate(self.datasets):
            gen = sample_generator(self.seed, epoch, 1_000_000 + i)
            torch_state = torch.get_rng_state()
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))  # multinomial uses it
            sampler = RandomGeoSampler(ds, size=self.tile_size, length=self.tiles_per_scene, generator=gen)
            if sampler.areas.numel() == 0:  # torchgeo found no area a whole tile fits in (it would fail)
                raise DatasetError(self._too_small(i))
            queries.extend((i, q) for q in sampler)
            torch.set_rng_state(torch_state)
        if not queries:
            raise DatasetError("no tiles could be drawn from the scenes; check that labels overlap the rasters")
        self.queries = queries

    def _too_small(self, index: int) -> str:
        """Why no tile can be drawn from scene ``index``: raster ∩ labels extent is under one tile."""
        scene, plan = self.scenes[index], self.plans[index]
        xs, ys = _xy_slices(self.datasets[index].bounds)
        width, height = (xs.stop - xs.start) / abs(plan.transform.a), (ys.stop - ys.start) / abs(plan.transform.e)
        return (
            f"labels {scene.labels} span {width:.0f}x{height:.0f} px of {scene.raster}, less than one "
            f"{self.tile_size}-px training tile (tiles are drawn where the raster and the labels' extent "
            "overlap); label a larger area or use a preset with a smaller input size"
        )

    def __len__(self) -> int:
        return len(self.queries)

    def sample(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Tile ``index`` as (float [C,T,T] in [0,1], mask [1,T,T])."""
        scene, query = self.queries[index]
        item = self.datasets[scene][query]
        rgb = tile_from_sample(item["image"], self.plans[scene], self.tile_size)
        return rgb, _mask_tile(item["mask"], self.tile_size)

    def __getitem__(self, index: int) -> dict[str, Any]:
        tile, mask = self.sample(index)
        image = normalize(tile, self.band_config.mean, self.band_config.std)
        if self.train:
            image, mask = random_flips(image, mask, sample_generator(self.seed, self.epoch, index))
        scene = self.queries[index][0]
        return {"image": image, "mask": mask, "name": f"{self.scenes[scene].raster.stem}_{index}"}


def scene_iou(
    model: SegmentationModel,
    scene: LabeledScene,
    *,
    bands: Sequence[int] | None = None,
    stretch: StretchChoice | None = None,
    resolution: float | None = None,
    threshold: float = 0.5,
    device: str = "cpu",
) -> float:
    """IoU of the thresholded prediction against the rasterized labels over a scene's tiles.

    Tiles are the non-overlapping grid of a torchgeo ``GridGeoSampler`` at the model's input size
    (only their pixels inside the raster count: a grid tile can reach past the scene's edge);
    bands, stretch and normalization are the model's (:class:`~sam2unext.bands.BandConfig`)
    unless ``bands``/``stretch`` are given.

    Returns:
        Intersection over union of foreground pixels (1.0 when both are empty).
    """
    from torchgeo.samplers import GridGeoSampler

    size = model.input_size
    cfg = getattr(model, "bands", None) or BandConfig()
    plan = make_plan(
        scene.raster,
        bands=bands,
        stretch=stretch if stretch is not None else cfg.stretch,
        resolution=resolution,
        n_bands=cfg.in_chans,
        default_bands=cfg.source_bands,
    )
    ds = _scene_dataset(scene, resolution)
    model.eval().to(device)
    inter = union = 0
    with torch.inference_mode():
        for query in GridGeoSampler(ds, size=size, stride=size):
            item = ds[query]
            inside_px = _inside_scene(query, plan, size)
            tile = tile_from_sample(item["image"], plan, size, inside_px)
            x = normalize(tile, cfg.mean, cfg.std).unsqueeze(0).to(device)
            out = model(x)
            out = out if isinstance(out, torch.Tensor) else out[0]
            inside = torch.from_numpy(inside_px)
            pred = (torch.sigmoid(out.float())[0, 0].cpu() > threshold) & inside
            truth = (_mask_tile(item["mask"], size)[0] > 0.5) & inside
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
    rgb_bands: Sequence[int] | None = None,
    band_fill: str = "repeat",
    stretch: StretchChoice | None = None,
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
        bands: 1-based bands read into the model, any count (e.g. ``(4, 3, 2, 8)``). More
            than three bands on an RGB model widen its encoders' first convolutions from the
            RGB weights (:func:`sam2unext.bands.adapt_model_bands`); a multispectral
            checkpoint needs its own band count (default: the bands it was trained on).
        rgb_bands: which of ``bands`` carry the pretrained R, G, B kernels (default: the
            first three).
        band_fill: ``"repeat"`` (timm) or ``"zero"``: initial kernels of the other bands.
        stretch: stretch as for prediction (stored in the snapshots when given; else
            each scene's per-band 2-98 % stretch).
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
    if resume:
        restore_run_bands(model, run_dir)
    prepare_model_bands(model, bands, rgb_bands, band_fill)
    dataset = GeoTileDataset(
        scenes,
        model.input_size,
        tiles_per_scene=tiles_per_scene,
        bands=bands,
        stretch=stretch,
        resolution=resolution,
        seed=config.seed,
        band_config=model.bands,
    )
    record_training_bands(model, dataset.plans, explicit_stretch=stretch is not None)
    dataset.band_config = model.bands
    if log is not None:
        log(_model_line(model, dataset.plans[0].bands))
    extra = {
        "rasters": [str(s.raster) for s in scenes],
        "labels": [str(s.labels) for s in scenes],
        "bands": list(dataset.plans[0].bands),
        "trainable_parameters": parameter_counts(model),
    }
    return train_model(
        model,
        dataset,
        run_dir,
        config,
        task=task,
        resume=resume,
        progress=progress,
        log=log,
        stop_after_epoch=stop_after_epoch,
        extra=extra,
    )


def _model_line(model: SegmentationModel, bands: Sequence[int]) -> str:
    """The log line saying which bands the model takes and how many of its parameters train."""
    counts = parameter_counts(model)
    return (
        f"model takes {model.in_chans} bands ({','.join(map(str, bands))}); trainable "
        f"parameters: {counts['trainable']:,} of {counts['total']:,} ({counts['input_layers']:,} in the "
        f"adapted first layers)"
    )


def prepare_model_bands(
    model: SegmentationModel, bands: Sequence[int] | None, rgb_bands: Sequence[int] | None, fill: str = "repeat"
) -> None:
    """Widen an RGB model to the requested bands (in place) before fine-tuning.

    Nothing changes for an RGB selection (1 or 3 bands, R, G, B in order) or for a model that
    already takes N bands (:func:`~sam2unext.geo.reading.plan.make_plan` then checks the count).

    Raises:
        InputError: ``rgb_bands`` not among ``bands``, or given for a model that already takes
            N bands with another mapping.
    """
    if model.in_chans != 3:
        if rgb_bands is not None and bands is not None:
            if rgb_channels_of(bands, rgb_bands) != tuple(model.bands.rgb_channels):
                raise InputError(
                    f"rgb bands {','.join(map(str, rgb_bands))} differ from the checkpoint's R, G, B "
                    f"channels {model.bands.rgb_channels}; drop rgb_bands"
                )
        return
    if bands is None or len(bands) < 3:
        if rgb_bands is not None:
            raise InputError("rgb_bands needs bands: name the bands read (e.g. 4,3,2,8) and which are R, G, B")
        return
    rgb = rgb_channels_of(bands, rgb_bands if rgb_bands is not None else tuple(bands)[:3])
    if len(bands) == 3 and rgb == (0, 1, 2):
        return
    adapt_model_bands(model, len(bands), rgb, fill=fill)


def record_training_bands(model: SegmentationModel, plans: Sequence[ReadPlan], *, explicit_stretch: bool) -> None:
    """Store in ``model.bands`` what training reads: the source bands, the stretch when it was
    given (else each scene's 2-98 % stretch, stored as None), and, for a multispectral model
    without them yet, the mean/std of its non-RGB bands measured on the training scenes."""
    from dataclasses import replace

    cfg = replace(
        model.bands, source_bands=tuple(plans[0].bands), stretch=plans[0].stretch if explicit_stretch else None
    )
    if cfg.in_chans != 3 and cfg.stats != "training":
        measured = [m for m in (band_statistics(p) for p in plans) if m is not None]
        if measured:
            mean = np.mean([m[0] for m in measured], axis=0)
            std = np.mean([m[1] for m in measured], axis=0)
            cfg = cfg.with_extra_stats(mean, std)
    model.bands = cfg


def restore_run_bands(model: SegmentationModel, run_dir: str | Path) -> None:
    """Give a freshly built model the band layout of the run being resumed (from its last
    snapshot's metadata) so that the snapshot's weights fit."""
    from sam2unext import read_checkpoint_metadata
    from sam2unext.run_folder import last_snapshot

    snapshot = last_snapshot(run_dir)
    if snapshot is None:
        return
    cfg = read_checkpoint_metadata(snapshot)["bands"]
    if cfg.in_chans != model.in_chans:
        adapt_model_bands(model, cfg.in_chans, cfg.rgb_channels, fill="zero", bands=cfg)
    else:
        model.bands = cfg
