"""The metadata views clients read: service document, ``$metadata`` (CSDL), ``EntityDefinitions``.

All derived from the schema; the official Python client resolves entity sets and primary keys through
``EntityDefinitions?$filter=LogicalName eq '...'`` and picklist labels through
``EntityDefinitions(LogicalName='...')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import quoteattr

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.dataverse import errors
from nylas_dataverse_sandbox.dataverse.odata_filter import ODataFilterError, parse_filter
from nylas_dataverse_sandbox.dataverse.schema import Attribute, EntitySchema, Schema

_NAMED_KEY = re.compile(r"LogicalName='(?P<value>(?:[^']|'')*)'")
_ATTRIBUTES_PATH = re.compile(
    r"Attributes(?:\((?P<key>[^()]*)\))?(?:/Microsoft\.Dynamics\.CRM\.(?P<cast>\w+))?"
)

_METADATA_TYPES = {
    "String": "StringAttributeMetadata",
    "Memo": "MemoAttributeMetadata",
    "EntityName": "EntityNameAttributeMetadata",
    "Uniqueidentifier": "UniqueIdentifierAttributeMetadata",
    "Boolean": "BooleanAttributeMetadata",
    "Integer": "IntegerAttributeMetadata",
    "Picklist": "PicklistAttributeMetadata",
    "State": "StateAttributeMetadata",
    "Status": "StatusAttributeMetadata",
    "BigInt": "BigIntAttributeMetadata",
    "Decimal": "DecimalAttributeMetadata",
    "Money": "MoneyAttributeMetadata",
    "Double": "DoubleAttributeMetadata",
    "DateTime": "DateTimeAttributeMetadata",
    "Lookup": "LookupAttributeMetadata",
    "Customer": "LookupAttributeMetadata",
    "Owner": "LookupAttributeMetadata",
    "Image": "ImageAttributeMetadata",
    "File": "FileAttributeMetadata",
}


def metadata_type(attribute: Attribute) -> str:
    return _METADATA_TYPES.get(attribute.type, "AttributeMetadata")


def service_document(schema: Schema, api_root: str) -> dict[str, Any]:
    sets = sorted(e.entity_set for e in schema.entities.values())
    return {
        "@odata.context": f"{api_root}/$metadata",
        "value": [{"name": name, "kind": "EntitySet", "url": name} for name in sets],
    }


def entity_definition(entity: EntitySchema) -> dict[str, Any]:
    return {
        "MetadataId": entity.metadata_id,
        "LogicalName": entity.logical_name,
        "SchemaName": entity.schema_name,
        "EntitySetName": entity.entity_set,
        "LogicalCollectionName": entity.entity_set,
        "CollectionSchemaName": f"{entity.schema_name}s",
        "PrimaryIdAttribute": entity.primary_id,
        "PrimaryNameAttribute": entity.primary_name,
        "ObjectTypeCode": entity.object_type_code,
        "IsActivity": entity.is_activity,
        "IsCustomEntity": False,
        "TableType": "Standard",
    }


def _label(text: str) -> dict[str, Any]:
    localized = {
        "Label": text,
        "LanguageCode": 1033,
        "IsManaged": True,
        "MetadataId": None,
        "HasChanged": None,
    }
    return {"LocalizedLabels": [localized], "UserLocalizedLabel": localized}


def attribute_definition(entity: EntitySchema, attribute: Attribute, *, with_options: bool) -> dict[str, Any]:
    kind = metadata_type(attribute)
    definition: dict[str, Any] = {
        "@odata.type": f"#Microsoft.Dynamics.CRM.{kind}",
        "MetadataId": personas.stable_id("attribute", f"{entity.logical_name}.{attribute.name}"),
        "LogicalName": attribute.name,
        "SchemaName": attribute.name,
        "EntityLogicalName": entity.logical_name,
        "AttributeType": attribute.type,
        "AttributeTypeName": {"Value": f"{attribute.type}Type"},
        "IsPrimaryId": attribute.name == entity.primary_id,
        "IsPrimaryName": attribute.name == entity.primary_name,
        "IsValidForCreate": attribute.create,
        "IsValidForUpdate": attribute.update,
        "IsValidForRead": attribute.read,
        "IsCustomAttribute": False,
    }
    if attribute.max_length is not None:
        definition["MaxLength"] = attribute.max_length
    if attribute.targets:
        definition["Targets"] = list(attribute.targets)
    if with_options and attribute.type in {"Picklist", "State", "Status"}:
        definition["OptionSet"] = {
            "MetadataId": personas.stable_id("optionset", f"{entity.logical_name}.{attribute.name}"),
            "Name": f"{entity.logical_name}_{attribute.name}",
            "OptionSetType": attribute.type,
            "Options": [
                {"Value": value, "Label": _label(label)} for value, label in _options(entity, attribute)
            ],
        }
    return definition


def _options(entity: EntitySchema, attribute: Attribute) -> list[tuple[int, str]]:
    if attribute.type == "State":
        return [(s.value, s.label) for s in entity.states.values()]
    if attribute.type == "Status":
        return [(s.value, s.label) for s in entity.statuses.values()]
    return list(entity.picklists.get(attribute.name, ()))


def attributes_of_type(entity: EntitySchema, cast: str | None) -> list[Attribute]:
    """Attributes, optionally narrowed by a derived-type segment such as ``PicklistAttributeMetadata``."""
    attributes = list(entity.attributes.values())
    if cast is None:
        return attributes
    return [a for a in attributes if metadata_type(a) == cast]


def csdl(schema: Schema) -> str:
    """A small CSDL document: the hosted entity types, their sets, and WhoAmI."""
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">',
        "<edmx:DataServices>",
        '<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">',
        '<EntityType Name="crmbaseentity" Abstract="true" />',
    ]
    for entity in sorted(schema.entities.values(), key=lambda e: e.logical_name):
        lines.append(f'<EntityType Name="{entity.logical_name}" BaseType="mscrm.crmbaseentity">')
        lines.append(f'<Key><PropertyRef Name="{entity.primary_id}" /></Key>')
        for attribute in sorted(entity.attributes.values(), key=lambda a: a.name):
            if attribute.read:
                lines.append(f'<Property Name="{attribute.property_name}" Type="{attribute.edm_type}" />')
        for nav in sorted(entity.single_navs.values(), key=lambda n: n.name):
            target = nav.targets[0] if len(nav.targets) == 1 else "principal"
            lines.append(f'<NavigationProperty Name={quoteattr(nav.name)} Type="mscrm.{target}" />')
        for collection in sorted(entity.collection_navs.values(), key=lambda n: n.name):
            target_type = f"Collection(mscrm.{collection.target})"
            lines.append(f'<NavigationProperty Name={quoteattr(collection.name)} Type="{target_type}" />')
        lines.append("</EntityType>")
    lines += [
        '<ComplexType Name="WhoAmIResponse">'
        '<Property Name="BusinessUnitId" Type="Edm.Guid" Nullable="false" />'
        '<Property Name="UserId" Type="Edm.Guid" Nullable="false" />'
        '<Property Name="OrganizationId" Type="Edm.Guid" Nullable="false" /></ComplexType>',
        '<Function Name="WhoAmI"><ReturnType Type="mscrm.WhoAmIResponse" Nullable="false" /></Function>',
        '<EntityContainer Name="System">',
    ]
    for entity in sorted(schema.entities.values(), key=lambda e: e.entity_set):
        entity_type = f"Microsoft.Dynamics.CRM.{entity.logical_name}"
        lines.append(f'<EntitySet Name="{entity.entity_set}" EntityType="{entity_type}" />')
    lines += [
        '<FunctionImport Name="WhoAmI" Function="Microsoft.Dynamics.CRM.WhoAmI" />',
        "</EntityContainer>",
        "</Schema>",
        "</edmx:DataServices>",
        "</edmx:Edmx>",
    ]
    return "\n".join(lines) + "\n"


def _narrow(
    items: list[dict[str, Any]], options: Mapping[str, str], aliases: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Apply ``$filter`` and ``$select`` to metadata rows (PascalCase properties)."""
    if options.get("$filter"):
        try:
            predicate = parse_filter(options["$filter"], aliases)
        except ODataFilterError as exc:
            raise errors.BadRequestError(exc.message) from exc
        items = [item for item in items if predicate(item)]
    select = [s.strip() for s in options.get("$select", "").split(",") if s.strip()]
    if select:
        # Expanded navigation properties (OptionSet) survive $select, as in OData.
        expanded = re.findall(r"(\w+)\s*(?:\(|,|$)", options.get("$expand", ""))
        keep = {*select, *expanded, "MetadataId", "@odata.type"}
        items = [{k: v for k, v in item.items() if k in keep} for item in items]
    return items


