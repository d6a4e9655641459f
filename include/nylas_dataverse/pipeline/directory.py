"""Bulk address resolution: every distinct address of a run, looked up in Dataverse in a few queries.

One ``In`` query per table, email column and chunk of addresses (the hook splits long lists so each URL
stays under the limit) replaces the one-lookup-per-message approach; the pure ``Directory`` then
answers every address of the run from memory.
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
from nylas_dataverse.hooks.dataverse import DataverseHook
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
    for entity in ENTITIES:
        try:
            for column in email_columns(entity):
                records = dataverse.query_in(
                    entity_set(entity),
                    column,
                    wanted,
                    select=list(select_columns(entity)),
                    extra_filter=DIRECTORY_FILTERS.get(entity),
                )
                for record in records:
                    rows.extend(
                        row
                        for row in directory_rows(entity, record)
                        if row.email_column == column and normalise_address(row.address) in wanted_lookup
                    )
        except DataverseError as exc:
            # Leads exist only where Dynamics 365 Sales is installed; plain Dataverse answers 404.
            if entity == "lead" and exc.status == 404:
                log.warning("This environment has no leads table; addresses are not matched against leads.")
                continue
            raise
    log.info("Resolved %d distinct addresses against %d Dataverse rows", len(wanted), len(rows))
    return Directory.from_rows(rows)
