"""xarray in and out: a rioxarray ``DataArray`` as a scene, the probability COG as a lazy ``DataArray``.

A dask-backed DataArray (``.chunks`` set: odc-stac, stackstac, ``rioxarray.open_rasterio(...,
chunks=...)``) becomes an :class:`~sam2unext.geo.reading.array_raster.ArraySource`, read window by
window from its dask graph: nothing is written, and each tile region computes only its chunks.
Any other DataArray (in memory, or lazily indexed without dask) is written to a temporary tiled
GeoTIFF as before: it is small by definition, and a file is what cluster workers can read
without receiving its pixels in every task. Both give the same header and pixels: the array's
header is that of the GeoTIFF ``rio.to_raster`` writes of it (a one-pixel copy is written to
GDAL's memory file system to learn it).
"""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from affine import Affine
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning

from sam2unext.errors import InputError
from sam2unext.geo.reading.array_raster import SUPPORTED_MASKS, ArraySource

if TYPE_CHECKING:
    import xarray as xr


#: A scene: a raster path (anything GDAL opens) or a rioxarray ``DataArray``.
Source = Union[str, Path, "xr.DataArray"]

#: Block side of the temporary GeoTIFF a DataArray is written to.
XARRAY_BLOCK = 256

#: How a DataArray is written (``rio.to_raster``): its own block size (the source file's block
#: shape, e.g. one row of a striped file, is not copied) and its exact geotransform.
TO_RASTER: dict[str, Any] = dict(
    tiled=True, blockxsize=XARRAY_BLOCK, blockysize=XARRAY_BLOCK, interleave="pixel", recalc_transform=False
)


#: Dask chunks of ``PredictResult.data_array``: 4 x 4 blocks of the probability COG.
XARRAY_CHUNKS = {"band": 1, "y": 2048, "x": 2048}


def exact_transform(da: xr.DataArray) -> Affine:
    """The geotransform of a rioxarray DataArray, exact.

    ``rio.transform()`` rebuilds it from the coordinates, which differ from the file's in the
    last digits; the transform stored with the array (``recalc=False``, the file's own) is used
    when it places the first pixel centre where the coordinates say, shifted by whole pixels
    for a slice of the original array. Otherwise the rebuilt one is the only one there is.
    """
    rebuilt = da.rio.transform()
    cached = da.rio.transform(recalc=False)
    if cached.b or cached.d:  # rotated: coordinates cannot express it, the stored one is right
        return cached
    x, y = da.rio.x_dim, da.rio.y_dim
    try:
        x0, y0 = float(da[x].values[0]), float(da[y].values[0])
    except (IndexError, KeyError):
        return rebuilt
    col = (x0 - cached.c) / cached.a - 0.5
    row = (y0 - cached.f) / cached.e - 0.5
    icol, irow = round(col), round(row)
    if (
        abs(col - icol) > 1e-3
        or abs(row - irow) > 1e-3
        or not np.allclose([cached.a, cached.e], [rebuilt.a, rebuilt.e], rtol=1e-9, atol=0)
    ):
        return rebuilt
    return cached @ Affine.translation(icol, irow) if (icol or irow) else cached


def raster_array(source: xr.DataArray) -> xr.DataArray:
    """``source`` as a raster: a ``band`` dimension (added when missing), ``[band, y, x]``, the exact transform.

    Raises:
        InputError: a dimension other than band, y and x (a stackstac ``time``: select one).
    """
    import rioxarray  # noqa: F401 (registers .rio)

    da = source if "band" in source.dims else source.expand_dims("band")
    y, x = da.rio.y_dim, da.rio.x_dim
    extra = [str(d) for d in da.dims if d not in ("band", y, x)]
    if extra:
        raise InputError(
            f"DataArray {source.name or ''} has the dimensions {', '.join(map(str, da.dims))}; a scene has band, "
            f"{y} and {x} only: select one {extra[0]} first (e.g. .isel({extra[0]}=0))"
        )
    return da.transpose("band", y, x).rio.write_transform(exact_transform(da))


