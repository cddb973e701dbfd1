"""The resumable run store: finished output chunks of one scene, in a Zarr store next to the output.

Layout of ``<output name>.partial/``::

    manifest.json   fingerprints of input, weights and pixel-changing parameters
    prob.zarr/      Zarr (format 2, which GDAL's Zarr driver reads) group with array ``prob``
                    (uint8 0..255 or float32 0..1) and, for a masked uint8 output, ``valid``
                    (255 valid, 0 nodata); Zarr chunks of ``BLOCK rows x chunk width``, so only
                    one chunk's tasks write a Zarr chunk and many processes write without locks;
                    the overview pyramid as ``prob_1``, ``valid_1``, ... (level k: half of
                    level k - 1, :mod:`~sam2unext.geo.writing.pyramid`), one Zarr chunk per
                    chunk for the levels the chunks make
    halo/NNNNNN-<strip>.bin  the partial sums a chunk's own tiles leave outside its core, one
                    file per strip (``top``, ``bottom``, ``left``, ``right`` or ``all``): int64
                    sums, then 0/1 validity for a masked scene (the shape is the strip's, known
                    from the layout); removed once no chunk needs them
    summed/NNNNNN.json  one marker per chunk whose first step (its own tiles) is finished
    done/NNNNNN.json  one marker per finished chunk (second step: halos added, quantized)

A step counts as finished only once its marker exists (written last and atomically); a step
whose task died half way is run again in full and writes the same values. Any process that
reaches the folder can run steps: a local folder, a shared filesystem, or an
``s3://``/``gs://`` prefix (all file I/O goes through :class:`~sam2unext.geo.storage.Location`;
an object is written in one PUT, so a marker or a strip is never seen half-written there either).
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import numpy as np

from sam2unext.errors import OutputError, UserError, option
from sam2unext.geo.running.fingerprint import resume_refusal
from sam2unext.geo.storage import Location, gdal_path, is_url, storage_error

#: Rows of one Zarr chunk (the COG block).
ZARR_ROWS = 512
FORMAT = "sam2unext-geo-partial/3"


def zarr_rows(chunk_size: int, height: int) -> int:
    """Rows of one Zarr chunk of the output arrays: writes aligned to them rewrite nothing."""
    return min(ZARR_ROWS, chunk_size, height)


def store_path_for(output: str | Path) -> str | Path:
    """The run store folder of an output raster: ``<output name>.partial`` beside it (a URL stays a str)."""
    if is_url(output):
        return str(output).rstrip("/") + ".partial"
    out = Path(output)
    return out.with_name(out.name + ".partial")


def level_name(array: str, level: int) -> str:
    """The store's array of ``array`` (``prob`` or ``valid``) at overview ``level`` (0: the raster)."""
    return array if level == 0 else f"{array}_{level}"


