"""The grants file, validated once per version and looked up by grant: what the DAG files and tasks read.

Parsing and validating the grants file takes time proportional to its size (5,000 grants: 0.9 to 2.8 s
on the loaded two-core development machine). Every daily DAG file is parsed every 30 s by the DAG
processor, and every task parses its DAG file again before it runs, so without this module each of them
would pay for the whole file. Instead the first process that needs a version of the file validates it with
``core.config.parse_config`` and stores the result in an index (one SQLite file, written whole and then
moved into place, never changed afterwards); every later one reads only the rows it needs:

- a task reads one grant's row (``load_one``), found through the file's ``os.stat`` identity without
  opening the grants file at all;
- a shard's DAG file reads its shard's rows (``load_shard``), the config-check DAG every row
  (``load_all``).

Which index belongs to the file: the index is named by a hash of the file's path and bytes and of the
code that validates it (so a new release or a changed rule never reads an old index). A second, tiny
file maps the file's stat identity (size, mtime, ctime, inode, device) to that name. It is only written
when the file was last changed at least ``RACY_SECONDS`` before its bytes were read, so a change that
keeps the size and lands within one timestamp tick cannot be mistaken for the old version; until then a
reader hashes the bytes instead (as git does with "racily clean" files).

The index lives in ``$NYLAS_DATAVERSE_CACHE_DIR`` (default: a folder of the system's temporary
directory private to the user), one per host. A folder that is missing, shared with other users or not
writable only costs speed: every lookup then validates the file itself. Any unreadable index is ignored
the same way.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import logging
import os
import sqlite3
import stat
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from nylas_dataverse.core import config as config_rules
from nylas_dataverse.core.config import (
    AlertsConfig,
    ConfigError,
    ConfigResult,
    GrantConfig,
    NotifierConfig,
    PolicyConfig,
)
from nylas_dataverse.core.sharding import SHARDS, shard_of
from nylas_dataverse.pipeline.settings import config_path, load_grants

log = logging.getLogger(__name__)

CACHE_ENV = "NYLAS_DATAVERSE_CACHE_DIR"
RACY_SECONDS = 2.0  # larger than any filesystem's timestamp granularity (FAT's is 2 s)
KEEP_INDEXES = 32  # older index files are removed when a new one is written
_FORMAT = "grants-index-1"


# ---------------------------------------------------------------------------------------------------
# public API


def load_all(project_root: Path) -> ConfigResult:
    """Every valid grant, every error and the alerts of the grants file."""
    result, _ = _query(project_root, "SELECT config FROM grants ORDER BY key", ())
    return result


def load_shard(project_root: Path, shard: int) -> ConfigResult:
    """The valid grants of one shard (``core.sharding.shard_of``), with every error and the alerts."""
    result, whole = _query(project_root, "SELECT config FROM grants WHERE shard = ? ORDER BY key", (shard,))
    if not whole:
        return result
    grants = tuple(g for g in result.grants if shard_of(g.key) == shard)
    return ConfigResult(grants=grants, errors=result.errors, alerts=result.alerts)


def load_one(project_root: Path, key: str) -> tuple[GrantConfig | None, AlertsConfig]:
    """The valid grant with this key (None when there is none) and the alerts: what one task needs.

    Its cost does not depend on how many grants the file lists once the file's version is indexed.
    """
    result, _ = _query(project_root, "SELECT config FROM grants WHERE key = ?", (key,), one=True)
    return next((g for g in result.grants if g.key == key), None), result.alerts


def _query(
    project_root: Path, query: str, args: tuple[Any, ...], *, one: bool = False
) -> tuple[ConfigResult, bool]:
    """The query's rows from the index of the file's current version (built if needed), and False; or,
    when only the file itself can answer, the whole validated file and True."""
    if one:
        linked = _linked_index(config_path(project_root))
        if linked is not None:
            try:
                return _read(linked, query, args, errors=False), False
            except (sqlite3.Error, ValueError, KeyError, TypeError):
                pass  # an unreadable index: find (or rebuild) it from the file's bytes below
    found = _index_for_file(project_root)
    if isinstance(found, ConfigResult):
        return found, True
    try:
        return _read(found, query, args, errors=not one), False
    except (sqlite3.Error, ValueError, KeyError, TypeError) as exc:
        _warn_once(f"Ignoring the unreadable grants index {found} ({exc})")
        found.unlink(missing_ok=True)
        return load_grants(project_root), True


def _linked_index(path: Path) -> Path | None:
    """The index that the file's stat identity was linked to (no reading of the file itself)."""
    folder = _cache_folder()
    if folder is None:
        return None
    try:
        identity = os.stat(path)
        name = (folder / f"{_stat_name(path, identity)}.stat").read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return None
    index = folder / f"{name}.sqlite"
    return index if index.exists() else None