def write_geotiff(da: xr.DataArray, path: str | Path) -> None:
    """Write a :func:`raster_array` as the tiled GeoTIFF a scene is read from (:data:`TO_RASTER`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        da.rio.to_raster(path, **TO_RASTER)


def scene_source(source: Source, tmpdir: Path, windowed: bool = True) -> tuple[str | Path | ArraySource, str]:
    """What a scene run reads for ``source``, and the scene's name.

    A path is returned as given: ``Path()`` would turn ``/vsicurl/https://...`` into ``https:/``.
    A dask-backed DataArray becomes an :class:`ArraySource` read window by window (unless
    ``windowed`` is False, as for a resampled read, which GDAL does on a file); any other
    DataArray, and the rare dask-backed one whose encoding or mask the window reader does not
    reproduce (complex values, ``_Unsigned``), is written to ``tmpdir`` as a GeoTIFF.

    Raises:
        InputError: ``source`` is neither a path nor a DataArray.
    """
    if isinstance(source, (str, Path)):
        return source, Path(source).name
    import xarray as xr

    if not isinstance(source, xr.DataArray):
        raise InputError(f"source must be a raster path or an xarray.DataArray, got {type(source).__name__}")
    name = str(source.name or "dataarray")
    da = raster_array(source)
    if windowed and reads_by_window(da):
        array = array_source(da, name, token=str(source.data.name))
        if array is not None:
            return array, name
    path = tmpdir / "input.tif"
    write_geotiff(da, path)
    return path, name


def reads_by_window(da: xr.DataArray) -> bool:
    """True for a dask-backed :func:`raster_array` whose pixels the window reader reproduces."""
    return da.chunks is not None and da.dtype.kind != "c" and "_Unsigned" not in da.encoding


def array_source(da: xr.DataArray, name: str, token: str) -> ArraySource | None:
    """The :class:`ArraySource` of a dask-backed :func:`raster_array`; None when its masks are
    of a kind the window reader does not reproduce. Nothing but one stand-in pixel is written.

    The header (data type, nodata, band descriptions, colour interpretation, mask flags, CRS)
    is read from a one-pixel copy written by the same ``rio.to_raster`` call to GDAL's memory
    file system; the pixels are the array CF-encoded as ``to_raster`` encodes them (nodata
    back where a masked array holds NaN, the encoded data type), lazily.
    """
    import rasterio
    import rasterio.shutil
    from xarray.conventions import encode_cf_variable

    tiny = da.isel({da.rio.y_dim: slice(0, 1), da.rio.x_dim: slice(0, 1)})
    tiny = tiny.copy(data=np.zeros(tiny.shape, dtype=tiny.dtype))
    path = f"/vsimem/sam2unext-header-{uuid.uuid4().hex}.tif"
    try:
        write_geotiff(tiny, path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as twin:
                header = dict(
                    crs=twin.crs,
                    dtypes=tuple(twin.dtypes),
                    nodatavals=tuple(twin.nodatavals),
                    descriptions=tuple(twin.descriptions),
                    colorinterp=tuple(twin.colorinterp),
                    mask_flag_enums=tuple(tuple(f) for f in twin.mask_flag_enums),
                )
    finally:
        rasterio.shutil.delete(path)
    flags: tuple[tuple[MaskFlags, ...], ...] = header["mask_flag_enums"]
    alpha = any(MaskFlags.alpha in f for f in flags)
    if any(f not in SUPPORTED_MASKS for f in flags) or (alpha and header["dtypes"][0] != "uint8"):
        return None
    data = encode_cf_variable(da.variable).data.astype(header["dtypes"][0])
    return ArraySource(name=name, data=data, transform=exact_transform(da), token=token, **header)


def open_probability(path: str | Path) -> xr.DataArray:
    """The probability COG at ``path`` as a lazy, masked ``DataArray`` (Dask chunks :data:`XARRAY_CHUNKS`)."""
    import rioxarray
    import xarray as xr

    # chunks as a dict of the COG's block multiples (a tuple or True is deprecated by xarray)
    opened = rioxarray.open_rasterio(path, masked=True, chunks=XARRAY_CHUNKS)
    assert isinstance(opened, xr.DataArray)  # a one-band GeoTIFF without subdatasets
    return opened.squeeze("band", drop=True)
