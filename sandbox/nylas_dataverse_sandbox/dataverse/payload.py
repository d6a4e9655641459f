"""Validate a POST/PATCH body against the table's metadata, as the Web API does before any write.

Pure apart from the ``exists`` callback that says whether a bound row exists. Decisions where the real
service is not documented (see the module docstring of ``errors``):

- columns that are not valid for the operation (``IsValidForCreate``/``IsValidForUpdate`` false, e.g.
  ``inreplyto``, ``createdon``, ``statecode`` on create) are dropped silently, as widely reported for
  ``statecode`` and ``createdon``; they never reach the row;
- lengths are counted in UTF-16 code units, like .NET strings (an emoji counts 2); ``length_unit=
  "codepoints"`` counts code points instead (the other answer to uncertain-behaviours row 4);
- a bind to a navigation property typed ``activitypointer`` (``objectid_activitypointer``) accepts any
  activity row, since ``email`` derives from ``activitypointer``;
- ``_x_value`` lookup properties in a body are read-only and dropped.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nylas_dataverse_sandbox.dataverse import errors
from nylas_dataverse_sandbox.dataverse.schema import Attribute, EntitySchema, Schema

EMAIL_PARTY_MASKS = {1: "Sender", 2: "ToRecipient", 3: "CCRecipient", 4: "BccRecipient"}
_BIND_SUFFIX = "@odata.bind"
_ENTITY_REFERENCE = re.compile(r"(?:^|/)([A-Za-z_]\w*)\(([^()]*)\)$")


@dataclass(frozen=True)
class Bind:
    nav: str
    attribute: str
    target: str  # logical name of the bound row's table
    target_id: str


@dataclass
class PreparedParty:
    columns: dict[str, Any]
    bind: Bind | None


@dataclass
class PreparedWrite:
    columns: dict[str, Any] = field(default_factory=dict)
    binds: dict[str, Bind] = field(default_factory=dict)  # by lookup attribute
    parties: list[PreparedParty] | None = None  # None: the body did not mention parties


def parse_guid(text: str) -> str | None:
    try:
        return str(uuid.UUID(text.strip().strip("{}")))
    except (ValueError, AttributeError):
        return None


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_entity_reference(value: str, schema: Schema) -> tuple[str, str]:
    """``/contacts(<id>)``, ``contacts(<id>)`` or an absolute URL -> (logical name, id)."""
    if value.startswith("$"):
        raise errors.BadRequestError(f"Content-ID Reference: '{value}' does not exist in the batch context.")
    match = _ENTITY_REFERENCE.search(value.strip())
    if not match:
        raise errors.BadRequestError(
            f"The entity reference '{value}' is not a valid URI of the form '/<entityset>(<id>)'."
        )
    entity_set, key = match.groups()
    logical = schema.logical_for_set(entity_set)
    if logical is None:
        raise errors.ResourceNotFoundError(entity_set)
    row_id = parse_guid(key)
    if row_id is None:
        raise errors.UnsupportedBySandboxError(
            f"The sandbox accepts only GUID keys in entity references, not '{key}' "
            "(alternate keys are not modelled)."
        )
    return logical, row_id


def _cannot_convert(value: object, attribute: Attribute) -> errors.InvalidValueError:
    return errors.InvalidValueError(
        f"Cannot convert the literal '{value}' to the expected type '{attribute.edm_type}'."
    )


def _normalize_datetime(value: str) -> str | None:
    text = value.strip()
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text).isoformat() + "T00:00:00Z"
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    # Dataverse stores UTC to the second.
    return moment.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def text_length(text: str, unit: str = "utf16") -> int:
    return len(text) if unit == "codepoints" else utf16_length(text)


def coerce_value(entity: EntitySchema, attribute: Attribute, value: Any, length_unit: str = "utf16") -> Any:
    """The value as stored, or a Dataverse-like error for a wrong type, length or option."""
    if value is None:
        return None
    kind = attribute.type
    if kind in {"String", "Memo", "EntityName"}:
        if not isinstance(value, str):
            raise _cannot_convert(value, attribute)
        if attribute.max_length is not None and text_length(value, length_unit) > attribute.max_length:
            raise errors.LengthExceededError(attribute.name, entity.logical_name, attribute.max_length)
        return value
    if kind == "Boolean":
        if not isinstance(value, bool):
            raise _cannot_convert(value, attribute)
        return value
    if kind in {"Integer", "Picklist", "State", "Status", "BigInt"}:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _cannot_convert(value, attribute)
        options = [v for v, _ in entity.picklists.get(attribute.name, ())]
        if kind == "Picklist" and options and value not in options:
            raise errors.OptionOutOfRangeError(attribute.name, entity.logical_name, value, options)
        return value
    if kind in {"Decimal", "Double", "Money"}:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _cannot_convert(value, attribute)
        return value
    if kind == "DateTime":
        normalized = _normalize_datetime(value) if isinstance(value, str) else None
        if normalized is None:
            raise _cannot_convert(value, attribute)
        return normalized
    if kind == "Uniqueidentifier":
        guid = parse_guid(value) if isinstance(value, str) else None
        if guid is None:
            raise _cannot_convert(value, attribute)
        return guid
    return value


def _primitive_for_navigation(nav: str) -> errors.BadRequestError:
    return errors.BadRequestError(
        "A node of type 'PrimitiveValue' was read from the JSON reader when trying to read the contents of "
        f"the navigation property '{nav}'; however, a 'StartObject' node was expected."
    )


class _Preparer:
    def __init__(self, schema: Schema, exists: Callable[[str, str], bool], length_unit: str) -> None:
        self.schema = schema
        self.exists = exists
        self.length_unit = length_unit

    def bind(self, entity: EntitySchema, nav_name: str, value: Any) -> Bind:
        nav = entity.single_navs.get(nav_name)
        if nav is None:
            if nav_name in entity.collection_navs:
                raise errors.UnsupportedBySandboxError(
                    f"Associating rows through the collection-valued navigation property '{nav_name}' is not "
                    "supported by the sandbox; bind the single-valued side instead."
                )
            raise errors.UndeclaredNavigationPropertyError(nav_name)
        if not isinstance(value, str):
            raise errors.BadRequestError(
                f"The value of '{nav_name}{_BIND_SUFFIX}' must be an entity reference string such as "
                "'/contacts(00000000-0000-0000-0000-000000000000)'."
            )
        target, target_id = parse_entity_reference(value, self.schema)
        bound = self.schema.entities.get(target)
        if "activitypointer" in nav.targets and bound is not None and bound.is_activity:
            pass  # an email (or any activity) is an activitypointer
        elif target not in nav.targets:
            raise errors.BindTargetMismatchError(nav_name, target, list(nav.targets))
        if not self.exists(target, target_id):
            raise errors.RecordNotFoundError(target, target_id)
        return Bind(nav_name, nav.attribute, target, target_id)

    def write(self, entity: EntitySchema, payload: Mapping[str, Any], *, creating: bool) -> PreparedWrite:
        prepared = PreparedWrite()
        for key, value in payload.items():
            if "@" in key:
                self._annotation(entity, key, value, prepared)
                continue
            if key == entity.parties_nav:
                prepared.parties = self.parties(entity, value)
                continue
            if key in entity.single_navs and key not in entity.attributes and not isinstance(value, dict):
                raise _primitive_for_navigation(key)
            if key in entity.collection_navs or (key in entity.single_navs and key not in entity.attributes):
                raise errors.UnsupportedBySandboxError(
                    f"Deep insert through the navigation property '{key}' is not supported by the sandbox; "
                    "create the related row separately and bind it with '@odata.bind'."
                )
            attribute = entity.attributes.get(key)
            if attribute is None:
                if key.startswith("_") and key.endswith("_value") and key in entity.properties:
                    continue  # read-only lookup value property
                raise errors.UnknownPayloadPropertyError(key, entity.logical_name)
            if attribute.is_lookup or not attribute.read:
                if key in entity.single_navs:
                    raise _primitive_for_navigation(key)
                raise errors.UnknownPayloadPropertyError(key, entity.logical_name)
            if not (attribute.create if creating else attribute.update):
                continue  # read-only for this operation: dropped (see module docstring)
            prepared.columns[key] = coerce_value(entity, attribute, value, self.length_unit)
        return prepared

    def _annotation(self, entity: EntitySchema, key: str, value: Any, prepared: PreparedWrite) -> None:
        if key.endswith(_BIND_SUFFIX):
            bind = self.bind(entity, key[: -len(_BIND_SUFFIX)], value)
            prepared.binds[bind.attribute] = bind
        elif key == "@odata.type" and (not isinstance(value, str) or value.lstrip("#") != entity.type_name):
            raise errors.BadRequestError(
                f"The type '{value}' in the payload does not match the entity set's type "
                f"'{entity.type_name}'."
            )
        # Other instance annotations (formatted values and the like) are ignored, as OData does.

    def parties(self, entity: EntitySchema, value: Any) -> list[PreparedParty]:
        party_entity = self.schema.entities["activityparty"]
        if not isinstance(value, list):
            raise errors.BadRequestError(
                f"The value of '{entity.parties_nav}' must be a JSON array of activity party objects."
            )
        parties = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise errors.BadRequestError(f"Activity party #{index + 1} must be a JSON object.")
            prepared = self.write(party_entity, item, creating=True)
            if prepared.parties is not None:
                raise errors.UnknownPayloadPropertyError("activityparty_activity_parties", "activityparty")
            bind = prepared.binds.pop("partyid", None)
            if prepared.binds:
                nav = next(iter(prepared.binds.values())).nav
                raise errors.InvalidPartyError(
                    f"Activity party #{index + 1} binds '{nav}'; only the 'partyid_<table>' navigation "
                    "properties may be bound on a deep-inserted party."
                )
            mask = prepared.columns.get("participationtypemask")
            if mask is None:
                raise errors.InvalidPartyError(
                    f"Activity party #{index + 1} has no participationtypemask; set 1 (Sender), 2 (To), "
                    "3 (Cc) or 4 (Bcc)."
                )
            if entity.logical_name == "email" and mask not in EMAIL_PARTY_MASKS:
                raise errors.InvalidPartyError(
                    f"participationtypemask {mask} is not valid for an email; use 1 (Sender), 2 (To), "
                    "3 (Cc) or 4 (Bcc)."
                )
            if bind is None and not prepared.columns.get("addressused"):
                raise errors.InvalidPartyError(
                    f"Activity party #{index + 1} names no party: bind 'partyid_<table>@odata.bind' or set "
                    "'addressused' for an unresolved address."
                )
            parties.append(PreparedParty(prepared.columns, bind))
        return parties


def prepare_write(
    schema: Schema,
    entity: EntitySchema,
    payload: Any,
    *,
    creating: bool,
    exists: Callable[[str, str], bool],
    length_unit: str = "utf16",
) -> PreparedWrite:
    if not isinstance(payload, dict):
        raise errors.BadRequestError("The request body must be a JSON object describing the entity.")
    return _Preparer(schema, exists, length_unit).write(entity, payload, creating=creating)
