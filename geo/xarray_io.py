"""xarray in and out: a rioxarray ``DataArray`` as a scene, the probability COG as a lazy ``DataArray``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from sam2unext.errors import InputError

if TYPE_CHECKING:
    import xarray as xr


#: A scene: a raster path (anything GDAL opens) or a rioxarray ``DataArray``.
Source = Union[str, Path, "xr.DataArray"]

#: Block side of the temporary GeoTIFF a DataArray is written to.
XARRAY_BLOCK = 256


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


def source_path(source: Source, tmpdir: Path) -> tuple[str | Path, str]:
    """A raster path for ``source`` (an xarray DataArray is written to ``tmpdir``) and its name.

    A path is returned as given: ``Path()`` would turn ``/vsicurl/https://...`` into ``https:/``.
    A DataArray is written as a tiled GeoTIFF with its own block size (the source file's block
    shape, e.g. one row of a striped file, is not copied) and its exact geotransform.
    """
    if isinstance(source, (str, Path)):
        return source, Path(source).name
    import xarray as xr

    if isinstance(source, xr.DataArray):
        import rioxarray  # noqa: F401 (registers .rio)

        da = source if "band" in source.dims else source.expand_dims("band")
        path = tmpdir / "input.tif"
        transform = exact_transform(da)
        da = da.rio.write_transform(transform)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            da.rio.to_raster(
                path,
                tiled=True,
                blockxsize=XARRAY_BLOCK,
                blockysize=XARRAY_BLOCK,
                interleave="pixel",
                recalc_transform=False,
            )
        return path, str(source.name or "dataarray")
    raise InputError(f"source must be a raster path or an xarray.DataArray, got {type(source).__name__}")


def open_probability(path: str | Path) -> xr.DataArray:
    """The probability COG at ``path`` as a lazy, masked ``DataArray`` (Dask chunks :data:`XARRAY_CHUNKS`)."""
    import rioxarray
    import xarray as xr

    # chunks as a dict of the COG's block multiples (a tuple or True is deprecated by xarray)
    opened = rioxarray.open_rasterio(path, masked=True, chunks=XARRAY_CHUNKS)
    assert isinstance(opened, xr.DataArray)  # a one-band GeoTIFF without subdatasets
    return opened.squeeze("band", drop=True)
