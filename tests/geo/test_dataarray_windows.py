"""A dask-backed DataArray is read window by window: same bits as through a temporary GeoTIFF, no
whole-scene file, each window's chunks computed where the chunk task runs."""

from __future__ import annotations

import pickle
import threading
from collections import Counter

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp

from sam2unext.geo import predict_raster
from sam2unext.geo.demo.stand_ins import FailingPixelModel, PixelModel
from sam2unext.geo.reading.array_raster import ArrayDataset, ArraySource
from sam2unext.geo.xarray_io import raster_array, scene_source, write_geotiff

from geo_helpers import NORTH_UP, smooth_rgb, write_raster

xr = pytest.importorskip("xarray")
rioxarray = pytest.importorskip("rioxarray")
dask_array = pytest.importorskip("dask.array")

RUN = dict(tile_size=32, batch_size=2, chunk_size=64, progress="none")


def _run(da, out, *, windowed: bool, monkeypatch, model=None, **options):
    """``predict_raster`` on ``da``: window by window, or (``windowed=False``) through the temporary GeoTIFF."""
    import sam2unext.geo.xarray_io as xio

    with monkeypatch.context() as m:
        if not windowed:
            m.setattr(xio, "reads_by_window", lambda da: False)
        return predict_raster(da, out, model=model or PixelModel(32, 14), **{**RUN, **options})


def _same_outputs(a, b):
    """The two runs' probability rasters (pixels, masks, profile, tags) and polygons are identical."""
    with rasterio.open(a.probability) as pa, rasterio.open(b.probability) as pb:
        np.testing.assert_array_equal(pa.read(), pb.read())
        np.testing.assert_array_equal(pa.read_masks(), pb.read_masks())
        assert pa.profile == pb.profile and pa.tags() == pb.tags()
    assert (a.tiles_run, a.tiles_skipped, a.area) == (b.tiles_run, b.tiles_skipped, b.area)
    if a.vector is not None:
        import geopandas

        ga, gb = geopandas.read_file(a.vector), geopandas.read_file(b.vector)
        assert list(ga.geometry.to_wkb()) == list(gb.geometry.to_wkb())


def _both_ways(da, tmp_path, monkeypatch, **options):
    tmp_path.mkdir(parents=True, exist_ok=True)
    a = _run(da, tmp_path / "windows.tif", windowed=True, monkeypatch=monkeypatch, **options)
    b = _run(da, tmp_path / "geotiff.tif", windowed=False, monkeypatch=monkeypatch, **options)
    _same_outputs(a, b)
    return a


def _dask_array(values: np.ndarray, chunks=(1, 45, 70), transform=NORTH_UP, crs="EPSG:32633", **attrs):
    """A DataArray over a plain ``dask.array`` with a transform and CRS written by rioxarray."""
    da = xr.DataArray(dask_array.from_array(values, chunks=chunks), dims=("band", "y", "x"), attrs=attrs)
    da = da.assign_coords(band=np.arange(1, values.shape[0] + 1))
    return da.rio.write_transform(transform).rio.write_crs(crs)


@pytest.fixture
def nodata_scene(tmp_path):
    data = smooth_rgb(200, 190, seed=1)
    data[data == 0] = 1
    data[:, 0:90, 0:90] = 0
    data[:, 120:140, 100:170] = 0
    return write_raster(tmp_path / "nodata.tif", data, nodata=0)


def test_open_rasterio_with_chunks_gives_the_bits_of_the_geotiff_path(nodata_scene, tmp_path, monkeypatch):
    da = rioxarray.open_rasterio(nodata_scene, chunks={"x": 50, "y": 70})
    res = _both_ways(da, tmp_path, monkeypatch, vector=True)
    assert res.tiles_skipped > 0 and res.tiles_run > 0
    masked = rioxarray.open_rasterio(nodata_scene, chunks={"x": 64, "y": 64}, masked=True)  # float, NaN, encoded 0
    assert masked.dtype.kind == "f"
    _both_ways(masked, tmp_path / "masked", monkeypatch, vector=False)


