"""Reading and writing the staging area: gzip JSON lines with manifests, on any ``ObjectStoragePath``.

The names and folders are ``layout.py``'s. What this module guarantees, on a local disk and on object storage
alike:

- **No reliance on rename.** Object stores have no atomic rename; a single object PUT, though, is all or
  nothing. Small files (manifests, load parts, reports) are written with ``write_whole``: one PUT on object
  storage, a temporary file plus ``os.replace`` on a local disk, so a crash never leaves half a file under
  the final name. Large data files are streamed and then vouched for by their manifest (line count and
  SHA-256), which is written after them; a reader that finds a data file without a matching manifest entry
  treats it as unfinished.
- **No reliance on listing order or local paths**: files are found by name, never by listing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core.errors import Failure, FailureKind, PipelineError
from nylas_dataverse.pipeline import layout

STAGING_ENV = "NYLAS_DATAVERSE_STAGING"
FORMAT_VERSION = layout.FORMAT_VERSION
_LOCAL_PROTOCOLS = frozenset({"file", "local"})


class StagingError(PipelineError, RuntimeError):
    """Staged data is missing or unreadable; the message says which task to rerun."""

    KIND = FailureKind.STAGING


def staging_root(project_root: Path) -> ObjectStoragePath:
    """The root from ``NYLAS_DATAVERSE_STAGING``, or ``.staging/`` in the project (local runs only)."""
    configured = os.environ.get(STAGING_ENV, "").strip()
    if configured:
        return ObjectStoragePath(configured)
    return ObjectStoragePath((project_root / ".staging").resolve().as_uri())


def is_local(path: ObjectStoragePath) -> bool:
    protocol = path.fs.protocol
    protocols = protocol if isinstance(protocol, tuple | list) else (protocol,)
    return any(name in _LOCAL_PROTOCOLS for name in protocols)


def write_whole(path: ObjectStoragePath, data: bytes) -> None:
    """Write ``data`` so that readers see all of it or none (see the module docstring)."""
    if not is_local(path):
        path.write_bytes(data)  # one PUT
        return
    target = Path(path.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def open_binary(path: ObjectStoragePath, mode: str) -> IO[bytes]:
    """``path.open`` in binary mode, typed (Airflow's ObjectStoragePath is not)."""
    handle: IO[bytes] = path.open(mode)  # type: ignore[no-untyped-call]
    return handle


def _dumps(obj: object) -> bytes:
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    except UnicodeEncodeError:
        # A lone surrogate is valid JSON but not UTF-8; escaping keeps the record instead of losing it.
        return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"


class _HashingWriter:
    """Passes bytes through while hashing them, so the checksum costs no second read."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


class JsonlWriter:
    """Streams JSON lines into a gzip file; ``count`` and ``sha256`` describe what was written."""

    def __init__(self, path: ObjectStoragePath) -> None:
        self.path = path
        self.count = 0
        self._raw: Any = None
        self._hashing: _HashingWriter | None = None
        self._gzip: gzip.GzipFile | None = None

    def __enter__(self) -> JsonlWriter:
        self._raw = open_binary(self.path, "wb")
        self._hashing = _HashingWriter(self._raw)
        # Level 3: most of the size win of level 9 at a fraction of the CPU.
        self._gzip = gzip.GzipFile(fileobj=self._hashing, mode="wb", compresslevel=3, mtime=0)
        return self

    def write(self, obj: object) -> None:
        assert self._gzip is not None
        self._gzip.write(_dumps(obj))
        self.count += 1

    def __exit__(self, *exc: object) -> None:
        if self._gzip is not None:
            self._gzip.close()
        if self._raw is not None:
            self._raw.close()

    @property
    def sha256(self) -> str:
        assert self._hashing is not None
        return self._hashing.sha256.hexdigest()

    def manifest_entry(self) -> dict[str, object]:
        return {"count": self.count, "sha256": self.sha256}


class _HashingReader:
    def __init__(self, raw: IO[bytes], digest: Any) -> None:
        self.raw = raw
        self.digest = digest

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data

    def readable(self) -> bool:
        return True


@dataclass(frozen=True)
class RunStaging:
    """The staging folder of one run of one grant (``<root>/<dag_id>/<label>``)."""

    root: ObjectStoragePath
    dag_id: str
    label: str

    @classmethod
    def from_path(cls, path: str) -> RunStaging:
        """The run folder named by a URL (``<root>/<dag_id>/<label>``), e.g. for tools and drills."""
        folder = ObjectStoragePath(path)
        return cls(root=folder.parent.parent, dag_id=folder.parent.name, label=folder.name)

    @property
    def folder(self) -> ObjectStoragePath:
        return self.root / self.dag_id / self.label

    def file(self, name: str) -> ObjectStoragePath:
        return self.folder / name

    def __str__(self) -> str:
        return str(self.folder)

    # --- writing ----------------------------------------------------------------------------------

    def clear(self) -> None:
        """Remove everything from a previous attempt: rerunning overwrites, never appends."""
        if self.folder.exists():
            self.folder.fs.rm(self.folder.path, recursive=True)
        self.folder.mkdir(parents=True, exist_ok=True)

    def clear_after(self, stage: str) -> None:
        """Remove what the stages after ``stage`` wrote: their results no longer follow from its output."""
        for name in layout.after(stage):
            target = self.file(name)
            if target.exists():
                target.fs.rm(target.path, recursive=True)

    def write_json(self, name: str, data: object) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_whole(self.file(name), json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True).encode())

    def writer(self, name: str) -> JsonlWriter:
        self.folder.mkdir(parents=True, exist_ok=True)
        return JsonlWriter(self.file(name))

    def write_failure(self, task: str, failure: Failure, *, attempt: int | None = None) -> None:
        """Record a failed task attempt where monitors (``make run``, the health page) look for it."""
        self.write_json(
            layout.FAILURE,
            {
                "format_version": FORMAT_VERSION,
                "task": task,
                "kind": failure.kind.value,
                "retryable": failure.retryable,
                "message": failure.one_line(),
                "remedy": failure.remedy,
                "attempt": attempt,
                "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            },
        )

    def clear_failure(self) -> None:
        target = self.file(layout.FAILURE)
        with contextlib.suppress(FileNotFoundError):
            if target.exists():
                target.fs.rm(target.path)

    # --- reading ----------------------------------------------------------------------------------

    def read_json(self, name: str) -> dict[str, Any] | None:
        """A small JSON file, or None when it does not exist."""
        path = self.file(name)
        if not path.exists():
            return None
        data = json.loads(path.read_bytes())
        return data if isinstance(data, dict) else None

    def read_manifest(self, stage: str) -> dict[str, Any]:
        """The manifest ``stage`` wrote last; a ``StagingError`` naming the task to rerun if unusable."""
        path = self.file(layout.STAGE_MANIFESTS[stage])
        if not path.exists():
            raise StagingError(
                f"{path} is missing: task {stage!r} has not completed for this run "
                f"(or its staging was deleted). Clear and rerun {stage!r} and the tasks after it."
            )
        try:
            data = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError) as exc:
            raise StagingError(f"{path} is not valid JSON ({exc}); clear and rerun {stage!r}.") from exc
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise StagingError(f"{path} has an unknown format; clear and rerun {stage!r}.")
        return data

    def read_lines(self, name: str, manifest: dict[str, Any], produced_by: str) -> Iterator[dict[str, Any]]:
        """Yield every record of a data file, then verify it against its manifest.

        A reader must not commit anything derived from the records before the iterator is exhausted, or must
        call ``verify`` first.
        """
        path = self.file(name)
        for line in self._raw_lines(name, manifest, produced_by):
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise StagingError(
                    f"{path} is corrupt ({exc}); clear and rerun {produced_by!r} for this run."
                ) from exc

    def verify(self, name: str, manifest: dict[str, Any], produced_by: str) -> int:
        """Read ``name`` once without parsing it, so it is proven intact before any side effect."""
        return sum(1 for _ in self._raw_lines(name, manifest, produced_by))

    def _raw_lines(self, name: str, manifest: dict[str, Any], produced_by: str) -> Iterator[bytes]:
        path = self.file(name)
        expected = manifest.get("files", {}).get(name)
        if not expected:
            raise StagingError(
                f"{self.file(layout.STAGE_MANIFESTS[produced_by])} does not list {name};"
                f" rerun {produced_by!r}."
            )
        if not path.exists():
            raise StagingError(f"{path} is missing; clear and rerun {produced_by!r} for this run.")
        digest = hashlib.sha256()
        count = 0
        try:
            with open_binary(path, "rb") as raw:
                hashing = _HashingReader(raw, digest)
                with gzip.GzipFile(fileobj=hashing, mode="rb") as lines:  # type: ignore[call-overload]
                    for line in lines:
                        count += 1
                        yield line
        except (OSError, EOFError) as exc:
            raise StagingError(
                f"{path} is corrupt ({exc}); clear and rerun {produced_by!r} for this run."
            ) from exc
        if count != expected["count"] or digest.hexdigest() != expected["sha256"]:
            raise StagingError(
                f"{path} does not match its manifest (lines {count} vs {expected['count']}, or checksum); "
                f"it was changed after {produced_by!r} finished. Clear and rerun {produced_by!r}."
            )
