"""The dask.distributed path on a two-process LocalCluster over loopback."""

import numpy as np
import pytest
import rasterio
from geo_helpers import expected_uint8

from sam2unext.geo import predict_raster
from sam2unext.geo.testing import PixelModelFactory


@pytest.mark.timeout(120)
def test_local_cluster_two_workers(nodata_raster, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        res = predict_raster(nodata_raster, tmp_path / "o.tif", model=PixelModelFactory(32, 14), tile_size=32,
                             batch_size=2, chunk_size=64, scheduler=cluster.scheduler_address, vector=False, progress="none")

        def counts():
            from sam2unext.geo import cluster

            return dict(cluster.LOAD_COUNTS)

        per_worker = client.run(counts)
        tasks_per_worker = client.run(lambda dask_worker: len(dask_worker.data) + dask_worker.state.executed_count)
    assert len(per_worker) == 2
    assert all(list(c.values()) == [1] for c in per_worker.values()), per_worker
    assert all(n > 0 for n in tasks_per_worker.values()), tasks_per_worker
    expected, valid = expected_uint8(nodata_raster)
    with rasterio.open(res.probability) as out:
        np.testing.assert_array_equal(out.read_masks(1) > 0, valid)
        np.testing.assert_array_equal(out.read(1)[valid], expected[valid])
    assert res.tiles_skipped >= 1