def test_a_dask_array_with_a_written_transform_and_a_stretch_from_decimated_reads(tmp_path, monkeypatch):
    import sam2unext.geo.reading.bands as bands

    monkeypatch.setattr(bands, "STATS_SIDE", 61)  # decimated statistics reads on a small scene
    values = smooth_rgb(170, 203, seed=3).astype(np.uint16) * 16 + 7
    _both_ways(_dask_array(values), tmp_path, monkeypatch, vector=False)


def test_float_arrays_with_nan_or_a_nodata_value(tmp_path, monkeypatch):
    values = smooth_rgb(150, 160, seed=4).astype(np.float32) / 7.0
    values[:, 10:50, 20:70] = np.nan
    values[1, 100:110, :] = np.inf
    nan = _dask_array(values).rio.write_nodata(np.nan)
    _both_ways(nan, tmp_path / "nan", monkeypatch, vector=False)
    fill = values.copy()
    fill[:, 60:90, 30:120] = -9999.0
    fill[0, 60, 30:40] = np.nextafter(np.float32(-9999.0), np.float32(0))  # GDAL's nodata comparison is not ==
    _both_ways(_dask_array(fill).rio.write_nodata(-9999.0), tmp_path / "fill", monkeypatch, vector=False)


def test_bands_by_name_and_a_four_band_byte_array(tmp_path, monkeypatch):
    rgbn = np.concatenate([smooth_rgb(130, 150, seed=5), smooth_rgb(130, 150, seed=6)[:1]])
    named = _dask_array(rgbn.astype(np.uint16), long_name=("blue", "green", "red", "nir"))
    res = _both_ways(named, tmp_path / "named", monkeypatch, vector=False, bands=("red", "green", "blue"))
    assert res.bands == (3, 2, 1)
    alpha = rgbn.copy()
    alpha[3] = 255
    alpha[3, 40:90, 50:120] = 0  # a 4-band byte GeoTIFF's 4th band is its alpha band
    res = _both_ways(_dask_array(alpha), tmp_path / "alpha", monkeypatch, vector=False)
    assert res.tiles_run > 0


def test_no_whole_scene_file_is_written(nodata_scene, tmp_path, monkeypatch):
    from rioxarray.raster_array import RasterArray

    written = []
    to_raster = RasterArray.to_raster

    def only_the_header(self, path, **kwargs):
        written.append((str(path), self._obj.shape))
        assert str(path).startswith("/vsimem/") and self._obj.shape[1:] == (1, 1), (path, self._obj.shape)
        return to_raster(self, path, **kwargs)

    monkeypatch.setattr(RasterArray, "to_raster", only_the_header)
    da = rioxarray.open_rasterio(nodata_scene, chunks={"x": 64, "y": 64})
    res = predict_raster(da, tmp_path / "o.tif", model=PixelModel(32, 14), vector=False, **RUN)
    assert res.tiles_run > 0 and len(written) == 1


def _counted_array(values: np.ndarray, chunks) -> tuple[object, Counter]:
    """A DataArray whose dask blocks count how often each is computed."""
    calls: Counter = Counter()
    lock = threading.Lock()

    def counted(block, block_id=None):
        with lock:
            calls[block_id[1:]] += 1
        return block

    base = dask_array.from_array(values, chunks=chunks)
    da = xr.DataArray(base.map_blocks(counted, dtype=values.dtype), dims=("band", "y", "x"))
    return da.rio.write_transform(NORTH_UP).rio.write_crs("EPSG:32633"), calls


@pytest.mark.parametrize("chunk_size", [256, 64])
def test_the_graph_is_computed_window_by_window(tmp_path, monkeypatch, chunk_size):
    """Each read computes the blocks under its window, a chunk task each block once (its cache)."""
    import sam2unext.geo.reading.array_raster as array_raster

    values = smooth_rgb(256, 256, seed=7)
    da, calls = _counted_array(values, (3, 64, 64))
    computes = []
    compute = array_raster._compute
    monkeypatch.setattr(array_raster, "_compute", lambda *a: computes.append(len(a)) or compute(*a))
    res = predict_raster(
        da, tmp_path / "o.tif", model=PixelModel(32, 14), vector=False, **{**RUN, "chunk_size": chunk_size}
    )
    assert res.tiles_run == res.tiles_computed > 0
    assert len(computes) > 4 and max(computes) < 16  # many small computations, never the 16 blocks at once
    blocks = {(i, j) for i in range(4) for j in range(4)}
    assert set(calls) == blocks
    if chunk_size == 256:  # one chunk task: each block once, the first and last also in the pre-flight check
        assert calls == Counter({b: 1 + (b in {(0, 0), (3, 3)}) for b in blocks}), calls
    else:  # 16 output chunks of 64 px: a block is also read by the neighbours whose tiles reach into it
        assert max(calls.values()) <= 5 and sum(calls.values()) < 16 * 4, calls


