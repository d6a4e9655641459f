"""The staging area between tasks: one folder per DAG and window, gzip JSON lines plus JSON manifests.

Layout under the staging root (``NYLAS_DATAVERSE_STAGING``, any ``ObjectStoragePath`` URL)::

    <dag_id>/<YYYY-MM-DD of window start>/
        extract.json          manifest written last by extract: counts, checksum, folder roles
        messages.jsonl.gz     Nylas messages as received (bodies included)
        transform.json        manifest written last by transform
        payloads.jsonl.gz     one decision per message: a Dataverse payload, a skip or a failure
        quarantine.jsonl.gz   messages that could not be parsed, kept for inspection
        load/part-*.json      ledger entries of each finished load batch (resume points)
        ledger.jsonl          one outcome per extracted message
        report.json           run counts, request counts, durations

A manifest is written only after its data file is complete, and carries the data file's line count and
SHA-256, so a reader can tell a finished file from a missing, truncated or replaced one.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from airflow.sdk import ObjectStoragePath

STAGING_ENV = "NYLAS_DATAVERSE_STAGING"
FORMAT_VERSION = 1


class StagingError(RuntimeError):
    """Staged data is missing or unreadable; the message says which task to rerun."""


def staging_root(project_root: Path) -> ObjectStoragePath:
    """The root from ``NYLAS_DATAVERSE_STAGING``, or ``.staging/`` in the project (local runs only)."""
    configured = os.environ.get(STAGING_ENV, "").strip()
    if configured:
        return ObjectStoragePath(configured)
    return ObjectStoragePath((project_root / ".staging").resolve().as_uri())


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
        self._raw = self.path.open("wb")
        self._hashing = _HashingWriter(self._raw)
        # Level 3: most of the size win of level 9 at a fraction of the CPU.
        self._gzip = gzip.GzipFile(fileobj=self._hashing, mode="wb", compresslevel=3, mtime=0)  # type: ignore[arg-type]
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


@dataclass(frozen=True)
class RunStaging:
    """The staging folder of one DAG run window."""

    root: ObjectStoragePath
    dag_id: str
    label: str

    @classmethod
    def from_path(cls, path: str) -> RunStaging:
        folder = ObjectStoragePath(path)
        return cls(root=folder.parent.parent, dag_id=folder.parent.name, label=folder.name)

    @property
    def folder(self) -> ObjectStoragePath:
        return self.root / self.dag_id / self.label

    def file(self, name: str) -> ObjectStoragePath:
        return self.folder / name

    def clear(self) -> None:
        """Remove everything from a previous attempt: rerunning overwrites, never appends."""
        if self.folder.exists():
            self.folder.fs.rm(self.folder.path, recursive=True)
        self.folder.mkdir(parents=True, exist_ok=True)

    def clear_from(self, names: tuple[str, ...]) -> None:
        for name in names:
            target = self.file(name)
            if target.exists():
                target.fs.rm(target.path, recursive=True)

    def write_json(self, name: str, data: object) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.file(name).write_bytes(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True).encode())

    def read_manifest(self, name: str, produced_by: str) -> dict[str, Any]:
        path = self.file(name)
        if not path.exists():
            raise StagingError(
                f"{path} is missing: task {produced_by!r} has not completed for this window "
                f"(or its staging was deleted). Clear and rerun {produced_by!r} and the tasks after it."
            )
        try:
            data = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError) as exc:
            raise StagingError(f"{path} is not valid JSON ({exc}); clear and rerun {produced_by!r}.") from exc
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise StagingError(f"{path} has an unknown format; clear and rerun {produced_by!r}.")
        return data

    def writer(self, name: str) -> JsonlWriter:
        self.folder.mkdir(parents=True, exist_ok=True)
        return JsonlWriter(self.file(name))

    def read_lines(self, name: str, manifest: dict[str, Any], produced_by: str) -> Iterator[dict[str, Any]]:
        """Yield every record of a data file, then verify it against its manifest.

        A reader must not commit anything derived from the records before the iterator is exhausted.
        """
        path = self.file(name)
        expected = manifest.get("files", {}).get(name)
        if not expected:
            raise StagingError(
                f"{self.file(produced_by + '.json')} does not list {name}; rerun {produced_by!r}."
            )
        if not path.exists():
            raise StagingError(f"{path} is missing; clear and rerun {produced_by!r} for this window.")
        digest = hashlib.sha256()
        count = 0
        try:
            with path.open("rb") as raw:
                hashing = _HashingReader(raw, digest)
                with gzip.GzipFile(fileobj=hashing, mode="rb") as lines:  # type: ignore[arg-type]
                    for line in lines:
                        count += 1
                        yield json.loads(line)
        except (OSError, EOFError, ValueError) as exc:
            raise StagingError(
                f"{path} is corrupt ({exc}); clear and rerun {produced_by!r} for this window."
            ) from exc
        if count != expected["count"] or digest.hexdigest() != expected["sha256"]:
            raise StagingError(
                f"{path} does not match its manifest (lines {count} vs {expected['count']}, or checksum); "
                f"it was changed after {produced_by!r} finished. Clear and rerun {produced_by!r}."
            )


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