# ---------------------------------------------------------------------------------------------------
# finding or building the index of the file's current version


def _index_for_file(project_root: Path) -> Path | ConfigResult:
    """The index of the grants file as it is now, building it if needed; or, when there can be no index
    (unreadable file, no usable cache folder, a failed write), the validated file itself."""
    path = config_path(project_root)
    try:
        identity = os.stat(path)
        data = path.read_bytes()
    except OSError:
        return load_grants(project_root)  # names the file and what to do
    read_at = time.time()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"is not UTF-8 text (byte {exc.start} cannot be decoded); save it as UTF-8"
        return ConfigResult(grants=(), errors=(ConfigError(str(path), None, None, message),))
    folder = _cache_folder()
    if folder is None:
        return config_rules.parse_config(text, str(path))
    index = folder / f"{_content_name(str(path), data)}.sqlite"
    if not index.exists():
        result = config_rules.parse_config(text, str(path))
        try:
            _write(index, result)
        except (OSError, sqlite3.Error, yaml.YAMLError, TypeError, ValueError) as exc:
            log.warning("Could not write the grants index %s (%s); parsing the file each time", index, exc)
            return result
    if max(identity.st_mtime, identity.st_ctime) < read_at - RACY_SECONDS:
        link = folder / f"{_stat_name(path, identity)}.stat"
        try:
            if not link.exists():
                _write_atomically(link, index.stem.encode("ascii"))
        except OSError as exc:
            log.debug("Could not link %s to its grants index: %s", path, exc)
    return index


def _cache_folder() -> Path | None:
    configured = os.environ.get(CACHE_ENV, "").strip()
    base = Path(configured) if configured else Path(tempfile.gettempdir()) / f"nylas-dataverse-{os.getuid()}"
    folder = base / "grants-index"
    try:
        for checked in (base, folder):
            checked.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = checked.stat()
            # Anyone else who can write here could make the DAGs use another configuration.
            if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                _warn_once(f"Not using {checked} for the grants index: it is not private to this user")
                return None
    except OSError as exc:
        _warn_once(f"No grants index in {folder} ({exc.strerror or exc}); every parse reads the grants file")
        return None
    return folder


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message)


@functools.cache
def _code_fingerprint() -> str:
    """What the index depends on besides the file: the validation code, the grant's shape, the shards."""
    digest = hashlib.sha256(f"{_FORMAT}\0{SHARDS}\0".encode())
    digest.update(Path(config_rules.__file__).read_bytes())
    digest.update(" ".join((*_GRANT_FIELDS, "|", *_POLICY_FIELDS)).encode())
    return digest.hexdigest()


def _content_name(source: str, data: bytes) -> str:
    digest = hashlib.sha256(f"{_code_fingerprint()}\0{source}\0".encode())
    digest.update(data)
    return digest.hexdigest()[:40]


def _stat_name(path: Path, identity: os.stat_result) -> str:
    parts = (
        _code_fingerprint(),
        str(path),
        identity.st_size,
        identity.st_mtime_ns,
        identity.st_ctime_ns,
        identity.st_ino,
        identity.st_dev,
    )
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:40]


# ---------------------------------------------------------------------------------------------------
# the index file


