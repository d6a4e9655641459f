"""The addresses sales ops must create: every unresolved party address of a run, and a roll-up over runs.

An address is *unresolved* when mapping found no contact, account, lead or system user for it (see
``mapping.MappedEmail.unresolved``). For each one a run keeps:

- ``address`` (as first written, compared casefolded), ``display_name`` (the first non-empty name a message
  gave it);
- ``messages``: how many of the run's mapped messages named it;
- ``first_seen`` / ``last_seen``: the oldest and newest of those messages' dates (UTC, ISO 8601);
- ``direction``: ``incoming`` when it only appeared on mail the mailbox received, ``outgoing`` when only on
  mail it sent, ``both`` otherwise.

Never a subject or a body. ``merge`` rolls runs up by address: counts add, the seen dates widen, directions
combine, the first display name wins (runs are merged in the order given, which callers sort). Rows are
ordered by messages (most first), then address. The CSV cells are guarded against spreadsheet formulas.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass, replace

from nylas_dataverse.core.health import csv_cell
from nylas_dataverse.core.messages import NylasMessage

COLUMNS = ("address", "display_name", "messages", "first_seen", "last_seen", "direction")
INCOMING, OUTGOING, BOTH = "incoming", "outgoing", "both"
_DIRECTIONS = frozenset({INCOMING, OUTGOING, BOTH})


@dataclass(frozen=True)
class UnresolvedAddress:
    address: str
    display_name: str
    messages: int
    first_seen: dt.datetime
    last_seen: dt.datetime
    direction: str

    def __post_init__(self) -> None:
        if self.direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {sorted(_DIRECTIONS)}, got {self.direction!r}")

    def combined(self, other: UnresolvedAddress) -> UnresolvedAddress:
        return replace(
            self,
            display_name=self.display_name or other.display_name,
            messages=self.messages + other.messages,
            first_seen=min(self.first_seen, other.first_seen),
            last_seen=max(self.last_seen, other.last_seen),
            direction=self.direction if self.direction == other.direction else BOTH,
        )


class UnresolvedTally:
    """Collects a run's unresolved addresses message by message (one owner, mutable by design)."""

    def __init__(self) -> None:
        self._rows: dict[str, UnresolvedAddress] = {}

    def add_message(self, message: NylasMessage, unresolved: Iterable[str], *, outgoing: bool) -> None:
        names = {
            p.email.casefold(): p.name
            for p in reversed((*message.from_, *message.to, *message.cc, *message.bcc))
            if p.name
        }
        seen = dt.datetime.fromtimestamp(message.date, tz=dt.UTC)
        for address in unresolved:
            key = address.casefold()
            row = UnresolvedAddress(
                address, names.get(key, ""), 1, seen, seen, OUTGOING if outgoing else INCOMING
            )
            kept = self._rows.get(key)
            self._rows[key] = row if kept is None else kept.combined(row)

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self) -> list[UnresolvedAddress]:
        return _ordered(self._rows.values())


def _ordered(rows: Iterable[UnresolvedAddress]) -> list[UnresolvedAddress]:
    return sorted(rows, key=lambda row: (-row.messages, row.address.casefold()))


def merge(runs: Iterable[Iterable[UnresolvedAddress]]) -> list[UnresolvedAddress]:
    """One row per address over ``runs`` (see the module docstring)."""
    merged: dict[str, UnresolvedAddress] = {}
    for rows in runs:
        for row in rows:
            key = row.address.casefold()
            kept = merged.get(key)
            merged[key] = row if kept is None else kept.combined(row)
    return _ordered(merged.values())


def _stamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_csv(rows: Iterable[UnresolvedAddress]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(
            [
                csv_cell(row.address),
                csv_cell(row.display_name),
                row.messages,
                _stamp(row.first_seen),
                _stamp(row.last_seen),
                row.direction,
            ]
        )
    return out.getvalue()


def _unguard(cell: str) -> str:
    return cell[1:] if cell[:1] == "'" and cell[1:2] in ("=", "+", "-", "@", "\t", "\r") else cell


def from_csv(text: str) -> list[UnresolvedAddress]:
    """Inverse of ``to_csv``; ValueError naming the line when a row is malformed."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise ValueError(f"unresolved addresses CSV must have the columns {', '.join(COLUMNS)}")
    rows = []
    for line, record in enumerate(reader, start=2):
        try:
            rows.append(
                UnresolvedAddress(
                    address=_unguard(record["address"]),
                    display_name=_unguard(record["display_name"]),
                    messages=int(record["messages"]),
                    first_seen=dt.datetime.fromisoformat(record["first_seen"]),
                    last_seen=dt.datetime.fromisoformat(record["last_seen"]),
                    direction=record["direction"],
                )
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"line {line}: {exc}") from exc
    return rows
