"""Which Message-IDs Dataverse already holds, and as which ``activityid`` (one bulk, read-only lookup).

Load asks it for the emails of a chunk and the emails they answer (threads); the dry-run plan asks it the
same question and writes nothing. A Message-ID is asked for in its canonical form and as its bare inner
id (``identity.lookup_values``), and compared by ``identity.message_id_key``.
"""

from __future__ import annotations

from collections.abc import Iterable

from nylas_dataverse.core.identity import lookup_values, message_id_key
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.dataverse_tables import EMAILS, MESSAGE_ID_COLUMNS


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
