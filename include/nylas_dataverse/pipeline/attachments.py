"""Attachments during load: download each kept file of an email into staging (streamed), hand the change set
builder a way to read it back, and record one outcome per file.

Only emails load is about to create get their files downloaded (one that Dataverse already has needs none).
A file is streamed from Nylas into ``load/files/<row id>`` and, when the email's change set is written, read
back in blocks into the request body (``hooks/odata.write_batch``), so memory never holds a whole file. The
downloaded length is checked again against the grant's and the org's limits (Microsoft's ``size`` is an
estimate). The files of a chunk are removed when the chunk is done.

What a download failure means:

* Nylas no longer has the file (404) or refuses the request for it (400): the email is created without it and
  the file is ``failed`` with that reason;
* anything else (a transient failure that outlived the hook's retries, staging trouble): the email is not
  created in this attempt (``failed``, ``attachment_download_failed``) so it is never created without its
  files; the next attempt of the chunk (a task retry or rerun) tries again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from dataclasses import dataclass, field
from typing import IO, Any

from nylas_dataverse.core.attachments import (
    MIB,
    AttachmentEntry,
    AttachmentOutcome,
    AttachmentPlan,
    AttachmentPolicy,
    AttachmentSkip,
    base64_length,
    over_org_limit,
    summarize,
)
from nylas_dataverse.core.ledger import LedgerEntry, Outcome
from nylas_dataverse.core.mapping import EmailRecord
from nylas_dataverse.core.records import Decision
from nylas_dataverse.hooks.errors import NylasBadRequestError, NylasError, NylasNotFoundError
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.hooks.odata import Base64File
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.staging import RunStaging, StagingError, open_binary

log = logging.getLogger(__name__)

DOWNLOAD_FAILED = "attachment_download_failed"


class AttachmentDownloadError(Exception):
    """A file could not be fetched in this attempt; its email waits for the next one."""


@dataclass
class FileResult:
    outcome: AttachmentOutcome
    reason: str | None = None
    bytes_moved: int = 0


@dataclass
class EmailFiles:
    """One email's downloaded files (by position, for the change set) and what became of each (by row id)."""

    files: dict[int, Base64File] = field(default_factory=dict)
    results: dict[str, FileResult] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)

    def refuse(self, row_id: str, reason: str) -> bool:
        """Dataverse refused this file: the email goes again without it (False if it was not sent)."""
        position = self.positions.pop(row_id, None)
        if position is None or self.files.pop(position, None) is None:
            return False
        self.results[row_id] = FileResult(AttachmentOutcome.FAILED, reason)
        return True


class AttachmentFiles:
    """The files of one load: downloads, their staged copies, and each file's result (thread-safe)."""

    def __init__(
        self,
        staging: RunStaging,
        nylas: Callable[[], NylasHook],
        policy: AttachmentPolicy,
        org_limit_bytes: int,
    ) -> None:
        self.staging = staging
        self._nylas = nylas
        self.policy = policy
        self.org_limit_bytes = org_limit_bytes
        self._lock = threading.Lock()
        self._emails: dict[str, EmailFiles] = {}
        self.bytes_downloaded = 0

    def of(self, activity_id: str) -> EmailFiles | None:
        with self._lock:
            return self._emails.get(activity_id)

    def files_by_email(self, records: Iterable[EmailRecord]) -> dict[str, Mapping[int, Base64File]]:
        with self._lock:
            return {
                record.activity_id: self._emails[record.activity_id].files
                for record in records
                if record.activity_id in self._emails
            }

    def fetch(self, decision: Decision) -> None:
        """Download the kept files of ``decision``'s email; raises ``AttachmentDownloadError``."""
        record = decision.email
        if record is None or not any(plan.upload for plan in record.attachments):
            return
        email = EmailFiles()
        for plan in record.attachments:
            if plan.upload:
                self._fetch_one(decision, plan, email)
        with self._lock:
            self._emails[record.activity_id] = email

    def _fetch_one(self, decision: Decision, plan: AttachmentPlan, email: EmailFiles) -> None:
        target = self.staging.file(layout.attachment_file(plan.row_id))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open_binary(target, "wb") as sink:
                size = self._nylas().download_attachment(
                    decision.grant_id, plan.nylas_id, decision.nylas_id, sink
                )
        except (NylasNotFoundError, NylasBadRequestError) as exc:
            email.results[plan.row_id] = FileResult(AttachmentOutcome.FAILED, f"nylas_{exc.status}: {exc}")
            return
        except (NylasError, OSError, StagingError) as exc:
            raise AttachmentDownloadError(f"{DOWNLOAD_FAILED}: {type(exc).__name__}: {exc}") from exc
        with self._lock:
            self.bytes_downloaded += size
        limit = self.policy.max_attachment_mb
        if limit is not None and size > limit * MIB:
            reason = f"{AttachmentSkip.OVER_GRANT_LIMIT.value}: {size} bytes > {limit} MiB"
            email.results[plan.row_id] = FileResult(AttachmentOutcome.SKIPPED, reason)
            return
        if base64_length(size) > self.org_limit_bytes:
            email.results[plan.row_id] = FileResult(
                AttachmentOutcome.SKIPPED, over_org_limit(size, self.org_limit_bytes)
            )
            return

        def opener() -> IO[bytes]:
            return open_binary(target, "rb")

        email.files[plan.position] = Base64File("body", opener, size, describe=f"attachment {plan.row_id}")
        email.positions[plan.row_id] = plan.position
        email.results[plan.row_id] = FileResult(AttachmentOutcome.CREATED, None, size)

    def forget(self, records: Iterable[EmailRecord]) -> None:
        """Remove the chunk's staged files and its results (after its attachment part is written)."""
        for record in records:
            with self._lock:
                self._emails.pop(record.activity_id, None)
            for plan in record.attachments:
                target = self.staging.file(layout.attachment_file(plan.row_id))
                try:
                    if target.exists():
                        target.unlink()
                except OSError as exc:  # a leftover file costs space, never correctness
                    log.warning("Could not remove the staged file %s: %s", target, exc)


