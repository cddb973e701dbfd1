"""One-line user errors for object storage: missing bucket or object, no credentials, access denied.

fsspec (s3fs, gcsfs), botocore and GDAL each say these things their own way; :func:`storage_error`
turns any of them into the project's :class:`~sam2unext.errors.UserError` kinds, naming the URL
and what to do. Anything it does not recognise is returned as None and stays a bug report.
"""

from __future__ import annotations

from sam2unext.errors import InputError, OutputError, UserError, option

CREDENTIALS_HELP = {
    "s3": (
        "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for a store other than AWS)"
    ),
    "gs": "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file (or log in with gcloud)",
}

_NO_CREDENTIALS = (
    "unable to locate credentials",
    "no credentials",
    "aws_secret_access_key and aws_no_sign_request",
    "could not find default credentials",
    "default credentials were not found",
)
_DENIED = (
    "access denied",
    "accessdenied",
    "forbidden",
    "invalidaccesskeyid",
    "does not exist in our records",
    "signaturedoesnotmatch",
    "signature we calculated does not match",
    "permission",
    "http response code: 403",
)
_NO_BUCKET = ("specified bucket does not exist", "nosuchbucket", "bucket does not exist")
_MISSING = ("does not exist", "nosuchkey", "not found", "no such file", "http response code: 404")
_CONNECTION = (
    "could not connect",
    "connection",
    "timed out",
    "timeout",
    "couldn't connect",
    "reset by peer",
    "http response code: 5",
    "curl error",
)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _help(url: str) -> str:
    scheme = url.split("://", 1)[0].lower()
    return CREDENTIALS_HELP.get("gs" if scheme in ("gs", "gcs") else scheme, "check the URL and your network")


def classify(exc: BaseException) -> str | None:
    """``"credentials"``, ``"denied"``, ``"bucket"``, ``"missing"``, ``"connection"`` or None."""
    for e in _chain(exc):
        name = type(e).__name__
        text = f"{name} {e}".lower()
        if name in ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError") or any(
            s in text for s in _NO_CREDENTIALS
        ):
            return "credentials"
        if isinstance(e, PermissionError) or any(s in text for s in _DENIED):
            return "denied"
        if any(s in text for s in _NO_BUCKET):
            return "bucket"
        if isinstance(e, FileNotFoundError) or any(s in text for s in _MISSING):
            return "missing"
        if (
            isinstance(e, (ConnectionError, TimeoutError))
            or name
            in (
                "EndpointConnectionError",
                "ConnectTimeoutError",
                "ReadTimeoutError",
                "ClientConnectorError",
                "ServerDisconnectedError",
                "FSTimeoutError",
            )
            or any(s in text for s in _CONNECTION)
        ):
            return "connection"
    return None


def storage_error(url: str, exc: BaseException, *, output: bool = False, resumable: bool = False) -> UserError | None:
    """The one-line :class:`UserError` for a failed storage call on ``url``, or None when unknown.

    Args:
        url: The object or prefix the call was about.
        exc: What fsspec, botocore or GDAL raised.
        output: True when ``url`` is an output (:class:`OutputError`), else an input (:class:`InputError`).
        resumable: the call was part of a run whose finished chunks are kept: say to resume.
    """
    kind = classify(exc)
    error = OutputError if output else InputError
    bucket = url.split("://", 1)[-1].split("/", 1)[0]
    scheme = url.split("://", 1)[0]
    if kind == "credentials":
        return error(f"no credentials for {url}; {_help(url)}")
    if kind == "denied":
        return error(f"access denied to {url}; {_help(url)}, with a key that may {'write' if output else 'read'} it")
    if kind == "bucket":
        of = "" if url.rstrip("/") == f"{scheme}://{bucket}" else f" of {url}"
        return error(f"bucket {scheme}://{bucket}{of} does not exist; create it or correct the URL")
    if kind == "missing":
        return error(f"{url} does not exist; check the URL (and AWS_ENDPOINT_URL for a store other than AWS)")
    if kind == "connection":
        then = f"rerun with {option('resume')} (the finished chunks are kept)" if resumable else "rerun"
        return error(
            f"lost the connection to {url} after retries ({_short(exc)}); check the network or the endpoint"
            f" (AWS_ENDPOINT_URL), then {then}"
        )
    return None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 120 else text[:117].rsplit(" ", 1)[0] + "..."
