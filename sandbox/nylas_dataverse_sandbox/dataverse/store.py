"""Rows and counters persisted in SQLite, with an in-memory copy for fast scans.

One re-entrant lock serialises every read and write (the server runs requests on many threads). ``atomic()``
nests: the outermost level is a SQLite transaction, inner levels are savepoints, and an undo log restores the
in-memory copy when a level rolls back, so a failed ``$batch`` change set leaves no trace anywhere.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Row = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    entity_set TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (entity_set, id)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


IndexKey = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def casefold_key(value: Any) -> Any:
    """Index key for a case-insensitive text column (Dataverse compares strings like SQL Server's default
    collation: without regard to case)."""
    return value.casefold() if isinstance(value, str) else value


class Store:
    def __init__(
        self,
        db_path: Path,
        indexes: tuple[tuple[str, str] | tuple[str, str, IndexKey], ...] = (),
    ) -> None:
        self.db_path = db_path
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._rows: dict[str, dict[str, Row]] = {}
        # Secondary indexes: (entity set, column) -> key(column value) -> row ids. Registered before loading.
        self._indexes: dict[tuple[str, str], dict[Any, set[str]]] = {}
        self._index_keys: dict[tuple[str, str], IndexKey] = {}
        for spec in indexes:
            entity_set, column = spec[0], spec[1]
            self._indexes[(entity_set, column)] = {}
            self._index_keys[(entity_set, column)] = spec[2] if len(spec) > 2 else _same
        self._counters: dict[str, int] = {}
        self._depth = 0
        self._undo: list[Callable[[], None]] = []
        self._load()

    def _load(self) -> None:
        for entity_set, row_id, data in self._db.execute("SELECT entity_set, id, data FROM rows"):
            self._set_row(entity_set, row_id, json.loads(data))
        self._counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())

    def close(self) -> None:
        with self.lock:
            self._db.close()

    # --- transactions ---------------------------------------------------------------------------------
    @contextmanager
    def atomic(self) -> Iterator[None]:
        """All writes inside either all happen or none do (memory and disk)."""
        with self.lock:
            depth = self._depth
            savepoint = f"level_{depth}"
            self._db.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {savepoint}")
            mark = len(self._undo)
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                while len(self._undo) > mark:
                    self._undo.pop()()
                if depth == 0:
                    self._db.execute("ROLLBACK")
                else:
                    self._db.execute(f"ROLLBACK TO {savepoint}")
                    self._db.execute(f"RELEASE {savepoint}")
                raise
            self._depth -= 1
            if depth == 0:
                self._db.execute("COMMIT")
                self._undo.clear()
            else:
                self._db.execute(f"RELEASE {savepoint}")

    def _remember(self, undo: Callable[[], None]) -> None:
        if self._depth:
            self._undo.append(undo)

    # --- rows -----------------------------------------------------------------------------------------
    def get(self, entity_set: str, row_id: str) -> Row | None:
        with self.lock:
            row = self._rows.get(entity_set, {}).get(row_id)
            return dict(row) if row is not None else None

    def scan(self, entity_set: str, keep: Callable[[Row], bool] | None = None) -> list[Row]:
        """Copies of the rows ``keep`` accepts, ordered by id (the order paging relies on)."""
        with self.lock:
            table = self._rows.get(entity_set, {})
            ids = table if keep is None else [i for i, row in table.items() if keep(row)]
            return [dict(table[i]) for i in sorted(ids)]

    def find(self, entity_set: str, column: str, value: Any) -> list[Row]:
        """Rows whose ``column`` equals ``value``, through an index registered at construction."""
        return self.find_any(entity_set, column, (value,))

    def find_any(self, entity_set: str, column: str, values: Any) -> list[Row]:
        """Rows whose ``column`` matches any of ``values`` (under the index's key), ordered by id."""
        with self.lock:
            index = self._indexes[(entity_set, column)]
            key = self._index_keys[(entity_set, column)]
            ids: set[str] = set()
            for value in values:
                ids |= index.get(key(value), set())
            table = self._rows.get(entity_set, {})
            return [dict(table[i]) for i in sorted(ids)]

    def has_index(self, entity_set: str, column: str) -> bool:
        return (entity_set, column) in self._indexes

    def put_many(self, entity_set: str, rows: list[tuple[str, Row]]) -> None:
        """Insert or replace many rows in one transaction (bulk seeding for measurements)."""
        with self.atomic():
            for row_id, row in rows:
                previous = self._rows.get(entity_set, {}).get(row_id)
                self._set_row(entity_set, row_id, dict(row))
                self._remember(self._restorer(entity_set, row_id, previous))
            self._db.executemany(
                "INSERT INTO rows (entity_set, id, data) VALUES (?, ?, ?) "
                "ON CONFLICT (entity_set, id) DO UPDATE SET data = excluded.data",
                ((entity_set, row_id, json.dumps(row, ensure_ascii=False)) for row_id, row in rows),
            )

    def count(self, entity_set: str) -> int:
        with self.lock:
            return len(self._rows.get(entity_set, {}))

    def put(self, entity_set: str, row_id: str, row: Row) -> None:
        with self.atomic():
            previous = self._rows.get(entity_set, {}).get(row_id)
            self._set_row(entity_set, row_id, dict(row))
            self._remember(lambda: self._set_row(entity_set, row_id, previous))
            self._db.execute(
                "INSERT INTO rows (entity_set, id, data) VALUES (?, ?, ?) "
                "ON CONFLICT (entity_set, id) DO UPDATE SET data = excluded.data",
                (entity_set, row_id, json.dumps(row, ensure_ascii=False)),
            )

    def _restorer(self, entity_set: str, row_id: str, previous: Row | None) -> Callable[[], None]:
        return lambda: self._set_row(entity_set, row_id, previous)

    def delete(self, entity_set: str, row_id: str) -> None:
        with self.atomic():
            previous = self._rows.get(entity_set, {}).get(row_id)
            self._set_row(entity_set, row_id, None)
            self._remember(lambda: self._set_row(entity_set, row_id, previous))
            self._db.execute("DELETE FROM rows WHERE entity_set = ? AND id = ?", (entity_set, row_id))

    def _set_row(self, entity_set: str, row_id: str, row: Row | None) -> None:
        """Replace (or with None remove) one row in memory, keeping the indexes in step."""
        table = self._rows.setdefault(entity_set, {})
        old = table.pop(row_id, None)
        if row is not None:
            table[row_id] = row
        for (indexed_set, column), index in self._indexes.items():
            if indexed_set != entity_set:
                continue
            key = self._index_keys[(indexed_set, column)]
            if old is not None:
                index.get(key(old.get(column)), set()).discard(row_id)
            if row is not None:
                index.setdefault(key(row.get(column)), set()).add(row_id)

    # --- counters and metadata -----------------------------------------------------------------------
    def increment(self, name: str, amount: int = 1) -> int:
        with self.atomic():
            previous = self._counters.get(name)
            value = (previous or 0) + amount
            self._counters[name] = value
            self._remember(lambda: self._restore_counter(name, previous))
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )
            return value

    def _restore_counter(self, name: str, previous: int | None) -> None:
        if previous is None:
            self._counters.pop(name, None)
        else:
            self._counters[name] = previous

    def counters(self) -> dict[str, int]:
        with self.lock:
            return dict(self._counters)

    def meta(self, key: str) -> str | None:
        with self.lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.atomic():
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def wipe(self) -> None:
        with self.atomic():
            self._db.execute("DELETE FROM rows")
            self._db.execute("DELETE FROM counters")
            self._db.execute("DELETE FROM meta")
            self._rows.clear()
            for index in self._indexes.values():
                index.clear()
            self._counters.clear()
