"""The tables the stand-in knows, loaded from ``data/dataverse_schema.json``.

That file is derived from real Dataverse metadata by ``sandbox/scripts/build_dataverse_schema.py``; this
module only gives it types and the few derived views validation and metadata endpoints need.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

LOOKUP_TYPES = frozenset({"Lookup", "Customer", "Owner"})

EDM_TYPES = {
    "String": "Edm.String",
    "Memo": "Edm.String",
    "EntityName": "Edm.String",
    "Uniqueidentifier": "Edm.Guid",
    "Boolean": "Edm.Boolean",
    "Integer": "Edm.Int32",
    "Picklist": "Edm.Int32",
    "State": "Edm.Int32",
    "Status": "Edm.Int32",
    "BigInt": "Edm.Int64",
    "Decimal": "Edm.Decimal",
    "Money": "Edm.Decimal",
    "Double": "Edm.Double",
    "DateTime": "Edm.DateTimeOffset",
    "Image": "Edm.Binary",
    "File": "Edm.Guid",
}


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str
    create: bool
    update: bool
    read: bool = True
    max_length: int | None = None
    targets: tuple[str, ...] = ()

    @property
    def is_lookup(self) -> bool:
        return self.type in LOOKUP_TYPES

    @property
    def property_name(self) -> str:
        """The Web API property that carries the value: ``_x_value`` for lookups."""
        return f"_{self.name}_value" if self.is_lookup else self.name

    @property
    def edm_type(self) -> str:
        return "Edm.Guid" if self.is_lookup else EDM_TYPES.get(self.type, "Edm.String")


@dataclass(frozen=True)
class SingleNav:
    name: str
    attribute: str
    targets: tuple[str, ...]


@dataclass(frozen=True)
class CollectionNav:
    name: str
    target: str
    attribute: str


@dataclass(frozen=True)
class StateOption:
    value: int
    label: str
    invariant: str
    default_status: int


@dataclass(frozen=True)
class StatusOption:
    value: int
    label: str
    state: int


@dataclass(frozen=True)
class EntitySchema:
    logical_name: str
    entity_set: str
    schema_name: str
    primary_id: str
    primary_name: str
    metadata_id: str
    object_type_code: int | None
    is_activity: bool
    attributes: Mapping[str, Attribute]
    states: Mapping[int, StateOption]
    statuses: Mapping[int, StatusOption]
    picklists: Mapping[str, tuple[tuple[int, str], ...]]
    single_navs: Mapping[str, SingleNav]
    collection_navs: Mapping[str, CollectionNav]
    # participationtypemask -> the PartyList column's lookup targets (email: 1 from, 2 to, 3 cc, 4 bcc)
    party_lists: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    properties: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        readable = {a.property_name for a in self.attributes.values() if a.read}
        object.__setattr__(self, "properties", frozenset(readable))

    @property
    def type_name(self) -> str:
        return f"Microsoft.Dynamics.CRM.{self.logical_name}"

    @property
    def state_type(self) -> str:
        """How platform messages name the state enum, e.g. ``EmailState``."""
        return f"{self.schema_name}State"

    @property
    def default_state(self) -> StateOption | None:
        return self.states.get(0) or next(iter(self.states.values()), None)

    @property
    def parties_nav(self) -> str | None:
        """The collection navigation property for deep-inserting activity parties, if any."""
        nav = f"{self.logical_name}_activity_parties"
        return nav if nav in self.collection_navs else None

    def option_label(self, attribute: str, value: object) -> str | None:
        if attribute == "statecode" and isinstance(value, int) and value in self.states:
            return self.states[value].label
        if attribute == "statuscode" and isinstance(value, int) and value in self.statuses:
            return self.statuses[value].label
        return dict(self.picklists.get(attribute, ())).get(value) if isinstance(value, int) else None


@dataclass(frozen=True)
class Schema:
    entities: Mapping[str, EntitySchema]
    entity_sets: Mapping[str, str]  # logical name -> entity set name, also for tables not hosted

    def by_set(self, entity_set: str) -> EntitySchema | None:
        for entity in self.entities.values():
            if entity.entity_set == entity_set:
                return entity
        return None

    def logical_for_set(self, entity_set: str) -> str | None:
        return next((logical for logical, name in self.entity_sets.items() if name == entity_set), None)


def _entity(logical: str, raw: Mapping[str, Any]) -> EntitySchema:
    attributes = {
        name: Attribute(
            name=name,
            type=spec["type"],
            create=bool(spec.get("create")),
            update=bool(spec.get("update")),
            read=bool(spec.get("read", True)),
            max_length=spec.get("max_length"),
            targets=tuple(spec.get("targets", ())),
        )
        for name, spec in raw["attributes"].items()
    }
    return EntitySchema(
        logical_name=logical,
        entity_set=raw["entity_set"],
        schema_name=raw["schema_name"],
        primary_id=raw["primary_id"],
        primary_name=raw["primary_name"],
        metadata_id=raw["metadata_id"],
        object_type_code=raw.get("object_type_code"),
        is_activity=bool(raw.get("is_activity")),
        attributes=attributes,
        states={
            s["value"]: StateOption(s["value"], s["label"], s["invariant"], s["default_status"])
            for s in raw["states"]
        },
        statuses={s["value"]: StatusOption(s["value"], s["label"], s["state"]) for s in raw["statuses"]},
        picklists={
            name: tuple((int(v), str(label)) for v, label in opts) for name, opts in raw["picklists"].items()
        },
        single_navs={
            name: SingleNav(name, nav["attribute"], tuple(nav["targets"]))
            for name, nav in raw["single_navs"].items()
        },
        collection_navs={
            name: CollectionNav(name, nav["target"], nav["attribute"])
            for name, nav in raw["collection_navs"].items()
        },
        party_lists={int(mask): tuple(spec["targets"]) for mask, spec in raw.get("party_lists", {}).items()},
    )


@cache
def load_schema() -> Schema:
    text = (
        resources.files("nylas_dataverse_sandbox").joinpath("data/dataverse_schema.json").read_text("utf-8")
    )
    raw = json.loads(text)
    entities = {logical: _entity(logical, spec) for logical, spec in raw["entities"].items()}
    return Schema(entities=entities, entity_sets=dict(raw["entity_sets"]))
