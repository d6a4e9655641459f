"""Extract: one window of a grant's mail from Nylas into staging, page by page.

Memory stays flat whatever the size of the day: each page is written to the gzip file as it arrives.
Messages outside ``[start, end)`` are dropped here because Nylas does not document whether its
``received_after``/``received_before`` bounds are inclusive; duplicates that a shifting cursor could
yield are dropped by id. A message whose body the list omitted is fetched by id.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.policy import FolderRoles
from nylas_dataverse.core.window import Window
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.pipeline.staging import FORMAT_VERSION, JsonlWriter, RunStaging

log = logging.getLogger(__name__)

MESSAGES_FILE = "messages.jsonl.gz"
MANIFEST = "extract.json"


@dataclass(frozen=True)
class ExtractResult:
    path: str
    message_count: int


@dataclass(frozen=True)
class GrantContext:
    """What transform needs to know about the mailbox besides its messages."""

    email: str | None
    provider: str
    folder_roles: dict[str, str]


def grant_context(grant: GrantConfig, nylas: NylasHook) -> GrantContext:
    """Read the grant (a 401 here means it expired: fail before paging) and its folder roles."""
    data = nylas.get_grant(grant.grant_id)
    roles = dict(FolderRoles.from_nylas_folders(nylas.list_folders(grant.grant_id)).roles)
    return GrantContext(grant.email or data.get("email"), str(data.get("provider", "?")), roles)


def write_manifest(
    staging: RunStaging,
    grant: GrantConfig,
    context: GrantContext,
    window: Window,
    writer: JsonlWriter,
    *,
    stats: dict[str, object],
    nylas_requests: int,
    duration_s: float,
) -> None:
    """The extract manifest; the real-time path writes the same one so transform reads both alike."""
    staging.write_json(
        MANIFEST,
        {
            "format_version": FORMAT_VERSION,
            "dag_id": staging.dag_id,
            "grant_key": grant.key,
            "grant_id": grant.grant_id,
            "grant_email": context.email,
            "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
            "folder_roles": context.folder_roles,
            "files": {MESSAGES_FILE: {"count": writer.count, "sha256": writer.sha256}},
            "stats": stats,
            "requests": {"nylas": nylas_requests},
            "duration_s": round(duration_s, 3),
        },
    )


def extract_window(
    grant: GrantConfig, window: Window, staging: RunStaging, nylas: NylasHook
) -> ExtractResult:
    started = time.monotonic()
    staging.clear()
    context = grant_context(grant, nylas)
    log.info("Extracting grant %s (%s) for %s .. %s", grant.key, context.provider, window.start, window.end)

    seen: set[str] = set()
    out_of_window = duplicates = bodies_fetched = pages = 0
    with staging.writer(MESSAGES_FILE) as writer:
        for page in nylas.iter_pages(
            grant.grant_id,
            received_after=window.received_after,
            received_before=window.received_before,
            fields=grant.headers_field,
            page_size=grant.page_size,
        ):
            pages += 1
            for message in page.messages:
                message_id = message.get("id")
                if isinstance(message_id, str):
                    if message_id in seen:
                        duplicates += 1
                        continue
                    seen.add(message_id)
                    date = message.get("date")
                    # A malformed date is kept so that transform records the message as failed.
                    if isinstance(date, int) and not isinstance(date, bool) and not window.contains(date):
                        out_of_window += 1
                        continue
                    if message.get("body") is None:
                        message = nylas.get_message(grant.grant_id, message_id, fields=grant.headers_field)
                        bodies_fetched += 1
                # A message without a usable id is kept: transform records it as failed, never drops it.
                writer.write(message)
            log.info("Page %d: %d messages staged so far", pages, writer.count)

    write_manifest(
        staging,
        grant,
        context,
        window,
        writer,
        stats={
            "pages": pages,
            "out_of_window": out_of_window,
            "duplicate_ids": duplicates,
            "bodies_fetched": bodies_fetched,
        },
        nylas_requests=nylas.request_count,
        duration_s=time.monotonic() - started,
    )
    log.info(
        "Extracted %d messages in %d pages "
        "(%d outside the window, %d bodies fetched by id, %d Nylas requests)",
        writer.count,
        pages,
        out_of_window,
        bodies_fetched,
        nylas.request_count,
    )
    return ExtractResult(path=str(staging.folder), message_count=writer.count)