def entries_for(
    decision: Decision,
    entry: LedgerEntry,
    email: EmailFiles | None,
    earlier: Mapping[str, AttachmentEntry],
) -> list[AttachmentEntry]:
    """One ``AttachmentEntry`` per file of the decision's email, following its email's outcome."""
    record = decision.email
    if record is None:
        return []
    result: list[AttachmentEntry] = []
    for plan in record.attachments:
        reason: str | None
        if plan.skip is not None:
            outcome, reason, moved = AttachmentOutcome.SKIPPED, plan.skip, 0
        elif entry.outcome is Outcome.ALREADY_PRESENT:
            outcome, reason, moved = AttachmentOutcome.ALREADY_PRESENT, "email_already_present", 0
        elif entry.outcome is Outcome.FAILED:
            outcome, reason, moved = AttachmentOutcome.FAILED, f"email_failed: {entry.reason_code}", 0
        elif email is not None and plan.row_id in email.results:
            found = email.results[plan.row_id]
            outcome, reason, moved = found.outcome, found.reason, found.bytes_moved
        elif plan.row_id in earlier:
            result.append(earlier[plan.row_id])  # created by an earlier attempt of this chunk
            continue
        else:
            outcome, reason, moved = AttachmentOutcome.CREATED, None, 0
        result.append(AttachmentEntry.of(plan, decision.nylas_id, record.activity_id, outcome, reason, moved))
    return result


def write_part(staging: RunStaging, index: int, entries: list[AttachmentEntry]) -> None:
    staging.write_json(layout.attachment_part(index), [entry.to_json() for entry in entries])


def read_part(staging: RunStaging, index: int) -> list[AttachmentEntry]:
    """A chunk's attachment outcomes; none when its messages carried no files (or it was never loaded)."""
    part = staging.file(layout.attachment_part(index))
    if not part.exists():
        return []
    try:
        return [AttachmentEntry.from_json(entry) for entry in json.loads(part.read_bytes())]
    except (ValueError, TypeError, KeyError) as exc:
        raise StagingError(f"{part} is damaged ({exc}); rerun 'load' for this run.") from exc


def iter_entries(staging: RunStaging, chunks: int) -> Iterator[AttachmentEntry]:
    for index in range(chunks):
        yield from read_part(staging, index)


def write_ledger(staging: RunStaging, chunks: int, removed: Set[str] = frozenset()) -> dict[str, Any]:
    """``attachments.jsonl``: one line per file, in the order of the messages; returns its summary.

    ``removed`` names the messages whose email load deleted again (a second row another writer made at the
    same time, ``remove_race_duplicates``): their files went with the email and count as already present.
    """

    def lines() -> Iterator[AttachmentEntry]:
        with open_binary(staging.file(layout.ATTACHMENT_LEDGER), "wb") as ledger:
            for entry in iter_entries(staging, chunks):
                if entry.nylas_message_id in removed and entry.outcome is AttachmentOutcome.CREATED:
                    entry = dataclasses.replace(
                        entry,
                        outcome=AttachmentOutcome.ALREADY_PRESENT,
                        reason="second_row_removed",
                        bytes_moved=0,
                    )
                ledger.write(json.dumps(entry.to_json(), ensure_ascii=False).encode() + b"\n")
                yield entry

    return summarize(lines())


def read_ledger(staging: RunStaging) -> Iterator[AttachmentEntry]:
    path = staging.file(layout.ATTACHMENT_LEDGER)
    if not path.exists():
        return
    for line in path.read_bytes().splitlines():
        if line.strip():
            yield AttachmentEntry.from_json(json.loads(line))
