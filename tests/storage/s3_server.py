"""A real S3 API server for the tests: moto's server on 127.0.0.1, spoken to over HTTP.

GDAL (/vsis3/), s3fs and the Zarr store reach it through ``AWS_ENDPOINT_URL``, exactly as they
would reach MinIO or Ceph; nothing is patched in-process. Imported by name from the conftest
files of the folders that use it.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import pytest

moto_server = pytest.importorskip("moto.server")

#: The variables a user of an S3-compatible store sets, here pointing at the test server.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # never ask an instance-metadata service for credentials
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_CONFIG_FILE": os.devnull,
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Start moto's S3 server for the session; set the AWS variables to it. Yields its URL."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in (*CREDENTIALS, "AWS_ENDPOINT_URL", "AWS_PROFILE")}
    os.environ.update(CREDENTIALS, AWS_ENDPOINT_URL=url)
    os.environ.pop("AWS_PROFILE", None)
    from sam2unext.geo.storage import configure_gdal

    configure_gdal()
    try:
        yield url
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        configure_gdal()


@pytest.fixture
def s3_bucket(s3_endpoint) -> str:
    """A new empty bucket on the test server, as ``s3://<name>``."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return f"s3://{name}"


def write_scene(path, height: int = 160, width: int = 150, seed: int = 0):
    """A small georeferenced RGB COG with smooth structure (so the stand-in models find shapes)."""
    import numpy as np
    import rasterio
    from affine import Affine

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([np.sin(xx / (9 + 3 * k) + rng.uniform(0, 6)) + np.cos(yy / (11 + 2 * k)) for k in range(3)])
    data = ((base - base.min()) / (np.ptp(base) or 1) * 255).astype(np.uint8)
    profile = dict(driver="COG", width=width, height=height, count=3, dtype="uint8", blocksize=128, crs="EPSG:32633")
    with rasterio.open(path, "w", transform=Affine(10, 0, 500000, 0, -10, 4600000), **profile) as dst:
        dst.write(data)
    return path


def read_raster(path):
    """Band 1 and its mask."""
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1), src.read_masks(1)
