"""Which Message-IDs Dataverse already holds, as which ``activityid``, and what those emails are regarding
(bulk, read-only lookups).

Load asks it for the emails of a chunk and the emails they answer (threads); the dry-run plan asks it the
same question and writes nothing. A Message-ID is asked for in its canonical form and as its bare inner
id (``identity.lookup_values``), and compared by ``identity.message_id_key``.
"""

from __future__ import annotations

from collections.abc import Iterable

from nylas_dataverse.core.identity import lookup_values, message_id_key
from nylas_dataverse.core.mapping import RecordRef
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.dataverse_tables import (
    EMAILS,
    ID_COLUMNS,
    MESSAGE_ID_COLUMNS,
    REGARDING_NAVS,
    entity_set,
)


def present_emails(dataverse: DataverseHook, internet_message_ids: Iterable[str]) -> dict[str, str]:
    """``message_id_key`` -> the ``activityid`` of a row with that ``messageid`` (the first one found)."""
    values = sorted({value for internet_id in internet_message_ids for value in lookup_values(internet_id)})
    if not values:
        return {}
    found: dict[str, str] = {}
    for row in dataverse.query_in(EMAILS, "messageid", values, select=list(MESSAGE_ID_COLUMNS)):
        if row.get("messageid"):
            found.setdefault(message_id_key(str(row["messageid"])), str(row.get("activityid", "")).lower())
    return found


def regarding_of_emails(
    dataverse: DataverseHook, internet_message_ids: Iterable[str]
) -> dict[str, RecordRef]:
    """``message_id_key`` -> the regarding record (contact, account or lead) of the email Dataverse holds
    with that ``messageid``, for the ones that have one. Read-only: one lookup of the emails, then one per
    table for the regarding ids found (the Web API names a lookup's table only in an annotation)."""
    values = sorted({value for internet_id in internet_message_ids for value in lookup_values(internet_id)})
    if not values:
        return {}
    regarding_ids: dict[str, str] = {}
    for row in dataverse.query_in(
        EMAILS, "messageid", values, select=["messageid", "_regardingobjectid_value"]
    ):
        target = row.get("_regardingobjectid_value")
        if row.get("messageid") and target:
            regarding_ids.setdefault(message_id_key(str(row["messageid"])), str(target).lower())
    if not regarding_ids:
        return {}
    entity_of: dict[str, str] = {}
    for entity in REGARDING_NAVS:
        column = ID_COLUMNS[entity]
        for found in dataverse.query_in(
            entity_set(entity), column, sorted(set(regarding_ids.values())), select=[column]
        ):
            entity_of.setdefault(str(found[column]).lower(), entity)
    return {
        key: RecordRef(entity_of[target], target)
        for key, target in regarding_ids.items()
        if target in entity_of
    }
