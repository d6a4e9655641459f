"""Choosing one Dataverse row for an email address among the rows that carry it.

The pipeline looks up every distinct address of a run in bulk (contacts, accounts and leads by
`emailaddress1..3`, system users by `internalemailaddress`) and builds a `Directory` from the rows.
When several rows carry the same address, the rule below (modelled on how server-side sync resolves a
From address) picks one, and the resolution says how many records were candidates:

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
EMAIL_COLUMNS = ("emailaddress1", "emailaddress2", "emailaddress3", "internalemailaddress")
_COLUMN_RANK = {"internalemailaddress": 1, "emailaddress1": 1, "emailaddress2": 2, "emailaddress3": 3}

_ENTITY_SET = {"systemuser": "systemusers", "contact": "contacts", "account": "accounts", "lead": "leads"}
_REGARDING_NAV = {
    "contact": "regardingobjectid_contact_email",
    "account": "regardingobjectid_account_email",
    "lead": "regardingobjectid_lead_email",
}
# Columns to $select when querying each entity (id, display name, creation time, email columns).
_ID_COLUMN = {"systemuser": "systemuserid", "contact": "contactid", "account": "accountid", "lead": "leadid"}
_NAME_COLUMN = {"systemuser": "fullname", "contact": "fullname", "account": "name", "lead": "fullname"}
_ENTITY_EMAIL_COLUMNS = {
    "systemuser": ("internalemailaddress",),
    "contact": ("emailaddress1", "emailaddress2", "emailaddress3"),
    "account": ("emailaddress1", "emailaddress2", "emailaddress3"),
    "lead": ("emailaddress1", "emailaddress2", "emailaddress3"),
}


def _check_entity(entity: str) -> str:
    if entity not in ENTITIES:
        raise ValueError(f"unknown entity {entity!r}; expected one of {', '.join(ENTITIES)}")
    return entity


def entity_set(entity: str) -> str:
    """The Web API entity set name, e.g. contact -> contacts."""
    return _ENTITY_SET[_check_entity(entity)]


def party_nav(entity: str) -> str:
    """The activity party navigation property, e.g. contact -> partyid_contact."""
    return f"partyid_{_check_entity(entity)}"


def regarding_nav(entity: str) -> str | None:
    """The email's regarding navigation property; a system user cannot be regarding (None)."""
    return _REGARDING_NAV.get(_check_entity(entity))


def email_columns(entity: str) -> tuple[str, ...]:
    """The columns holding an entity's email addresses (the ones the bulk lookup filters on)."""
    return _ENTITY_EMAIL_COLUMNS[_check_entity(entity)]


def select_columns(entity: str) -> tuple[str, ...]:
    """The columns `DirectoryRow.from_odata` needs, for `$select`."""
    _check_entity(entity)
    return (_ID_COLUMN[entity], _NAME_COLUMN[entity], "createdon", *_ENTITY_EMAIL_COLUMNS[entity])


@dataclass(frozen=True)
class DirectoryRow:
    """One (record, email column) pair: `address` is the value found in `email_column`."""

    entity: str
    id: str
    email_column: str
    address: str
    created_on: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        _check_entity(self.entity)
        if self.email_column not in _ENTITY_EMAIL_COLUMNS[self.entity]:
            raise ValueError(
                f"{self.entity} has no email column {self.email_column!r};"
                f" expected one of {', '.join(_ENTITY_EMAIL_COLUMNS[self.entity])}"
            )

    @classmethod
    def from_odata(cls, entity: str, record: Mapping[str, object]) -> tuple[DirectoryRow, ...]:
        """One row per non-empty email column of a Web API record (queried with `select_columns`)."""
        _check_entity(entity)
        record_id = record.get(_ID_COLUMN[entity])
        if not isinstance(record_id, str) or not record_id:
            raise ValueError(f"{entity} record has no {_ID_COLUMN[entity]}")
        created_on, name = record.get("createdon"), record.get(_NAME_COLUMN[entity])
        return tuple(
            cls(
                entity=entity,
                id=record_id,
                email_column=column,
                address=address,
                created_on=created_on if isinstance(created_on, str) else "",
                name=name if isinstance(name, str) else "",
            )
            for column in _ENTITY_EMAIL_COLUMNS[entity]
            if isinstance(address := record.get(column), str) and address.strip()
        )

    def rank(self) -> tuple[int, int, bool, str, str]:
        return (
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
