"""geo/storage against moto's S3 server over HTTP, and the same calls on a local folder."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import rasterio

from sam2unext.errors import InputError, OutputError
from sam2unext.geo.storage import Location, gdal_env, is_url, join, name_of, parent_of, stem_of


def test_url_helpers():
    assert is_url("s3://b/k.tif") and is_url("gs://b/k") and is_url("https://h/x.tif")
    assert not is_url("/tmp/x.tif") and not is_url("/vsis3/b/k") and not is_url(None)
    assert join("s3://b/out/", "s.tif") == "s3://b/out/s.tif"
    assert name_of("s3://b/out/s.tif") == "s.tif" and stem_of("s3://b/out/s.tif") == "s"
    assert parent_of("s3://b/out/s.tif") == "s3://b/out" and parent_of("s3://b") == "s3://b"


def test_gdal_env_from_the_boto3_variables():
    env = gdal_env({"AWS_ENDPOINT_URL": "http://minio.local:9000", "AWS_DEFAULT_REGION": "eu-west-1"})
    assert env["AWS_S3_ENDPOINT"] == "minio.local:9000"
    assert env["AWS_HTTPS"] == "NO" and env["AWS_VIRTUAL_HOSTING"] == "FALSE"
    assert env["AWS_REGION"] == "eu-west-1"
    # the S3-specific variable wins, https stays on; an option the user set is theirs
    env = gdal_env(
        {"AWS_ENDPOINT_URL": "http://x:1", "AWS_ENDPOINT_URL_S3": "https://ceph.example", "AWS_HTTPS": "YES"}
    )
    assert env["AWS_S3_ENDPOINT"] == "ceph.example" and "AWS_HTTPS" not in env
    assert "AWS_S3_ENDPOINT" not in gdal_env({})  # AWS itself: GDAL's defaults


@pytest.mark.parametrize("remote", [False, True], ids=["disk", "s3"])
def test_location_calls(remote, tmp_path, request):
    root = f"{request.getfixturevalue('s3_bucket')}/run/x.partial" if remote else tmp_path / "x.partial"
    loc = Location(root)
    assert not loc.exists() and loc.list() == []
    if not remote:
        loc.make()
    loc.write_text("manifest.json", '{"a": 1}')
    loc.child("done").write_bytes("000001.json", b"{}")
    loc.child("done").write_bytes("000000.json", b"{}")
    assert loc.exists() and loc.is_file("manifest.json") and not loc.is_file("done")
    assert loc.read_text("manifest.json") == '{"a": 1}'
    assert loc.list("done") == ["000000.json", "000001.json"]
    assert loc.size("manifest.json") == 8 and loc.info("manifest.json")["size"] == 8
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "big.bin").write_bytes(b"x" * 100_000)
    loc.upload_file(scratch / "big.bin", "big.bin")
    assert loc.read_bytes("big.bin") == b"x" * 100_000
    loc.download_file("big.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == b"x" * 100_000

    import zarr

    group = zarr.open_group(loc.zarr_store("prob.zarr"), mode="w")
    group.create_array("prob", shape=(4, 6), chunks=(2, 3), dtype="uint8")[:] = np.arange(24).reshape(4, 6)
    again = pickle.loads(pickle.dumps(loc))  # a worker's copy: the root only, its own connection
    assert again == loc and again._fs is None
    read = zarr.open_group(again.zarr_store("prob.zarr", read_only=True), mode="r")["prob"][:]
    np.testing.assert_array_equal(read, np.arange(24).reshape(4, 6))
    loc.remove("big.bin")
    assert not loc.exists("big.bin")
    loc.remove_tree()
    assert not loc.exists() and loc.list("done") == []


def test_gdal_reads_a_cog_window_from_s3(s3_bucket, tmp_path):
    data = (np.arange(3 * 64 * 80) % 251).astype(np.uint8).reshape(3, 64, 80)
    local = tmp_path / "s.tif"
    with rasterio.open(local, "w", driver="COG", width=80, height=64, count=3, dtype="uint8", blocksize=16) as dst:
        dst.write(data)
    Location(s3_bucket).upload_file(local, "in/s.tif")
    with rasterio.open(f"{s3_bucket}/in/s.tif") as src:
        window = src.read(window=rasterio.windows.Window(16, 8, 20, 30))
    np.testing.assert_array_equal(window, data[:, 8:38, 16:36])


def test_missing_bucket_and_object_are_user_errors(s3_bucket):
    with pytest.raises(
        OutputError, match=r"bucket s3://no-such-bucket-x of s3://no-such-bucket-x/out does not exist; create it"
    ):
        Location("s3://no-such-bucket-x/out").make()
    with pytest.raises(InputError, match=rf"{s3_bucket}/nothing.json does not exist"):
        Location(s3_bucket, output=False).read_bytes("nothing.json")


def test_no_credentials_is_a_user_error(s3_bucket, monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    loc = Location(f"{s3_bucket}/o")
    loc._fs = None
    import fsspec

    fsspec.filesystem("s3").clear_instance_cache()
    with pytest.raises(OutputError, match=rf"no credentials for {s3_bucket}/o/m.json; set AWS_PROFILE"):
        loc.write_text("m.json", "{}")
    fsspec.filesystem("s3").clear_instance_cache()


def test_access_denied_is_a_user_error(s3_bucket, monkeypatch):
    from moto import settings

    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # the server checks keys from now on
    import fsspec

    fsspec.filesystem("s3").clear_instance_cache()
    with pytest.raises(OutputError, match=rf"access denied to {s3_bucket}/o/m.json; .* may write it"):
        Location(f"{s3_bucket}/o").write_text("m.json", "{}")
    fsspec.filesystem("s3").clear_instance_cache()


def test_a_lost_connection_says_to_resume():
    from botocore.exceptions import EndpointConnectionError

    from sam2unext.geo.storage import storage_error

    exc = EndpointConnectionError(endpoint_url="http://127.0.0.1:9/b/k")
    err = storage_error("s3://b/o.tif.partial", exc, output=True, resumable=True)
    assert isinstance(err, OutputError)
    assert str(err).startswith("lost the connection to s3://b/o.tif.partial after retries")
    assert str(err).endswith("then rerun with resume=True (the finished chunks are kept)")