def _header_and_pixels(da, tmp_path):
    """The ArraySource of ``da`` and the GeoTIFF the old path writes of it."""
    source, _ = scene_source(da, tmp_path)
    assert isinstance(source, ArraySource)
    path = tmp_path / "written.tif"
    write_geotiff(raster_array(da), path)
    return source, path


def test_masks_and_decimated_reads_equal_gdals(tmp_path):
    values = np.random.default_rng(8).normal(0, 1000, (2, 333, 517)).astype(np.float64)
    nd = -9999.0
    values[:, 5:9, :] = nd
    values[0, 20, :50] = nd * (1 + np.linspace(-3e-7, 3e-7, 50))  # within and outside ARE_REAL_EQUAL
    values[1, 30, :5] = [np.nan, np.inf, -np.inf, 0.0, -0.0]
    for dtype in ("float64", "float32"):
        (tmp_path / dtype).mkdir()
        da = _dask_array(values.astype(dtype), chunks=(1, 50, 77)).rio.write_nodata(nd)
        source, path = _header_and_pixels(da, tmp_path / dtype)
        with source.open() as ours, rasterio.open(path) as gdal:
            assert (ours.dtypes, ours.nodatavals, ours.mask_flag_enums) == (
                gdal.dtypes,
                gdal.nodatavals,
                gdal.mask_flag_enums,
            )
            window = rasterio.windows.Window(13, 3, 400, 40)
            np.testing.assert_array_equal(
                ours.read_masks([1, 2], window=window), gdal.read_masks([1, 2], window=window)
            )
            np.testing.assert_array_equal(ours.read(window=window), gdal.read(window=window))
            for shape in ((2, 100, 150), (2, 111, 172), (2, 37, 517), (2, 333, 100)):
                a, b = ours.read(out_shape=shape, masked=True), gdal.read(out_shape=shape, masked=True)
                np.testing.assert_array_equal(np.ma.getdata(a), np.ma.getdata(b))
                np.testing.assert_array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b))


def test_the_header_is_the_geotiffs(tmp_path):
    values = smooth_rgb(40, 50, seed=9)
    rgba = np.concatenate([values, np.full((1, 40, 50), 255, np.uint8)])
    for name, da in {
        "rgb": _dask_array(values, long_name=("r", "g", "b")),
        "rgba": _dask_array(rgba),
        "nodata": _dask_array(values.astype(np.int16)).rio.write_nodata(-1),
    }.items():
        (tmp_path / name).mkdir()
        source, path = _header_and_pixels(da, tmp_path / name)
        with source.open() as ours, rasterio.open(path) as gdal:
            for attr in ("width", "height", "count", "dtypes", "nodatavals", "descriptions", "colorinterp"):
                assert getattr(ours, attr) == getattr(gdal, attr), (name, attr)
            assert ours.mask_flag_enums == gdal.mask_flag_enums and ours.transform == gdal.transform
            assert ours.crs == gdal.crs
            np.testing.assert_array_equal(ours.read_masks(), gdal.read_masks())
    assert source.colorinterp == (ColorInterp.gray, ColorInterp.undefined, ColorInterp.undefined)


def test_the_source_pickles_its_graph_not_its_pixels(nodata_scene, tmp_path):
    da = rioxarray.open_rasterio(nodata_scene, chunks={"x": 64, "y": 64})
    source, _ = scene_source(da, tmp_path)
    assert isinstance(source, ArraySource)
    blob = pickle.dumps(source)
    assert len(blob) < 20_000 < da.nbytes
    window = rasterio.windows.Window(40, 50, 70, 60)
    with pickle.loads(blob).open() as again, source.open() as ours:
        np.testing.assert_array_equal(again.read(window=window), ours.read(window=window))
    assert isinstance(source.open(), ArrayDataset)


