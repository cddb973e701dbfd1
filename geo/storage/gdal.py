"""GDAL's options for object storage, from the variables the user already set for boto3/gcsfs.

GDAL reads ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``,
``AWS_PROFILE`` and ``GOOGLE_APPLICATION_CREDENTIALS`` itself, but not ``AWS_ENDPOINT_URL``
(the variable boto3 and s3fs use for MinIO, Ceph or any S3-compatible store): it wants the host
in ``AWS_S3_ENDPOINT``, ``AWS_HTTPS=NO`` for plain http and ``AWS_VIRTUAL_HOSTING=FALSE`` for
path-style URLs. :func:`gdal_env` derives those, so the user sets one variable once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

#: Retries of a failed HTTP request (GDAL's default is none) and the first delay, in seconds.
HTTP_RETRIES = 5
HTTP_RETRY_DELAY = 0.5


def s3_endpoint_url(environ: Mapping[str, str] | None = None) -> str | None:
    """The S3 endpoint URL the user set (``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``), or None."""
    env = os.environ if environ is None else environ
    return env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None


def gdal_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """GDAL configuration options for reading and writing ``s3://``, ``gs://`` and ``https://`` objects.

    Options the user set explicitly (as variables of the same name) are left to them.

    Args:
        environ: The variables to read (default ``os.environ``).

    Returns:
        A dict for ``rasterio.Env(**gdal_env())``.
    """
    env = os.environ if environ is None else environ
    opts: dict[str, str] = {
        "GDAL_HTTP_MAX_RETRY": str(HTTP_RETRIES),
        "GDAL_HTTP_RETRY_DELAY": str(HTTP_RETRY_DELAY),
        # a COG names everything it needs in its header: do not list the folder on open
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    }
    endpoint = s3_endpoint_url(env)
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        opts["AWS_S3_ENDPOINT"] = parts.netloc + parts.path.rstrip("/")
        opts["AWS_HTTPS"] = "NO" if parts.scheme == "http" else "YES"
        opts["AWS_VIRTUAL_HOSTING"] = "FALSE"  # S3-compatible stores serve path-style URLs
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        opts["AWS_REGION"] = region
    if env.get("GOOGLE_APPLICATION_CREDENTIALS"):
        opts["GOOGLE_APPLICATION_CREDENTIALS"] = env["GOOGLE_APPLICATION_CREDENTIALS"]
    return {k: v for k, v in opts.items() if k not in env or _SET_HERE.get(k) == env[k]}


#: Variables :func:`configure_gdal` put into ``os.environ`` (it may update those, never the user's).
_SET_HERE: dict[str, str] = {}


def configure_gdal() -> None:
    """Put :func:`gdal_env` into this process's environment (never over a variable the user set).

    GDAL falls back to environment variables for every configuration option, in every thread,
    so datasets opened by worker threads or by libraries that make their own ``rasterio.Env``
    see the same endpoint and retries. Call it where a process starts to work; a later call
    follows a changed ``AWS_ENDPOINT_URL``.
    """
    wanted = gdal_env()
    for key in list(_SET_HERE):
        if key not in wanted and os.environ.get(key) == _SET_HERE[key]:
            del os.environ[key]
            del _SET_HERE[key]
    for key, value in wanted.items():
        os.environ[key] = value
        _SET_HERE[key] = value