def _is_disk_full(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_error(folder: str | Path, exc: BaseException) -> OutputError | None:
    """An :class:`OutputError` naming ``folder`` when ``exc`` is a full disk, else None."""
    if _is_disk_full(exc):
        return OutputError(
            f"no space left on the device of {folder}; free space there, then rerun with "
            f"{option('resume')} (finished chunks are kept)"
        )
    return None


class RunStore:
    """Open handle on a run store folder or prefix (picklable: only the location travels to workers)."""

    def __init__(self, folder: str | Path | Location):
        self.location = folder if isinstance(folder, Location) else Location(folder)
        self._group: Any = None
        self._arrays: dict[str, Any] = {}

    def __getstate__(self):
        return {"location": self.location, "_group": None, "_arrays": {}}

    @property
    def folder(self) -> str | Path:
        """The folder (``Path``) or URL prefix (``str``), for messages and local checks."""
        return self.location.root

    @property
    def manifest_path(self) -> str | Path:
        return self.location.path("manifest.json")

    @property
    def done_folder(self) -> str | Path:
        return self.location.path("done")

    def exists(self) -> bool:
        """True when the folder holds a store (a manifest)."""
        return self.location.is_file("manifest.json")

    def present(self) -> bool:
        """True when anything is at the store's place (a store, a half-made one, or something else)."""
        return self.location.exists()

    # -- creating and checking ------------------------------------------------------------
    def create(
        self, manifest: dict, *, height: int, width: int, chunk_width: int, out_dtype: str, masked: bool
    ) -> None:
        """Create the folder, the Zarr arrays and the manifest (the manifest last)."""
        import numcodecs
        import zarr
        from zarr.core.array_spec import ArrayConfig

        from sam2unext.geo.writing.pyramid import chunk_levels, level_count, level_shape

        try:
            self.location.make()
            if not self.location.is_remote:
                for folder in ("done", "summed", "halo"):
                    Path(self.location.path(folder)).mkdir()
            group = zarr.open_group(self.location.zarr_store("prob.zarr"), mode="w", zarr_format=2)
            fill = float("nan") if out_dtype == "float32" else 0
            config = ArrayConfig(
                order="C", write_empty_chunks=True
            )  # a rewritten chunk must replace what a dead task left
            names = ["prob"] + (["valid"] if masked and out_dtype == "uint8" else [])
            local = chunk_levels(chunk_width, height, width)
            for level in range(level_count(height, width) + 1):
                shape = level_shape(height, width, level)
                if level == 0:
                    chunks = (zarr_rows(chunk_width, height), min(chunk_width, width))
                elif level <= local:  # one Zarr chunk per chunk: its finish step writes it alone
                    side = chunk_width >> level
                    chunks = (min(side, shape[0]), min(side, shape[1]))
                else:  # made by the client
                    chunks = (min(ZARR_ROWS, shape[0]), min(ZARR_ROWS, shape[1]))
                for name in names:
                    group.create_array(
                        level_name(name, level),
                        shape=shape,
                        chunks=chunks,
                        dtype=out_dtype if name == "prob" else "uint8",
                        fill_value=fill if name == "prob" else 0,
                        compressors=numcodecs.Zstd(level=1),
                        config=config,
                    )
            self._write_json("manifest.json", {"format": FORMAT, **manifest})
        except UserError:
            self.remove()
            raise
        except OSError as exc:
            self.remove()
            full = disk_full_error(Path(self.folder).parent, exc)
            if full is not None:
                raise full from None
            raise OutputError(
                f"cannot create the run store {self.folder}: {exc.strerror or exc}; choose a writable output folder"
            ) from None

    def read_manifest(self) -> dict:
        """The manifest as written.

        Raises:
            OutputError: missing or unreadable manifest.
        """
        try:
            return json.loads(self.location.read_text("manifest.json"))
        except (OSError, ValueError, UserError) as exc:
            raise OutputError(
                f"{self.folder} is not a readable run store ({exc}); delete it or pass "
                f"{option('overwrite')} to start over"
            ) from None

    def check_manifest(self, expected: dict) -> None:
        """Refuse to resume a store written for another input, weights, parameters or version.

        Raises:
            OutputError: naming the first field that differs.
        """
        found = self.read_manifest()
        if found.get("format") != FORMAT:
            raise OutputError(
                f"{self.folder} was written by another version ({found.get('format')}); "
                f"pass {option('overwrite')} to start over"
            )
        refusal = resume_refusal({k: v for k, v in found.items() if k != "format"}, expected)
        if refusal:
            raise OutputError(f"cannot resume {self.folder}: {refusal}")

    # -- chunks -----------------------------------------------------------------------------
    def finished(self) -> dict[int, dict]:
        """Status records of the finished chunks (both steps), by chunk index."""
        return self._markers("done")

    def summed(self) -> dict[int, dict]:
        """Status records of the chunks whose first step is finished, by chunk index."""
        return self._markers("summed")

    def _markers(self, folder: str) -> dict[int, dict]:
        out: dict[int, dict] = {}
        place = self.location.child(folder)
        names = [n for n in place.list() if n.endswith(".json") and not n.startswith(".")]
        for name, content in place.read_many(names).items():
            try:
                out[int(name[: -len(".json")])] = json.loads(content)
            except (ValueError, TypeError):
                continue  # a marker cut short by a crash: the step runs again
        return out

    def _array(self, name: str) -> Any:
        """The Zarr array ``name``, or None when the store has none (opened once, on first use:
        a task touches a few of the pyramid's arrays, each open is a read on object storage)."""
        if name not in self._arrays:
            if self._group is None:
                import zarr

                self._group = zarr.open_group(self.location.zarr_store("prob.zarr"), mode="r+", zarr_format=2)
            try:
                self._arrays[name] = self._group[name]
            except KeyError:
                self._arrays[name] = None
        return self._arrays[name]

    def write(self, row0: int, col0: int, values: np.ndarray, valid: np.ndarray | None) -> None:
        """Write whole Zarr chunks: ``values`` (and the 0/255 ``valid`` mask when the store keeps one).

        Raises:
            OutputError: the disk is full.
        """
        self.write_level(0, row0, col0, values, valid)

    def write_level(self, level: int, row0: int, col0: int, values: np.ndarray, valid: np.ndarray | None) -> None:
        """:meth:`write` at overview ``level`` (0: the raster)."""
        rows, cols = values.shape
        where = (slice(row0, row0 + rows), slice(col0, col0 + cols))
        try:
            self._array(level_name("prob", level))[where] = values
            kept = self._array(level_name("valid", level))
            if kept is not None:
                kept[where] = np.full(values.shape, 255, np.uint8) if valid is None else valid
        except OSError as exc:
            full = disk_full_error(self.folder, exc)
            if full is not None:
                raise full from None
            self._storage_failed(exc)
            raise
        except Exception as exc:  # noqa: BLE001 (a store on object storage: botocore's own errors)
            self._storage_failed(exc)
            raise

    def _storage_failed(self, exc: BaseException) -> None:
        """Raise the one-line error of a failed write to a store on object storage (None on disk)."""
        if self.location.is_remote:
            err = storage_error(str(self.folder), exc, output=True, resumable=True)
            if err is not None:
                raise err from exc

    def read(self, row0: int, col0: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Values and 0/255 mask (None when the store keeps none) of a window."""
        return self.read_level(0, row0, col0, rows, cols)

    def read_level(
        self, level: int, row0: int, col0: int, rows: int, cols: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`read` at overview ``level`` (0: the raster)."""
        where = (slice(row0, row0 + rows), slice(col0, col0 + cols))
        values = self._array(level_name("prob", level))[where]
        mask = self._array(level_name("valid", level))
        return values, (None if mask is None else mask[where])

    def gdal_array(self, array: str, level: int = 0) -> str:
        """The GDAL name of an array of the store (``ZARR:"<store>/prob.zarr":/prob_2``), local or remote."""
        return f'ZARR:"{gdal_path(self.location.path("prob.zarr"))}":/{level_name(array, level)}'

    def mark_done(self, index: int, status: dict) -> None:
        """Record chunk ``index`` as finished (atomic)."""
        self._mark("done", index, status)

    def mark_summed(self, index: int, status: dict) -> None:
        """Record the first step of chunk ``index`` as finished (atomic)."""
        self._mark("summed", index, status)

    def _mark(self, folder: str, index: int, status: dict) -> None:
        try:
            self._write_json(f"{folder}/{index:06d}.json", status)
        except OSError as exc:
            self._raise_if_full(exc)
            raise

    def _raise_if_full(self, exc: OSError) -> None:
        full = disk_full_error(self.folder, exc)
        if full is not None:
            raise full from None

    # -- halo strips: partial sums for the neighbours ------------------------------------------
    @staticmethod
    def _halo_name(index: int, strip: str) -> str:
        return f"halo/{index:06d}-{strip}.bin"

    def write_halo(self, index: int, strip: str, sums: np.ndarray, valid: np.ndarray | None) -> None:
        """Store one strip of chunk ``index``: its partial sums (as int64) and 0/1 validity (atomic)."""
        data = np.ascontiguousarray(sums, dtype=np.int64).tobytes()
        if valid is not None:
            data += np.ascontiguousarray(valid, dtype=np.uint8).tobytes()
        try:
            self.location.write_bytes(self._halo_name(index, strip), data)
        except OSError as exc:
            self._raise_if_full(exc)
            raise

    def read_halo(
        self, index: int, strip: str, shape: tuple[int, int], masked: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Partial sums (int64) and validity (bool; None unless ``masked``) of a strip of ``shape``."""
        data = self.location.read_bytes(self._halo_name(index, strip))
        n = shape[0] * shape[1]
        sums = np.frombuffer(data, np.int64, count=n).reshape(shape)
        valid = np.frombuffer(data, np.uint8, count=n, offset=8 * n).reshape(shape).view(bool) if masked else None
        return sums, valid

    def remove_halo(self, index: int, strips: list[str]) -> None:
        """Delete chunk ``index``'s strips (no chunk needs them any more)."""
        for strip in strips:
            self.location.remove(self._halo_name(index, strip))

    # -- files ------------------------------------------------------------------------------
    def _write_json(self, name: str, data: dict) -> None:
        self.location.write_text(name, json.dumps(data, indent=1, sort_keys=True))  # atomic

    def remove(self) -> None:
        """Delete the whole store folder or prefix."""
        self.location.remove_tree()
