"""Extract: one day of a grant's mail from Nylas into staging, page by page.

Memory stays flat whatever the size of the day: each page is written to the gzip file as it arrives. The
query asks for a margin around the day (``Window.query_bounds``: Nylas documents neither the inclusivity of
``received_after``/``received_before`` nor which timestamp they filter on), and only messages whose ``date``
lies in the day are staged; the others belong to a neighbouring day's run and are counted, not lost.
Duplicates that a shifting cursor could yield are dropped by id. A message whose body the list omitted is
fetched by id.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.policy import FolderRoles
from nylas_dataverse.core.window import Window
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.staging import FORMAT_VERSION, JsonlWriter, RunStaging

log = logging.getLogger(__name__)


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
    reported = data.get("email") if isinstance(data.get("email"), str) else None
    if grant.email and reported and grant.email.casefold() != reported.casefold():
        # Kept (the Dataverse user may know the mailbox by an alias), but it decides the emails' owner and
        # which mail counts as sent, so a copy-paste slip must not pass unnoticed.
        log.warning(
            "Grant %s: the grants file says email %s but Nylas reports %s for grant id %s; using %s as the"
            " mailbox address (owner and direction). If that is not an alias of the same mailbox, fix email"
            " or grant_id in the grants file.",
            grant.key,
            grant.email,
            reported,
            grant.grant_id,
            grant.email,
        )
    return GrantContext(grant.email or reported, str(data.get("provider", "?")), roles)


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
        layout.EXTRACT_MANIFEST,
        {
            "format_version": FORMAT_VERSION,
            "dag_id": staging.dag_id,
            "grant_key": grant.key,
            "grant_id": grant.grant_id,
            "grant_email": context.email,
            "provider": context.provider,
            "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
            "folder_roles": context.folder_roles,
            "files": {layout.MESSAGES: writer.manifest_entry()},
            "stats": stats,
            "requests": {"nylas": nylas_requests},
            "duration_s": round(duration_s, 3),
        },
    )


class _Progress:
    """Counts for the log: pages and messages so far, at most one line every ``every_s`` seconds."""

    def __init__(self, label: str, every_s: float = 10.0) -> None:
        self.label = label
        self.every_s = every_s
        self.started = time.monotonic()
        self._last = float("-inf")
        self.pages = self.listed = self.staged = self.out_of_window = self.duplicates = self.fetched = 0

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.listed / elapsed if elapsed > 0 else 0.0
        return (
            f"{self.label}: {self.pages} pages, {self.listed} listed ({rate:.0f}/s), {self.staged} staged"
            f" | {self.out_of_window} other days, {self.duplicates} repeated, {self.fetched} bodies fetched"
        )

    def maybe_log(self) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            log.info("%s", self.line())


def extract_window(grant: GrantConfig, window: Window, staging: RunStaging, nylas: NylasHook) -> RunStaging:
    started = time.monotonic()
    requests_before = nylas.request_count
    staging.clear()
    context = grant_context(grant, nylas)
    after, before = window.query_bounds(grant.query_overlap)
    log.info(
        "Extracting grant %s (%s, %s) for %s: asking Nylas for [%d, %d] (the day plus %s on each side)",
        grant.key,
        context.provider,
        context.email or "address unknown",
        window.label,
        after,
        before,
        grant.query_overlap,
    )
    progress = _Progress(f"Extract {grant.key} {window.label}")
    seen: set[str] = set()
    with staging.writer(layout.MESSAGES) as writer:
        for page in nylas.iter_pages(
            grant.grant_id,
            received_after=after,
            received_before=before,
            fields=grant.headers_field,
            page_size=grant.page_size,
        ):
            progress.pages += 1
            for message in page.messages:
                progress.listed += 1
                nylas_id = message.get("id")
                if isinstance(nylas_id, str):
                    if nylas_id in seen:
                        progress.duplicates += 1
                        continue
                    seen.add(nylas_id)
                    date = message.get("date")
                    # A malformed date is kept so that transform records the message as failed.
                    if isinstance(date, int) and not isinstance(date, bool) and not window.contains(date):
                        progress.out_of_window += 1
                        continue
                    if message.get("body") is None:
                        message = nylas.get_message(grant.grant_id, nylas_id, fields=grant.headers_field)
                        progress.fetched += 1
                # A message without a usable id is kept: transform records it as failed, never drops it.
                writer.write(message)
                progress.staged += 1
            progress.maybe_log()

    write_manifest(
        staging,
        grant,
        context,
        window,
        writer,
        stats={
            "pages": progress.pages,
            "listed": progress.listed,
            "out_of_window": progress.out_of_window,
            "duplicate_ids": progress.duplicates,
            "bodies_fetched": progress.fetched,
            "query": {"received_after": after, "received_before": before},
        },
        nylas_requests=nylas.request_count - requests_before,
        duration_s=time.monotonic() - started,
    )
    log.info("%s; done (%d Nylas requests)", progress.line(), nylas.request_count - requests_before)
    return staging
