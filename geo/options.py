"""The options of a scene run, declared once: :class:`SceneOptions`.

Every front end builds one: ``predict_raster(scene, output, **keywords)`` from its keywords,
the command from its flags (``cli/predict.py: SCENE_FLAGS``), the QGIS plugin through the
command. The object is frozen and checked when it is made, so a bad value is refused before
any scene is read or any model loaded, and every later step can trust it.

Adding an option is one field here (with its default and its line in the docstring) and one
flag in the command; see docs/ARCHITECTURE.md, "Adding a scene option".
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from sam2unext.errors import InputError

if TYPE_CHECKING:
    from distributed import Client

#: Tile overlap: a fraction of the tile in [0, 1), or pixels as ``"64px"``.
Overlap = Union[float, str]
#: Output raster types: uint8 (0..255, masked nodata) or float32 (0..1, NaN nodata).
OUT_DTYPES = ("uint8", "float32")
#: Compute precisions a loaded model may run in (``sam2unext.load_model(dtype=)``).
PRECISIONS = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class SceneOptions:
    """Every option of one scene run (what the model is and where the scene is are apart).

    Attributes:
        tile_size: tile side (None: the model's ``input_size``); clamped to the scene's longer
            side (or the model's input size if larger); refused when the estimated memory of
            a batch of such tiles exceeds what is available.
        overlap: tile overlap: a fraction of the tile in [0, 1) (``0.25``) or pixels as
            ``"64px"``; other values are refused. 0 warns (seams show at tile edges).
        batch_size: tiles per forward pass; None: 4 on a CPU, what fits the free memory of a GPU
            (:func:`~sam2unext.geo.running.device.auto_batch_size`; 4 for a cluster run without a
            local model).
        chunk_size: side of the output chunks in pixels (multiple of 512; default
            ``max(4096, 8 x tile_size)``).
        bands: 1-based bands, e.g. ``(3, 2, 1)``, or band descriptions (``("red", "green",
            "blue")``); default: the bands declared red/green/blue, else 1, 2, 3 (a warning
            names them when the scene has more than three), or grey x3 for one band. A
            multispectral model takes as many bands as it was trained on (e.g. ``(4, 3, 2, 8)``;
            default: the bands stored in its checkpoint); another count is an ``InputError``.
        rgb_bands: which of ``bands`` carry the pretrained R, G, B kernels; checked against
            the model's mapping (None: the model's).
        stretch: None (uint8 as is, others 2-98 % percentile stretch, or the checkpoint's),
            ``(min, max)`` or one pair per band.
        resolution: resample to this pixel size (map units) before tiling.
        aoi: segment only this area: a shapely geometry, a GeoDataFrame, a vector file or a bbox
            ``(minx, miny, maxx, maxy)``. The output covers its bounding window on the scene grid,
            pixels outside it are nodata, tiles that do not touch it are never read or run, and
            polygons are clipped to it.
        aoi_crs: CRS of ``aoi`` when it carries none (default: the scene's).
        device: where a model loaded from ``checkpoint``/``preset`` runs: ``auto``, ``cpu``,
            ``cuda`` or ``cuda:N``.
        precision: compute precision of a model loaded from ``checkpoint``/``preset``
            (``auto``: bfloat16 on CUDA, float32 on CPU).
        scheduler: None (threads in this process) or a ``dask.distributed`` address / Client;
            the workers read the source and write the run store themselves, so both must be at
            ``s3://``/``gs://`` URLs or on a filesystem every worker sees.
        worker_timeout: with a ``scheduler``: seconds the run waits while no worker is connected
            (it warns as soon as none is) before it stops with a ``ClusterError``, keeping the
            finished chunks for ``resume``; None (default) waits until a worker connects.
        out_dtype: ``"uint8"`` (0..255, masked nodata) or ``"float32"`` (0..1, NaN nodata).
        vector: True (default path), False/None (no polygons) or a path.
        vector_format: ``gpkg``, ``geojson``, ``fgb`` or ``parquet``.
        threshold, min_area, fill_holes, simplify: polygon options (see ``vectorize_raster``);
            ``min_area`` in m² and ``simplify`` in metres on any CRS (geodesic on a geographic
            CRS), pixels for a scene without georeferencing.
        regularize: square building-like outlines (straight walls at right angles, see
            :mod:`sam2unext.geo.vectors.regularize`; polygons stay valid, none disappears or
            merges): False (off), True (outline details under two pixel sizes are removed) or
            that tolerance in metres (e.g. ``1.5``).
        tta: test-time augmentation: ``"none"``, ``"flip"`` (the tile pair and its mirror image:
            2 forward passes per tile) or ``"d4"`` (its 8 rotations and mirror images), averaged
            before blending (:mod:`sam2unext.geo.running.tta`; deterministic).
        overwrite: replace existing outputs (and discard an unfinished run of them).
        resume: continue the unfinished run of the output (same input, weights and parameters).
        as_xarray: attach the probability raster as a lazy ``xarray.DataArray``.
        as_geodataframe: attach the polygons as a ``GeoDataFrame``.

    Raises:
        InputError: a bad ``out_dtype``, ``batch_size``, ``overlap``, ``chunk_size``,
            ``precision``, ``tta``, ``regularize`` or ``worker_timeout`` (one line naming the value).
    """

    # tiling and chunking
    tile_size: int | None = None
    overlap: Overlap = 0.25
    batch_size: int | None = None
    chunk_size: int | None = None
    # bands, stretch, resampling
    bands: Any = None
    rgb_bands: Any = None
    stretch: Any = None
    resolution: float | None = None
    # area of interest
    aoi: Any = None
    aoi_crs: Any = None
    # where and how the model runs
    device: str = "auto"
    precision: str = "auto"
    scheduler: str | Client | None = None
    worker_timeout: float | None = None
    # outputs
    out_dtype: str = "uint8"
    vector: bool | str | Path | None = True
    vector_format: str = "gpkg"
    threshold: float = 0.5
    min_area: float = 0.0
    fill_holes: bool = False
    simplify: float = 0.0
    regularize: bool | float = False
    tta: str = "none"
    overwrite: bool = False
    resume: bool = False
    as_xarray: bool = False
    as_geodataframe: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse values that no scene could make valid (see the class docstring)."""
        from sam2unext.geo.running.chunks import check_chunk_size
        from sam2unext.geo.running.tiling import overlap_pixels
        from sam2unext.geo.running.tta import check_tta
        from sam2unext.geo.vectors.regularize import check_regularize

        if self.out_dtype not in OUT_DTYPES:
            raise InputError(f"out_dtype {self.out_dtype!r} must be one of {', '.join(OUT_DTYPES)}")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise InputError(f"batch_size {self.batch_size} must be at least 1")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision {self.precision!r} must be one of {', '.join(PRECISIONS)}")
        overlap_pixels(2**31, self.overlap)  # its form; the pixels follow from the tile size
        if self.chunk_size is not None:
            check_chunk_size(int(self.chunk_size))
        check_tta(self.tta)
        check_regularize(self.regularize)
        if self.worker_timeout is not None and not float(self.worker_timeout) > 0:
            raise InputError(f"worker_timeout {self.worker_timeout} must be a positive number of seconds")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in declaration order (the keywords ``predict_raster`` takes)."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def build(cls, options: SceneOptions | None = None, **keywords: Any) -> SceneOptions:
        """``options`` (default: all defaults) with ``keywords`` replacing fields.

        Raises:
            TypeError: a keyword that is no option (the message names it and lists the options).
        """
        unknown = sorted(set(keywords) - set(cls.names()))
        if unknown:
            raise TypeError(f"unknown scene option(s) {', '.join(unknown)}; the options are {', '.join(cls.names())}")
        if options is None:
            return cls(**keywords)
        from dataclasses import replace

        return replace(options, **keywords) if keywords else options
