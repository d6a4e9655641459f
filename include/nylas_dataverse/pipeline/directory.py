"""Bulk address resolution: every distinct address of a run, looked up in Dataverse in a few queries.

One ``In`` query per table, email column and chunk of addresses (the hook splits long lists so each URL
stays under the limit) replaces the one-lookup-per-message approach; all of them travel as GET parts of one
``$batch`` (one request against the service's request count, whatever the number of tables); the pure
``Directory`` then answers every address of the run from memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from nylas_dataverse.core.resolution import (
    ENTITIES,
    Directory,
    DirectoryRow,
    email_columns,
    normalise_address,
)
from nylas_dataverse.hooks.dataverse import DataverseHook, InLookup
from nylas_dataverse.hooks.dataverse_tables import (
    DIRECTORY_FILTERS,
    directory_rows,
    entity_set,
    select_columns,
)
from nylas_dataverse.hooks.errors import DataverseError

log = logging.getLogger(__name__)

MAX_ADDRESS = 254


def resolve_addresses(addresses: Iterable[str], dataverse: DataverseHook) -> Directory:
    # No email address is longer than RFC 5321's 254 characters; longer values cannot match a row and
    # would not fit in a query URL, so they simply stay unresolved.
    wanted = sorted(
        {normalise_address(address) for address in addresses if address and len(address) <= MAX_ADDRESS}
    )
    wanted_lookup = frozenset(wanted)
    rows: list[DirectoryRow] = []
    if not wanted:
        return Directory.from_rows(rows)
    asked = [(entity, column) for entity in ENTITIES for column in email_columns(entity)]
    answers = dataverse.query_in_batched(
        [
            InLookup(
                entity_set(entity),
                column,
                wanted,
                select=list(select_columns(entity)),
                extra_filter=DIRECTORY_FILTERS.get(entity),
            )
            for entity, column in asked
        ]
    )
    missing_leads = False
    for (entity, column), answer in zip(asked, answers, strict=True):
        if isinstance(answer, DataverseError):
            # Leads exist only where Dynamics 365 Sales is installed; plain Dataverse answers 404.
            if entity == "lead" and answer.status == 404:
                missing_leads = True
                continue
            raise answer
        rows.extend(
            row
            for record in answer
            for row in directory_rows(entity, record)
            if row.email_column == column and normalise_address(row.address) in wanted_lookup
        )
    if missing_leads:
        log.warning("This environment has no leads table; addresses are not matched against leads.")
    log.info("Resolved %d distinct addresses against %d Dataverse rows", len(wanted), len(rows))
    return Directory.from_rows(rows)
