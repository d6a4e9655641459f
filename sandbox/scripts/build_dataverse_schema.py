"""Derive the sandbox's compact Dataverse schema from the real metadata in the shared reference data.

Usage: python sandbox/scripts/build_dataverse_schema.py [REFERENCE_DIR] [OUTPUT_JSON]

Defaults: ``../shared/reference/data/dataverse-metadata`` (relative to the repository root) and
``sandbox/nylas_dataverse_sandbox/data/dataverse_schema.json``. The output is committed; re-run this script
when the reference metadata changes. Only what the sandbox validates against is kept:

- ``email``, ``activityparty``, ``contact``, ``account``: from the SDK ``EntityMetadata`` exports (attribute
  types, max lengths, create/update validity, option values, navigation-property names);
- ``systemuser``: from the Web API ``$metadata`` (CSDL) subset, which has property names and types but no
  lengths or validity flags (those default to "writable, no length limit");
- ``lead``: no reference metadata exists; a small hand-written definition (``_LEAD``) with the columns the
  pipeline queries, labelled ``"source": "hand-written"`` in the output;
- ``activitymimeattachment``: property and navigation-property names from the CSDL subset (so
  ``objectid_email`` and ``objectid_activitypointer`` are the real bind names); lengths and validity from
  the activitymimeattachment entity reference, which the CSDL lacks (``_ATTACHMENT_FACTS``);
- ``organization``: hand-written, only the columns the sandbox serves (``maxuploadfilesize``);
- for ``email``, the PartyList columns (``from``, ``to``, ``cc``, ``bcc``) are not properties but their
  lookup targets are kept as ``party_lists`` (the sender-party restriction validates against them).
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

_MD = "{http://schemas.microsoft.com/xrm/2011/Metadata}"
_CONTRACTS = "{http://schemas.microsoft.com/xrm/2011/Contracts}"
_ARRAYS = "{http://schemas.microsoft.com/2003/10/Serialization/Arrays}"
_EDM = "{http://docs.oasis-open.org/odata/ns/edm}"

SDK_ENTITIES = ("email", "activityparty", "contact", "account")
# Attribute types that are not properties of the Web API entity type (party lists are written through
# activity parties; virtual columns are display helpers).
_SKIPPED_TYPES = {"PartyList", "Virtual", "CalendarRules", "ManagedProperty"}
_LOOKUP_TYPES = {"Lookup", "Customer", "Owner"}

_EDM_TO_ATTRIBUTE_TYPE = {
    "Edm.String": "String",
    "Edm.Guid": "Uniqueidentifier",
    "Edm.Boolean": "Boolean",
    "Edm.Int32": "Integer",
    "Edm.Int64": "BigInt",
    "Edm.Decimal": "Decimal",
    "Edm.Double": "Double",
    "Edm.DateTimeOffset": "DateTime",
    "Edm.Binary": "Image",
}

# lead (Dynamics 365 Sales) is not in the reference exports. Lengths are the documented defaults of the
# columns the pipeline reads; state/status are the out-of-box lead values.
_LEAD: dict[str, Any] = {
    "source": "hand-written",
    "entity_set": "leads",
    "schema_name": "Lead",
    "primary_id": "leadid",
    "primary_name": "fullname",
    "metadata_id": "e1bb3c6a-5a2f-4a0e-8a2b-0c6d7f0b4c11",
    "object_type_code": 4,
    "is_activity": False,
    "attributes": {
        "leadid": {"type": "Uniqueidentifier", "create": True, "update": False},
        "firstname": {"type": "String", "max_length": 50, "create": True, "update": True},
        "lastname": {"type": "String", "max_length": 50, "create": True, "update": True},
        "fullname": {"type": "String", "max_length": 160, "create": False, "update": False},
        "subject": {"type": "String", "max_length": 300, "create": True, "update": True},
        "companyname": {"type": "String", "max_length": 100, "create": True, "update": True},
        "emailaddress1": {"type": "String", "max_length": 100, "create": True, "update": True},
        "emailaddress2": {"type": "String", "max_length": 100, "create": True, "update": True},
        "emailaddress3": {"type": "String", "max_length": 100, "create": True, "update": True},
        "createdon": {"type": "DateTime", "create": False, "update": False},
        "modifiedon": {"type": "DateTime", "create": False, "update": False},
        "versionnumber": {"type": "BigInt", "create": False, "update": False},
        "ownerid": {"type": "Owner", "create": True, "update": True, "targets": ["systemuser", "team"]},
        "statecode": {"type": "State", "create": False, "update": True},
        "statuscode": {"type": "Status", "create": True, "update": True},
    },
    "states": [
        {"value": 0, "label": "Open", "invariant": "Open", "default_status": 1},
        {"value": 1, "label": "Qualified", "invariant": "Qualified", "default_status": 3},
        {"value": 2, "label": "Disqualified", "invariant": "Disqualified", "default_status": 4},
    ],
    "statuses": [
        {"value": 1, "label": "New", "state": 0},
        {"value": 2, "label": "Contacted", "state": 0},
        {"value": 3, "label": "Qualified", "state": 1},
        {"value": 4, "label": "Lost", "state": 2},
        {"value": 5, "label": "Cannot Contact", "state": 2},
        {"value": 6, "label": "No Longer Interested", "state": 2},
        {"value": 7, "label": "Canceled", "state": 2},
    ],
    "picklists": {},
    "single_navs": {"ownerid": {"attribute": "ownerid", "targets": ["systemuser", "team"]}},
    "collection_navs": {"Lead_Emails": {"target": "email", "attribute": "regardingobjectid"}},
}


# activitymimeattachment facts the CSDL lacks, from the entity reference (learn.microsoft.com, reference/
# entities/activitymimeattachment): writable columns, String lengths, read-only columns.
_ATTACHMENT_FACTS: dict[str, dict[str, Any]] = {
    "activitymimeattachmentid": {"type": "Uniqueidentifier", "create": True, "update": False},
    "attachmentcontentid": {"type": "String", "max_length": 250, "create": True, "update": True},
    "attachmentnumber": {"type": "Integer", "create": True, "update": True},
    "body": {"type": "Memo", "max_length": 1073741823, "create": True, "update": True},
    "filename": {"type": "String", "max_length": 255, "create": True, "update": True},
    "mimetype": {"type": "String", "max_length": 256, "create": True, "update": True},
    "objecttypecode": {"type": "EntityName", "create": True, "update": True},
    "subject": {"type": "String", "max_length": 2000, "create": True, "update": True},
    "filesize": {"type": "Integer", "create": False, "update": False},
    "versionnumber": {"type": "BigInt", "create": False, "update": False},
}

_ORGANIZATION: dict[str, Any] = {
    "source": "hand-written",
    "entity_set": "organizations",
    "schema_name": "Organization",
    "primary_id": "organizationid",
    "primary_name": "name",
    "metadata_id": "b2c1d4e3-7f6a-4b58-9c0d-1e2f3a4b5c6d",
    "object_type_code": 1019,
    "is_activity": False,
    "attributes": {
        "organizationid": {"type": "Uniqueidentifier", "create": False, "update": False},
        "name": {"type": "String", "max_length": 160, "create": False, "update": True},
        "maxuploadfilesize": {"type": "Integer", "create": False, "update": True},
        "versionnumber": {"type": "BigInt", "create": False, "update": False},
        "createdon": {"type": "DateTime", "create": False, "update": False},
        "modifiedon": {"type": "DateTime", "create": False, "update": False},
    },
    "states": [],
    "statuses": [],
    "picklists": {},
    "single_navs": {},
    "collection_navs": {},
}

_PARTY_LIST_MASKS = {"from": 1, "to": 2, "cc": 3, "bcc": 4}


def _text(element: ET.Element | None, tag: str) -> str | None:
    if element is None:
        return None
    child = element.find(_MD + tag)
    if child is None or child.text is None:
        return None
    text = child.text.strip()
    return text or None


def _flag(element: ET.Element, tag: str) -> bool:
    return _text(element, tag) == "true"


def _label(option: ET.Element) -> str:
    label = option.find(_MD + "Label")
    if label is None:
        return ""
    for localized in label.iter(_CONTRACTS + "LocalizedLabel"):
        if localized.findtext(_CONTRACTS + "LanguageCode") == "1033":
            return localized.findtext(_CONTRACTS + "Label") or ""
    return ""


def _children(element: ET.Element, tag: str) -> list[ET.Element]:
    child = element.find(_MD + tag)
    return list(child) if child is not None else []


def _options(attribute: ET.Element) -> list[ET.Element]:
    option_set = attribute.find(_MD + "OptionSet")
    if option_set is None:
        return []
    options = option_set.find(_MD + "Options")
    return list(options) if options is not None else []


def _sdk_entity(path: Path) -> dict[str, Any]:
    root = ET.parse(path).getroot()  # noqa: S314 - trusted, checked-in reference data
    logical = _text(root, "LogicalName")
    attributes: dict[str, dict[str, Any]] = {}
    states: list[dict[str, Any]] = []
    statuses: list[dict[str, Any]] = []
    picklists: dict[str, list[list[Any]]] = {}
    party_lists: dict[str, dict[str, Any]] = {}
    for attribute in _children(root, "Attributes"):
        name = _text(attribute, "LogicalName")
        kind = _text(attribute, "AttributeType")
        if kind == "PartyList" and name in _PARTY_LIST_MASKS:
            targets = [
                t.text for t in _children(attribute, "Targets") if t.tag == _ARRAYS + "string" and t.text
            ]
            party_lists[str(_PARTY_LIST_MASKS[name])] = {"column": name, "targets": sorted(targets)}
        if not name or not kind or kind in _SKIPPED_TYPES or _text(attribute, "AttributeOf"):
            continue
        spec: dict[str, Any] = {
            "type": kind,
            "create": _flag(attribute, "IsValidForCreate"),
            "update": _flag(attribute, "IsValidForUpdate"),
        }
        if not _flag(attribute, "IsValidForRead"):
            spec["read"] = False
        max_length = _text(attribute, "MaxLength")
        if max_length and kind in {"String", "Memo"}:
            spec["max_length"] = int(max_length)
        if kind in _LOOKUP_TYPES:
            spec["targets"] = sorted(
                t.text for t in _children(attribute, "Targets") if t.tag == _ARRAYS + "string" and t.text
            )
        if kind == "State":
            for option in _options(attribute):
                states.append(
                    {
                        "value": int(_text(option, "Value") or 0),
                        "label": _label(option),
                        "invariant": _text(option, "InvariantName") or _label(option),
                        "default_status": int(_text(option, "DefaultStatus") or 0),
                    }
                )
        elif kind == "Status":
            for option in _options(attribute):
                statuses.append(
                    {
                        "value": int(_text(option, "Value") or 0),
                        "label": _label(option),
                        "state": int(_text(option, "State") or 0),
                    }
                )
        elif kind == "Picklist":
            picklists[name] = [[int(_text(o, "Value") or 0), _label(o)] for o in _options(attribute)]
        attributes[name] = spec

    single_navs: dict[str, dict[str, Any]] = {}
    for relationship in _children(root, "ManyToOneRelationships"):
        nav = _text(relationship, "ReferencingEntityNavigationPropertyName")
        attribute_name = _text(relationship, "ReferencingAttribute")
        target = _text(relationship, "ReferencedEntity")
        if not nav or not attribute_name or attribute_name not in attributes or not target:
            continue
        # The polymorphic owner relationship names the pseudo-entity "owner"; the attribute knows the targets.
        targets = attributes[attribute_name].get("targets", []) if target == "owner" else [target]
        single_navs[nav] = {"attribute": attribute_name, "targets": targets}
    owner = next((n for n, a in attributes.items() if a["type"] == "Owner"), None)
    if owner and owner not in single_navs:
        # Every user-owned table exposes the owner lookup as the navigation property ``ownerid``.
        single_navs[owner] = {"attribute": owner, "targets": attributes[owner].get("targets", [])}

    collection_navs: dict[str, dict[str, Any]] = {}
    for relationship in _children(root, "OneToManyRelationships"):
        nav = _text(relationship, "ReferencedEntityNavigationPropertyName")
        target = _text(relationship, "ReferencingEntity")
        attribute_name = _text(relationship, "ReferencingAttribute")
        if nav and target and attribute_name:
            collection_navs[nav] = {"target": target, "attribute": attribute_name}

    object_type_code = _text(root, "ObjectTypeCode")
    return {
        "source": f"SDK EntityMetadata {path.name}",
        "entity_set": _text(root, "EntitySetName"),
        "schema_name": _text(root, "SchemaName"),
        "primary_id": _text(root, "PrimaryIdAttribute"),
        "primary_name": _text(root, "PrimaryNameAttribute"),
        "metadata_id": _text(root, "MetadataId"),
        "object_type_code": int(object_type_code) if object_type_code else None,
        "is_activity": _flag(root, "IsActivity"),
        "logical_name": logical,
        "attributes": dict(sorted(attributes.items())),
        "states": sorted(states, key=lambda s: s["value"]),
        "statuses": sorted(statuses, key=lambda s: s["value"]),
        "picklists": dict(sorted(picklists.items())),
        "single_navs": dict(sorted(single_navs.items())),
        "collection_navs": dict(sorted(collection_navs.items())),
        **({"party_lists": dict(sorted(party_lists.items()))} if party_lists else {}),
    }


def _csdl_attachment(csdl: ET.Element) -> dict[str, Any]:
    entity_type = next(e for e in csdl.iter(_EDM + "EntityType") if e.get("Name") == "activitymimeattachment")
    names = {prop.get("Name") or "" for prop in entity_type.findall(_EDM + "Property")}
    attributes: dict[str, dict[str, Any]] = {}
    for name, spec in _ATTACHMENT_FACTS.items():
        if name not in names:
            raise KeyError(f"activitymimeattachment.{name} is not in the CSDL subset")
        attributes[name] = dict(spec)
    single_navs: dict[str, dict[str, Any]] = {}
    for nav in entity_type.findall(_EDM + "NavigationProperty"):
        nav_name = nav.get("Name") or ""
        nav_type = nav.get("Type") or ""
        if nav_type.startswith("Collection(") or not nav_name.startswith("objectid_"):
            continue
        # objectid_email has no ReferentialConstraint in the CSDL, but like its siblings sets objectid.
        single_navs[nav_name] = {"attribute": "objectid", "targets": [nav_type.split(".")[-1]]}
    targets = sorted({t for nav in single_navs.values() for t in nav["targets"]})
    attributes["objectid"] = {"type": "Lookup", "create": True, "update": True, "targets": targets}
    return {
        "source": "Web API CSDL csdl-2020-subset.xml names + entity reference lengths (_ATTACHMENT_FACTS)",
        "entity_set": "activitymimeattachments",
        "schema_name": "ActivityMimeAttachment",
        "primary_id": "activitymimeattachmentid",
        "primary_name": "filename",
        "metadata_id": "6c3e8a1f-2b4d-4e5f-8a9b-0c1d2e3f4a5b",
        "object_type_code": 1001,
        "is_activity": False,
        "logical_name": "activitymimeattachment",
        "attributes": dict(sorted(attributes.items())),
        "states": [],
        "statuses": [],
        "picklists": {},
        "single_navs": dict(sorted(single_navs.items())),
        "collection_navs": {},
    }


def _csdl_systemuser(csdl: ET.Element) -> dict[str, Any]:
    entity_type = next(e for e in csdl.iter(_EDM + "EntityType") if e.get("Name") == "systemuser")
    attributes: dict[str, dict[str, Any]] = {}
    for prop in entity_type.findall(_EDM + "Property"):
        name = prop.get("Name") or ""
        edm = prop.get("Type") or ""
        if name.startswith("_") and name.endswith("_value"):
            continue  # lookups are described by their navigation properties below
        kind = _EDM_TO_ATTRIBUTE_TYPE.get(edm, "String")
        attributes[name] = {"type": kind, "create": True, "update": True}
    single_navs: dict[str, dict[str, Any]] = {}
    for nav in entity_type.findall(_EDM + "NavigationProperty"):
        nav_type = nav.get("Type") or ""
        constraint = nav.find(_EDM + "ReferentialConstraint")
        if nav_type.startswith("Collection(") or constraint is None:
            continue
        value_property = constraint.get("Property") or ""
        if not (value_property.startswith("_") and value_property.endswith("_value")):
            continue
        attribute_name = value_property[1 : -len("_value")]
        target = nav_type.split(".")[-1]
        attributes.setdefault(
            attribute_name, {"type": "Lookup", "create": True, "update": True, "targets": []}
        )
        attributes[attribute_name]["targets"] = sorted({*attributes[attribute_name]["targets"], target})
        single_navs[nav.get("Name") or attribute_name] = {"attribute": attribute_name, "targets": [target]}
    # Known facts the CSDL lacks: the primary key is written by the platform, and the primary e-mail column
    # is limited to 100 characters.
    attributes["systemuserid"] = {"type": "Uniqueidentifier", "create": True, "update": False}
    attributes["internalemailaddress"]["max_length"] = 100
    for read_only in ("fullname", "createdon", "modifiedon", "versionnumber"):
        if read_only in attributes:
            attributes[read_only].update(create=False, update=False)
    return {
        "source": "Web API CSDL csdl-2020-subset.xml (no lengths or validity flags)",
        "entity_set": "systemusers",
        "schema_name": "SystemUser",
        "primary_id": "systemuserid",
        "primary_name": "fullname",
        "metadata_id": "e2d0f2a8-3c3b-4b8e-9bde-7a4f4e3c8b21",
        "object_type_code": 8,
        "is_activity": False,
        "logical_name": "systemuser",
        "attributes": dict(sorted(attributes.items())),
        "states": [],
        "statuses": [],
        "picklists": {},
        "single_navs": dict(sorted(single_navs.items())),
        "collection_navs": {},
    }


def _csdl_entity_sets(csdl: ET.Element) -> dict[str, str]:
    sets: dict[str, str] = {}
    for entity_set in csdl.iter(_EDM + "EntitySet"):
        name = entity_set.get("Name")
        entity_type = (entity_set.get("EntityType") or "").split(".")[-1]
        if name and entity_type:
            sets[entity_type] = name
    return sets


def build(reference_dir: Path) -> dict[str, Any]:
    csdl = ET.parse(reference_dir / "csdl-2020-subset.xml").getroot()  # noqa: S314 - trusted reference data
    entities = {name: _sdk_entity(reference_dir / f"{name}.xml") for name in SDK_ENTITIES}
    entities["systemuser"] = _csdl_systemuser(csdl)
    entities["lead"] = {**_LEAD, "logical_name": "lead"}
    entities["activitymimeattachment"] = _csdl_attachment(csdl)
    entities["organization"] = {**_ORGANIZATION, "logical_name": "organization"}
    entity_sets = _csdl_entity_sets(csdl)
    entity_sets.update({name: spec["entity_set"] for name, spec in entities.items()})
    return {
        "comment": "Generated by sandbox/scripts/build_dataverse_schema.py from shared reference metadata.",
        "entity_sets": dict(sorted(entity_sets.items())),
        "entities": dict(sorted(entities.items())),
    }


def main(argv: list[str]) -> int:
    repo = Path(__file__).resolve().parents[2]
    reference_dir = (
        Path(argv[1]) if len(argv) > 1 else repo.parent / "shared/reference/data/dataverse-metadata"
    )
    output = (
        Path(argv[2])
        if len(argv) > 2
        else repo / "sandbox/nylas_dataverse_sandbox/data/dataverse_schema.json"
    )
    if not reference_dir.is_dir():
        print(f"reference metadata not found at {reference_dir}; pass its path as the first argument")
        return 2
    schema = build(reference_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(schema, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {output} ({output.stat().st_size} bytes, {len(schema['entities'])} entities)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
