"""Choosing one Dataverse row for an email address among the rows that carry it.

The pipeline looks up every distinct address of a run in bulk (contacts, accounts and leads by
`emailaddress1..3`, system users by `internalemailaddress`) and builds a `Directory` from the rows. This
module
holds only the rule; how rows are queried and read (entity sets, id columns) is Dataverse vocabulary and
lives next to the hook (`hooks/dataverse_tables.py`).
When several rows carry the same address, the rule below (modelled on how server-side sync resolves a
From address) picks one, and the resolution says how many records were candidates:

0. active rows before inactive ones (a deactivated contact or account, a disqualified lead): an inactive
   record is chosen only when no active record carries the address;
1. entity priority: systemuser, then contact, then account, then lead;
2. within that entity, the column the address was found in: `emailaddress1` (and
   `internalemailaddress`) before `emailaddress2` before `emailaddress3`;
3. then the earliest `created_on` (ISO 8601 text; unknown `""` sorts last);
4. then the lowest id (compared as lowercase text), so the choice never depends on query order.

Addresses compare casefolded and stripped. A record carrying the address in two columns is one
candidate, not two; `ambiguous` means more than one record matched. Filtering out disabled or
application users is the caller's job (do not pass their rows).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

ENTITIES = ("systemuser", "contact", "account", "lead")
# Where each table keeps its addresses, in the rank order of rule 2.
ENTITY_EMAIL_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "systemuser": ("internalemailaddress",),
        "contact": ("emailaddress1", "emailaddress2", "emailaddress3"),
        "account": ("emailaddress1", "emailaddress2", "emailaddress3"),
        "lead": ("emailaddress1", "emailaddress2", "emailaddress3"),
    }
)
_COLUMN_RANK = {"internalemailaddress": 1, "emailaddress1": 1, "emailaddress2": 2, "emailaddress3": 3}


def check_entity(entity: str) -> str:
    if entity not in ENTITIES:
        raise ValueError(f"unknown entity {entity!r}; expected one of {', '.join(ENTITIES)}")
    return entity


def email_columns(entity: str) -> tuple[str, ...]:
    """The columns holding an entity's email addresses (the ones the bulk lookup filters on)."""
    return ENTITY_EMAIL_COLUMNS[check_entity(entity)]


@dataclass(frozen=True)
class DirectoryRow:
    """One (record, email column) pair: `address` is the value found in `email_column`."""

    entity: str
    id: str
    email_column: str
    address: str
    created_on: str = ""
    name: str = ""
    active: bool = True

    def __post_init__(self) -> None:
        check_entity(self.entity)
        if self.email_column not in ENTITY_EMAIL_COLUMNS[self.entity]:
            raise ValueError(
                f"{self.entity} has no email column {self.email_column!r};"
                f" expected one of {', '.join(ENTITY_EMAIL_COLUMNS[self.entity])}"
            )

    def rank(self) -> tuple[bool, int, int, bool, str, str]:
        return (
            not self.active,
            ENTITIES.index(self.entity),
            _COLUMN_RANK[self.email_column],
            self.created_on == "",
            self.created_on,
            self.id.lower(),
        )


@dataclass(frozen=True)
class Resolution:
    entity: str
    id: str
    ambiguous: bool
    candidates: int


def normalise_address(address: str) -> str:
    return address.strip().casefold()


class Directory:
    """Resolved addresses of one run; built once, then read-only."""

    def __init__(self, resolutions: Mapping[str, Resolution]) -> None:
        self._resolutions: Mapping[str, Resolution] = MappingProxyType(dict(resolutions))

    @classmethod
    def from_rows(cls, rows: Iterable[DirectoryRow]) -> Directory:
        by_address: dict[str, list[DirectoryRow]] = defaultdict(list)
        for row in rows:
            by_address[normalise_address(row.address)].append(row)
        resolutions: dict[str, Resolution] = {}
        for address, candidates in by_address.items():
            best = min(candidates, key=DirectoryRow.rank)
            records = {(row.entity, row.id.lower()) for row in candidates}
            resolutions[address] = Resolution(
                entity=best.entity, id=best.id, ambiguous=len(records) > 1, candidates=len(records)
            )
        return cls(resolutions)

    def resolve(self, address: str) -> Resolution | None:
        return self._resolutions.get(normalise_address(address))

    def __len__(self) -> int:
        return len(self._resolutions)
