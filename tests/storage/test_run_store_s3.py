"""The run store on an s3:// prefix: the same manifest, Zarr chunks and done markers as on disk."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from sam2unext.errors import OutputError
from sam2unext.geo.writing.store import RunStore, store_path_for


def test_run_store_on_s3(s3_bucket):
    out = f"{s3_bucket}/out/s_prob.tif"
    assert store_path_for(out) == f"{s3_bucket}/out/s_prob.tif.partial"
    store = RunStore(store_path_for(out))
    assert not store.exists() and not store.present() and store.finished() == {}
    store.create({"input": {"size": 1}}, height=40, width=30, chunk_width=16, out_dtype="uint8", masked=True)
    assert store.exists()
    store.check_manifest({"input": {"size": 1}})
    with pytest.raises(OutputError, match=r"the scene's content differs .*\(input.size\)"):
        store.check_manifest({"input": {"size": 2}})

    worker = pickle.loads(pickle.dumps(store))  # what a cluster worker gets: the URL, no connection
    values = np.arange(40 * 16, dtype=np.uint8).reshape(40, 16)
    valid = np.full((40, 16), 255, np.uint8)
    valid[0, 0] = 0
    worker.write(0, 0, values, valid)
    worker.mark_done(0, {"tiles": 3})
    assert store.finished() == {0: {"tiles": 3}}
    got, mask = store.read(0, 0, 40, 16)
    np.testing.assert_array_equal(got, values)
    np.testing.assert_array_equal(mask, valid)
    store.remove()
    assert not store.present()
