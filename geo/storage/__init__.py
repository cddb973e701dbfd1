"""Object storage: scenes, outputs, run stores and checkpoints on ``s3://``, ``gs://`` and ``https://``.

* :func:`is_url` and the URL helpers of :mod:`.urls` (a URL stays a ``str``, never a ``Path``);
* :class:`Location`: a folder on disk or a URL prefix (exists, read/write bytes atomically,
  list, remove, upload, Zarr store);
* :func:`gdal_env` / :func:`configure_gdal`: GDAL's options from the AWS_*/GOOGLE_* variables;
* :func:`storage_error`: one-line user errors for missing buckets/objects, credentials, access.
"""

from sam2unext.geo.storage.errors import storage_error
from sam2unext.geo.storage.gdal import configure_gdal, gdal_env
from sam2unext.geo.storage.location import Location
from sam2unext.geo.storage.outputs import check_remote_output, output_exists, publish, remove_output, staging_path
from sam2unext.geo.storage.urls import as_target, gdal_path, is_url, join, name_of, parent_of, stem_of, with_name

__all__ = [
    "as_target",
    "Location",
    "check_remote_output",
    "output_exists",
    "publish",
    "remove_output",
    "staging_path",
    "configure_gdal",
    "gdal_env",
    "gdal_path",
    "is_url",
    "join",
    "name_of",
    "parent_of",
    "stem_of",
    "storage_error",
    "with_name",
]