def _write(index: Path, result: ConfigResult) -> None:
    scratch = index.with_name(f".{index.stem}.{os.getpid()}.tmp")
    scratch.unlink(missing_ok=True)
    connection = sqlite3.connect(scratch)
    try:
        connection.executescript(
            "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE grants (key TEXT PRIMARY KEY, shard INTEGER NOT NULL, config TEXT NOT NULL);"
            "CREATE INDEX grants_by_shard ON grants (shard);"
        )
        connection.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [("errors", _encode_errors(result.errors)), ("alerts", _encode_alerts(result.alerts))],
        )
        connection.executemany(
            "INSERT INTO grants VALUES (?, ?, ?)",
            ((g.key, shard_of(g.key), _encode_grant(g)) for g in result.grants),
        )
        connection.commit()
    finally:
        connection.close()
    os.replace(scratch, index)  # a local cache folder: readers see the whole index or none
    _prune(index.parent, keep=index)


def _read(index: Path, query: str, args: tuple[Any, ...], *, errors: bool = True) -> ConfigResult:
    # immutable: the file never changes once in place, so SQLite needs no locks to read it.
    connection = sqlite3.connect(f"{index.as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        rows = connection.execute(query, args).fetchall()
        meta = dict(connection.execute("SELECT name, value FROM meta").fetchall())
    finally:
        connection.close()
    return ConfigResult(
        grants=tuple(_decode_grant(config) for (config,) in rows),
        errors=_decode_errors(meta["errors"]) if errors else (),
        alerts=_decode_alerts(meta["alerts"]),
    )


def _write_atomically(path: Path, data: bytes) -> None:
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    scratch.write_bytes(data)
    os.replace(scratch, path)


def _prune(folder: Path, keep: Path) -> None:
    """Keep the newest indexes (and links); a removed one is rebuilt if its file version comes back."""
    for pattern, limit in (("*.sqlite", KEEP_INDEXES), ("*.stat", KEEP_INDEXES * 8)):
        try:
            found = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
        except OSError:
            continue
        for old in found[limit:]:
            if old != keep:
                old.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------
# encoding: JSON for grants and errors, YAML for the alerts' keyword arguments (any YAML value)


_GRANT_FIELDS = tuple(f.name for f in dataclasses.fields(GrantConfig))
_POLICY_FIELDS = tuple(f.name for f in dataclasses.fields(PolicyConfig))


def _encode_grant(grant: GrantConfig) -> str:
    values = {name: getattr(grant, name) for name in _GRANT_FIELDS}  # dataclasses.asdict is 10x slower
    values["policy"] = {name: getattr(grant.policy, name) for name in _POLICY_FIELDS}
    return json.dumps(values, default=_iso_date)


def _iso_date(value: object) -> str:
    if isinstance(value, datetime.date):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in the grants index")


def _tuples(values: dict[str, Any]) -> dict[str, Any]:
    return {name: tuple(value) if isinstance(value, list) else value for name, value in values.items()}


def _decode_grant(text: str) -> GrantConfig:
    values = _tuples(json.loads(text))
    values["start_date"] = datetime.date.fromisoformat(values["start_date"])
    values["policy"] = PolicyConfig(**_tuples(values["policy"]))
    return GrantConfig(**values)


def _encode_errors(errors: Iterable[ConfigError]) -> str:
    return json.dumps([[e.source, e.grant, e.key, e.message] for e in errors])


def _decode_errors(text: str) -> tuple[ConfigError, ...]:
    return tuple(ConfigError(*parts) for parts in json.loads(text))


def _encode_alerts(alerts: AlertsConfig) -> str:
    return yaml.safe_dump(
        {
            event: [{"notifier": n.class_path, "kwargs": dict(n.kwargs)} for n in getattr(alerts, event)]
            for event in config_rules.ALERT_EVENTS
        }
    )


def _decode_alerts(text: str) -> AlertsConfig:
    events = yaml.safe_load(text)
    return AlertsConfig(
        **{
            event: tuple(NotifierConfig(n["notifier"], n["kwargs"]) for n in events.get(event, []))
            for event in config_rules.ALERT_EVENTS
        }
    )