def test_the_fingerprint_is_the_graph_not_the_object(nodata_scene, tmp_path):
    def fingerprint(chunks):
        source, _ = scene_source(rioxarray.open_rasterio(nodata_scene, chunks=chunks), tmp_path)
        return source.fingerprint()

    first = fingerprint({"x": 64, "y": 64})
    assert fingerprint({"x": 64, "y": 64}) == first
    assert fingerprint({"x": 32, "y": 64}) != first
    assert first["header"]["width"] == 190 and first["header"]["nodata"] == "0.0"


def test_an_interrupted_run_resumes_from_a_new_dataarray(nodata_scene, tmp_path, monkeypatch):
    whole = _run(
        rioxarray.open_rasterio(nodata_scene, chunks={"x": 64, "y": 64}),
        tmp_path / "whole.tif",
        windowed=True,
        monkeypatch=monkeypatch,
        model=PixelModel(32, None),
        vector=False,
    )
    out = tmp_path / "resumed.tif"
    with pytest.raises(RuntimeError):
        _run(
            rioxarray.open_rasterio(nodata_scene, chunks={"x": 64, "y": 64}),
            out,
            windowed=True,
            monkeypatch=monkeypatch,
            model=FailingPixelModel(32, fail_after=6),
            vector=False,
        )
    resumed = _run(
        rioxarray.open_rasterio(nodata_scene, chunks={"x": 64, "y": 64}),
        out,
        windowed=True,
        monkeypatch=monkeypatch,
        model=PixelModel(32, None),
        vector=False,
        resume=True,
    )
    assert resumed.chunks_resumed > 0
    _same_outputs(whole, resumed)


def test_a_resampled_dask_array_goes_through_a_geotiff(nodata_scene, tmp_path):
    da = rioxarray.open_rasterio(nodata_scene, chunks={"x": 64, "y": 64})
    source, _ = scene_source(da, tmp_path, windowed=False)
    assert source == tmp_path / "input.tif" and source.exists()
    res = predict_raster(da, tmp_path / "o.tif", model=PixelModel(32, 14), resolution=3.0, vector=False, **RUN)
    with rasterio.open(res.probability) as out:
        assert out.transform.a == 3.0 and out.width == 95


@pytest.mark.slow  # about 13 s: a two-process LocalCluster starts
@pytest.mark.timeout(180)
def test_cluster_workers_compute_their_own_windows(nodata_scene, tmp_path):
    """On a ``dask.distributed`` cluster the client computes only the pre-flight blocks; the workers
    compute the windows of their chunk tasks from the graph (they receive no pixels) and the bits
    are those of a local run."""
    distributed = pytest.importorskip("distributed")
    from dask.callbacks import Callback

    from sam2unext.geo.demo.stand_ins import PixelModelFactory

    def tasks_here(scheduler=None):
        keys = []
        da = rioxarray.open_rasterio(nodata_scene, chunks={"x": 64, "y": 64})
        with Callback(pretask=lambda key, dsk, state: keys.append(key)):
            res = predict_raster(
                da,
                tmp_path / f"{'cluster' if scheduler else 'local'}.tif",
                model=PixelModelFactory(32, 14),
                scheduler=scheduler,
                vector=False,
                **RUN,
            )
        return res, len(keys)

    local, local_tasks = tasks_here()
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
    ) as cluster:
        remote, client_tasks = tasks_here(cluster.scheduler_address)
    _same_outputs(local, remote)
    assert client_tasks <= 4 < local_tasks, (client_tasks, local_tasks)  # the two pre-flight windows


def test_a_time_dimension_is_refused_in_one_line(tmp_path):
    from sam2unext.errors import InputError

    values = smooth_rgb(40, 50)[None]
    da = xr.DataArray(dask_array.from_array(values), dims=("time", "band", "y", "x"), name="stack")
    da = da.rio.write_transform(NORTH_UP).rio.write_crs("EPSG:32633")
    with pytest.raises(InputError, match=r"select one time first \(e.g. .isel\(time=0\)\)"):
        predict_raster(da, tmp_path / "o.tif", model=PixelModel(32, 14), **RUN)
