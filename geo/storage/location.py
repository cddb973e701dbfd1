"""A folder on disk or under an ``s3://``, ``gs://`` or ``https://`` prefix, with the few calls a run needs.

The run store, the outputs and the checkpoint cache go through :class:`Location`, so the same
code works on a local disk and on object storage:

* local folders use the OS directly (``os.replace`` makes a write atomic; a full disk stays an
  ``OSError`` with ``ENOSPC``, which callers turn into their own message);
* URLs use fsspec (s3fs, gcsfs, its HTTP filesystem): credentials and endpoints come from the
  standard variables (``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``..., ``AWS_ENDPOINT_URL``,
  ``GOOGLE_APPLICATION_CREDENTIALS``); a single PUT or a completed multipart upload is atomic,
  so a reader never sees half an object; dropped connections are retried by botocore
  (:data:`S3_RETRIES` attempts) and s3fs. A missing bucket or object, missing credentials and
  denied access become one-line :class:`~sam2unext.errors.UserError` (:mod:`.errors`).

A :class:`Location` pickles as its root alone: each process opens its own connection pool.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sam2unext.errors import UserError
from sam2unext.geo.storage.errors import storage_error
from sam2unext.geo.storage.gdal import s3_endpoint_url
from sam2unext.geo.storage.urls import WRITABLE, is_url, join, scheme_of

T = TypeVar("T")

#: Attempts of one S3 call (botocore's "standard" retry mode: connection errors, throttling, 5xx).
S3_RETRIES = 8


def storage_options(scheme: str) -> dict[str, Any]:
    """fsspec options for a scheme, from the standard environment variables."""
    if scheme == "s3":
        opts: dict[str, Any] = {"config_kwargs": {"retries": {"max_attempts": S3_RETRIES, "mode": "standard"}}}
        endpoint = s3_endpoint_url()
        if endpoint:
            opts["endpoint_url"] = endpoint
        return opts
    return {}


def filesystem(scheme: str, *, asynchronous: bool = False) -> Any:
    """The fsspec filesystem of a URL scheme (cached by fsspec per process and options)."""
    import fsspec

    protocol = "gcs" if scheme == "gs" else scheme
    return fsspec.filesystem(protocol, asynchronous=asynchronous, **storage_options(scheme))


class Location:
    """A folder on disk (``Path``) or a URL prefix (``str``); names below it are ``/``-separated."""

    def __init__(self, root: str | Path, *, output: bool = True):
        self.root: str | Path = root.rstrip("/") if is_url(root) else Path(root)  # type: ignore[union-attr]
        self.output = output  # which error kind a failed call raises: OutputError or InputError
        self._fs: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "output": self.output, "_fs": None}

    def __repr__(self) -> str:
        return f"Location({str(self.root)!r})"

    def __str__(self) -> str:
        return str(self.root)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and str(self.root) == str(other.root)

    def __hash__(self) -> int:
        return hash(str(self.root))

    # -- naming -----------------------------------------------------------------------------
    @property
    def is_remote(self) -> bool:
        """True for a URL prefix."""
        return isinstance(self.root, str)

    @property
    def scheme(self) -> str | None:
        """``s3``, ``gs``, ``https``... for a URL; None on disk."""
        return scheme_of(self.root) if isinstance(self.root, str) else None

    def path(self, name: str = "") -> str | Path:
        """The full path or URL of ``name`` below this location (itself for ``""``)."""
        return join(self.root, name) if name else self.root

    def child(self, name: str) -> Location:
        """The location ``name`` below this one."""
        return Location(self.path(name), output=self.output)

    # -- remote plumbing ----------------------------------------------------------------------
    @property
    def fs(self):
        """The fsspec filesystem (URLs only)."""
        if self._fs is None:
            self._fs = filesystem(self.scheme or "file")
        return self._fs

    def _key(self, name: str = "") -> str:
        return self.fs._strip_protocol(str(self.path(name)))

    def _call(self, name: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 (translated when recognised, re-raised otherwise)
            err = storage_error(str(self.path(name)), exc, output=self.output)
            if err is None:
                raise
            raise err from exc

    def _require_writable(self) -> None:
        if self.is_remote and self.scheme not in WRITABLE:
            raise storage_error(str(self.root), PermissionError("read-only"), output=True) or PermissionError(
                str(self.root)
            )

    # -- reading ------------------------------------------------------------------------------
    def exists(self, name: str = "") -> bool:
        """True when ``name`` (an object/file or a folder/prefix holding something) exists."""
        if not self.is_remote:
            return Path(self.path(name)).exists()
        key = self._key(name)
        return self._call(name, lambda: self.fs.exists(key))

    def is_file(self, name: str = "") -> bool:
        """True when ``name`` is an object or a file (not a folder or prefix)."""
        if not self.is_remote:
            return Path(self.path(name)).is_file()
        key = self._key(name)

        def check() -> bool:
            self.fs.invalidate_cache(key)
            return self.fs.isfile(key)

        return self._call(name, check)

    def read_bytes(self, name: str) -> bytes:
        """The whole content of ``name``.

        Raises:
            FileNotFoundError: on disk; a :class:`UserError` for a URL.
        """
        if not self.is_remote:
            return Path(self.path(name)).read_bytes()
        key = self._key(name)
        return self._call(name, lambda: self.fs.cat_file(key))

    def read_text(self, name: str) -> str:
        """``read_bytes`` decoded as UTF-8."""
        return self.read_bytes(name).decode()

    def read_many(self, names: list[str]) -> dict[str, bytes]:
        """The contents of several files or objects (fetched concurrently from a URL); unreadable ones are left out."""
        if not self.is_remote:
            out: dict[str, bytes] = {}
            for name in names:
                try:
                    out[name] = Path(self.path(name)).read_bytes()
                except OSError:
                    continue
            return out
        if not names:
            return {}
        keys = {self._key(name): name for name in names}
        got = self._call("", lambda: self.fs.cat(list(keys), on_error="omit"))
        return {keys[k]: v for k, v in got.items() if k in keys and isinstance(v, bytes)}

    def list(self, name: str = "") -> list[str]:
        """Names directly below ``name`` (files and folders, sorted); ``[]`` when it does not exist."""
        if not self.is_remote:
            folder = Path(self.path(name))
            return sorted(os.listdir(folder)) if folder.is_dir() else []
        key = self._key(name)

        def ls() -> list[str]:
            try:
                entries = self.fs.ls(key, detail=False, refresh=True)
            except FileNotFoundError:
                return []
            return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries if e.rstrip("/") != key)

        return self._call(name, ls)

    def size(self, name: str = "") -> int:
        """Bytes of the object or file ``name``."""
        if not self.is_remote:
            return Path(self.path(name)).stat().st_size
        key = self._key(name)
        return self._call(name, lambda: int(self.fs.info(key)["size"]))

    def info(self, name: str = "") -> dict[str, Any]:
        """Size and version tag (ETag, generation or mtime) of ``name``, for fingerprints."""
        if not self.is_remote:
            st = Path(self.path(name)).stat()
            return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        key = self._key(name)
        raw = self._call(name, lambda: self.fs.info(key))
        tag = raw.get("ETag") or raw.get("etag") or raw.get("generation") or raw.get("LastModified") or raw.get("mtime")
        return {"size": int(raw.get("size") or 0), "etag": str(tag).strip('"') if tag is not None else None}

    def download_file(self, name: str, local: Path) -> None:
        """Copy ``name`` to the local file ``local`` (written under a temporary name, then renamed)."""
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{os.getpid()}.part")
        try:
            if self.is_remote:
                key = self._key(name)
                self._call(name, lambda: self.fs.get_file(key, str(tmp)))
            else:
                shutil.copyfile(self.path(name), tmp)
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)

    # -- writing ------------------------------------------------------------------------------
    def make(self) -> None:
        """Create the folder (on disk; it must not exist yet); check the bucket exists (URL).

        Raises:
            FileExistsError: the local folder exists; a :class:`UserError` when the bucket is missing.
        """
        if not self.is_remote:
            Path(self.root).mkdir()
            return
        self._require_writable()
        bucket = self._key().split("/", 1)[0]

        def check() -> None:
            if not self.fs.exists(bucket):
                raise FileNotFoundError(f"The specified bucket does not exist: {bucket}")

        self._call("", check)

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write ``name`` so that a reader sees either the old content or the whole new one."""
        if not self.is_remote:
            path = Path(self.path(name))
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                tmp.write_bytes(data)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            return
        self._require_writable()
        key = self._key(name)
        self._call(name, lambda: self.fs.pipe_file(key, data))  # one PUT: atomic

    def write_text(self, name: str, text: str) -> None:
        """``write_bytes`` of UTF-8 text."""
        self.write_bytes(name, text.encode())

    def upload_file(self, local: str | Path, name: str) -> None:
        """Put the local file ``local`` at ``name``, atomically (a reader never sees half of it).

        On disk the file is copied to a temporary name beside the target and renamed (moved
        when it already lies in that folder); to a URL it is one PUT or a multipart upload,
        which the store shows only once complete.
        """
        local = Path(local)
        if not self.is_remote:
            target = Path(self.path(name))
            if local.resolve().parent == target.resolve().parent:
                os.replace(local, target)
                return
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                shutil.copyfile(local, tmp)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            return
        self._require_writable()
        key = self._key(name)
        self._call(name, lambda: self.fs.put_file(str(local), key))

    def remove(self, name: str) -> None:
        """Delete the file or object ``name`` (nothing when it is missing)."""
        if not self.is_remote:
            Path(self.path(name)).unlink(missing_ok=True)
            return
        key = self._key(name)

        def rm() -> None:
            try:
                self.fs.rm_file(key)
            except FileNotFoundError:
                pass

        self._call(name, rm)

    def remove_tree(self, name: str = "") -> None:
        """Delete the folder or prefix ``name`` and everything below it (nothing when missing)."""
        if not self.is_remote:
            shutil.rmtree(self.path(name), ignore_errors=True)
            return
        key = self._key(name)

        def rm() -> None:
            try:
                self.fs.rm(key, recursive=True)
            except FileNotFoundError:
                pass
            self.fs.invalidate_cache(key)

        self._call(name, rm)

    def zarr_store(self, name: str = "", *, read_only: bool = False) -> Any:
        """A Zarr v3 store on ``name``: ``LocalStore`` on disk, ``FsspecStore`` on a URL."""
        import zarr.storage

        if not self.is_remote:
            return zarr.storage.LocalStore(str(self.path(name)), read_only=read_only)
        return zarr.storage.FsspecStore.from_url(
            str(self.path(name)), storage_options=storage_options(self.scheme or ""), read_only=read_only
        )

    @contextmanager
    def local_copy(self, name: str, scratch: Path) -> Iterator[Path]:
        """A local file holding ``name``: the file itself on disk, a download into ``scratch`` for a URL."""
        if not self.is_remote:
            yield Path(self.path(name))
            return
        target = scratch / (str(self.path(name)).rsplit("/", 1)[-1] or "object")
        self.download_file(name, target)
        try:
            yield target
        finally:
            target.unlink(missing_ok=True)
