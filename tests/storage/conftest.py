"""Fixtures of the object-storage tests: moto's S3 server (see s3_server.py)."""

from s3_server import s3_bucket, s3_endpoint  # noqa: F401 (fixtures)