def _entity_by_key(schema: Schema, key: str) -> EntitySchema:
    named = _NAMED_KEY.fullmatch(key)
    for entity in schema.entities.values():
        if (named and named["value"].replace("''", "'") == entity.logical_name) or key == entity.metadata_id:
            return entity
    raise errors.RecordNotFoundError("EntityDefinition", key)


def entity_definitions(
    schema: Schema,
    key: str | None,
    rest: str | None,
    options: Mapping[str, str],
    aliases: Mapping[str, str],
    api_root: str,
) -> dict[str, Any]:
    """The JSON body for ``EntityDefinitions[(key)][/Attributes[(key)][/Microsoft.Dynamics.CRM.<cast>]]``."""
    context = f"{api_root}/$metadata#EntityDefinitions"
    if key is None:
        if rest:
            raise errors.ResourceNotFoundError(rest.split("/")[0])
        items = _narrow([entity_definition(e) for e in schema.entities.values()], options, aliases)
        return {"@odata.context": context, "value": items}
    entity = _entity_by_key(schema, key)
    if not rest:
        return {
            "@odata.context": f"{context}/$entity",
            **_narrow([entity_definition(entity)], options, aliases)[0],
        }
    match = _ATTRIBUTES_PATH.fullmatch(rest)
    if match is None:
        raise errors.ResourceNotFoundError(rest.split("/")[0])
    attributes = attributes_of_type(entity, match["cast"])
    if match["key"]:
        named = _NAMED_KEY.fullmatch(match["key"])
        attributes = [a for a in attributes if named and a.name == named["value"]]
        if not attributes:
            raise errors.RecordNotFoundError("attribute", match["key"])
    with_options = "OptionSet" in options.get("$expand", "")
    items = _narrow(
        [attribute_definition(entity, a, with_options=with_options) for a in attributes], options, aliases
    )
    if match["key"]:
        return {"@odata.context": f"{context}/Attributes/$entity", **items[0]}
    return {"@odata.context": f"{context}/Attributes", "value": items}
