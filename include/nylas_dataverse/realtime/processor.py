"""Turn claimed webhook notifications into Dataverse rows with the daily pipeline's own task bodies.

For each open batch (oldest first) and each grant in it, the messages are staged exactly as extract
stages them, in ``<staging>/<grant dag_id>/realtime-<batch id>/`` (``messages.jsonl.gz`` and an
``extract.json`` manifest), and then ``transform_window``, ``load_window`` and ``report_window`` run
unchanged. The same capture policy, address resolution, mapping, deterministic ``activityid`` and
Message-ID lookup therefore apply, and the daily run later records these messages as
``already_present``.

A message is fetched by id (``fields`` = the grant's ``headers_field``) when the notification cannot
stand in for what the daily extract would have read: it was truncated, cleaned (markdown body) or
metadata-only, its body is missing, field customization (``.transformed``) left out a field transform
needs, or its headers are missing. Webhook payloads normally carry no headers, and the RFC ``Message-ID``
in them is the dedupe key shared with the daily run. Headers delivered by field customization are used as they
are only when they go beyond the basic three (or the grant asks for basic headers anyway), so automated
mail is recognised exactly as the daily run recognises it.

Records are read one at a time: a first pass groups the batch's files by grant (and quarantines a file
that cannot be read or parsed, with a log line naming it, counted in the summary), then each grant's
messages are streamed from their files into staging. Memory therefore holds one notification at a time,
whatever the batch size (``settings.BatchLimits`` bounds that too).

The grants of one batch are processed concurrently (``settings.max_parallel_mailboxes``), with hooks
from one ``ServicePool`` for the whole run: every mailbox of one application user shares one token and
that connection's ``max_concurrency`` cap, exactly as the daily loads do.

Per batch and grant, outcomes are isolated, for every kind of error:

- notifications for a grant not in the grants file (or disabled) are quarantined with that reason;
- a message deleted before it could be fetched is recorded as ``gone`` and left out;
- any other error (a missing connection, an expired grant, a rejected API key, staging trouble, a
  ledger invariant, a service outage) gives up that grant's part of the batch for now: it is logged
  with the grant and the remedy, recorded in the batch summary under ``failed_grants``, and its
  notifications go back to the inbox (``retry/``) to be claimed again after a backoff, so a later run
  retries them. The other grants' mail lands and the batch closes;
- more failures than ``max_failures`` are recorded in the batch summary instead of blocking it (the
  ledger explains each one).

After every batch is closed, the task fails (``RealtimeFailuresError``) naming each failed grant, so the
run's log says which ones need attention.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.errors import FailureKind
from nylas_dataverse.core.window import Window
from nylas_dataverse.hooks.errors import NylasNotFoundError
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.extract import grant_context, write_manifest
from nylas_dataverse.pipeline.failures import announce, classify
from nylas_dataverse.pipeline.report import TooManyFailuresError
from nylas_dataverse.pipeline.run import ServicePool, Services, run_window
from nylas_dataverse.pipeline.staging import RunStaging, write_whole
from nylas_dataverse.realtime.inbox import Batch, Inbox, attempt_of
from nylas_dataverse.realtime.notifications import (
    InvalidNotification,
    Notification,
    NotificationKind,
    notification_from_envelope,
)
from nylas_dataverse.realtime.settings import max_parallel_mailboxes

log = logging.getLogger(__name__)

RUN_LABEL_PREFIX = layout.REALTIME_LABEL_PREFIX
BASIC_HEADERS = frozenset({"message-id", "in-reply-to", "references"})
# Payloads that are not the message as the API returns it: no body (truncated, metadata-only) or a body
# rewritten as markdown (Clean Conversations).
REFETCH_SUFFIXES = frozenset({"truncated", "cleaned", "metadata"})
# What transform needs beyond the body and headers; a ``.transformed`` payload may leave any of them out.
STANDARD_FIELDS = ("date", "from", "folders")
ONE_DAY = dt.timedelta(days=1)
# A fetch that fails with these kinds is that message's problem; any other kind (an expired grant, a
# rejected key, a missing connection) is the grant's, and gives up its whole part.
MESSAGE_FAILURE_KINDS = frozenset({FailureKind.SERVICE_REFUSED, FailureKind.SERVICE_UNAVAILABLE})


@dataclass
class GrantOutcome:
    """What happened to one grant's part of a batch (counts only, never message content)."""

    grant_key: str
    notifications: int
    staging: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    fetched: int = 0
    gone: int = 0
    # Messages whose own fetch failed while the grant's others were read: Nylas refused the request
    # (quarantined: a retry cannot help) or it kept failing (deferred alone, with its own backoff).
    refused: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    failure_kind: str | None = None
    retry_in_s: float | None = None
    attempt: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "grant_key": self.grant_key,
            "notifications": self.notifications,
            "staging": self.staging,
            "counts": self.counts,
            "fetched": self.fetched,
            "gone": self.gone,
            "refused": len(self.refused),
            "deferred": len(self.deferred),
            "error": self.error,
            "failure_kind": self.failure_kind,
            "retry_in_s": self.retry_in_s,
            "attempt": self.attempt,
        }


def needs_fetch(notification: Notification, headers_field: str) -> bool:
    """Whether the payload lacks something the daily extract would have had."""
    obj = notification.object
    if REFETCH_SUFFIXES.intersection(notification.suffixes) or obj.get("body") is None:
        return True
    if any(name not in obj for name in STANDARD_FIELDS):  # field customization left them out
        return True
    headers = obj.get("headers")
    if not isinstance(headers, list) or not headers:
        return True
    if headers_field == "include_basic_headers":
        return False
    names = {str(header.get("name", "")).casefold() for header in headers if isinstance(header, dict)}
    return names <= BASIC_HEADERS


def _window_for(dates: Iterable[object], fallback: dt.datetime) -> Window:
    """The whole UTC days the batch's messages fall in (the report needs a window)."""
    days = [
        dt.datetime.fromtimestamp(date, tz=dt.UTC).date()
        for date in dates
        if isinstance(date, int) and not isinstance(date, bool) and 0 <= date < 253_402_214_400
    ]
    first = min(days) if days else fallback.date()
    last = max(days) if days else fallback.date()
    start = dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC)
    return Window(start, dt.datetime.combine(last, dt.time(), tzinfo=dt.UTC) + ONE_DAY)


def stage_messages(
    grant: GrantConfig,
    notifications: Iterable[Notification],
    count: int,
    staging: RunStaging,
    nylas: NylasHook,
    *,
    batch_id: str,
    now: dt.datetime,
) -> GrantOutcome:
    """Write the notifications' messages and an extract manifest, in the format extract writes."""
    started = time.monotonic()
    requests_before = nylas.request_count
    outcome = GrantOutcome(grant.key, count, staging=str(staging.folder))
    staging.clear()
    context = grant_context(grant, nylas)
    seen: set[str] = set()
    duplicates = 0
    dates: list[object] = []
    first_failure: Exception | None = None
    with staging.writer(layout.MESSAGES) as writer:
        for notification in notifications:
            nylas_id = str(notification.object_id)
            if nylas_id in seen:
                duplicates += 1
                continue
            seen.add(nylas_id)
            message = notification.object
            if needs_fetch(notification, grant.headers_field):
                try:
                    message = nylas.get_message(grant.grant_id, nylas_id, fields=grant.headers_field)
                except NylasNotFoundError:
                    log.info(
                        "Message %s of grant %s no longer exists in Nylas; left out", nylas_id, grant.key
                    )
                    outcome.gone += 1
                    continue
                except Exception as exc:
                    failure = classify(exc)
                    if failure.kind not in MESSAGE_FAILURE_KINDS:
                        raise  # the grant's trouble, not this message's: the whole part waits
                    reason = f"fetch_failed: {failure.one_line()} ({type(exc).__name__})"
                    refused = failure.kind is FailureKind.SERVICE_REFUSED
                    kept = outcome.refused if refused else outcome.deferred
                    kept[nylas_id] = reason
                    first_failure = first_failure or exc
                    log.warning("Grant %s: message %s could not be fetched: %s", grant.key, nylas_id, reason)
                    continue
                outcome.fetched += 1
            dates.append(message.get("date"))
            writer.write(message)
    if outcome.deferred and outcome.fetched == 0 and first_failure is not None:
        # Not one fetch of the part succeeded: an outage, not one bad message.
        raise first_failure
    window = _window_for(dates, now)
    write_manifest(
        staging,
        grant,
        context,
        window,
        writer,
        stats={
            "source": "webhook",
            "batch_id": batch_id,
            "notifications": count,
            "duplicate_ids": duplicates,
            "bodies_fetched": outcome.fetched,
            "gone": outcome.gone,
            "fetch_refused": len(outcome.refused),
            "fetch_deferred": len(outcome.deferred),
        },
        nylas_requests=nylas.request_count - requests_before,
        duration_s=time.monotonic() - started,
    )
    log.info(
        "Staged %d messages of grant %s from %d notifications (%d fetched by id, %d gone)",
        writer.count,
        grant.key,
        count,
        outcome.fetched,
        outcome.gone,
    )
    return outcome


class _UnusableRecordError(ValueError):
    """A stored record that cannot be read as a notification; the message says why (never its content)."""


def read_record(path: ObjectStoragePath) -> Notification:
    """The notification stored in ``path``; ``_UnusableRecordError`` when it cannot be one.

    ``OSError`` (storage trouble) propagates: a retry can fix that, quarantining could lose mail.
    """
    data = path.read_bytes()
    if not data.strip():
        raise _UnusableRecordError("the file is empty (the receiver stopped before writing it)")
    try:
        record = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise _UnusableRecordError(f"the file is not JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(record, dict):
        raise _UnusableRecordError("the file is not a stored record (a JSON object with 'notification')")
    try:
        return notification_from_envelope(record.get("notification"))
    except InvalidNotification as exc:
        raise _UnusableRecordError(str(exc)) from None


def _group(batch: Batch, inbox: Inbox, summary: dict[str, Any]) -> dict[str, list[ObjectStoragePath]]:
    """The batch's files by grant id; unusable ones are quarantined and listed in ``summary``, and every
    name read is kept in ``summary["read"]`` (see ``Inbox.mark_done``)."""
    grouped: dict[str, list[ObjectStoragePath]] = defaultdict(list)
    paths = batch.record_paths()
    summary["read"] = {path.name for path in paths}
    for path in paths:
        try:
            notification = read_record(path)
        except FileNotFoundError:
            continue
        except _UnusableRecordError as exc:
            target = inbox.quarantine(path, str(exc), source=batch.id)
            log.warning(
                "Batch %s: record %s is unusable (%s); quarantined as %s", batch.id, path.name, exc, target
            )
            summary["quarantined"].append({"file": path.name, "reason": str(exc)})
            continue
        if notification.kind is NotificationKind.MESSAGE_CREATED:
            grouped[str(notification.grant_id)].append(path)
    return grouped


def _stream(
    paths: Sequence[ObjectStoragePath], batch_id: str, files_of: dict[str, list[ObjectStoragePath]]
) -> Iterator[Notification]:
    """The notifications in ``paths``; ``files_of`` collects each message's files (Nylas id -> paths)."""
    for path in paths:
        try:
            notification = read_record(path)
            files_of.setdefault(str(notification.object_id), []).append(path)
            yield notification
        except (FileNotFoundError, _UnusableRecordError) as exc:  # checked by _group moments ago
            log.warning(
                "Batch %s: record %s vanished or changed while processing (%s)", batch_id, path.name, exc
            )


def _process_grant(
    grant: GrantConfig,
    paths: Sequence[ObjectStoragePath],
    batch: Batch,
    inbox: Inbox,
    staging_root: ObjectStoragePath,
    now: dt.datetime,
    services: Services,
) -> GrantOutcome:
    staging = RunStaging(staging_root, grant.dag_id, layout.realtime_label(batch.id))
    staged: list[GrantOutcome] = []
    files_of: dict[str, list[ObjectStoragePath]] = {}

    def source(staging: RunStaging, services: Services) -> None:
        files_of.clear()
        staged.append(
            stage_messages(
                grant,
                _stream(paths, batch.id, files_of),
                len(paths),
                staging,
                services.nylas,
                batch_id=batch.id,
                now=now,
            )
        )

    try:
        try:
            counts = run_window(grant, staging, services=services, source=source)
            outcome = staged[0]
            outcome.counts = counts or {}
        except TooManyFailuresError as exc:
            outcome = staged[0]
            outcome.error = f"too_many_failures: {exc}"
            outcome.failure_kind = "too_many_failures"
            log.error("Grant %s, batch %s: %s", grant.key, batch.id, exc)
            outcome.counts = _report_counts(staging)
        _set_aside(outcome, files_of, batch, inbox)
    except Exception as exc:  # every kind: one grant's trouble never holds up the others
        failure = classify(exc)
        announce(grant, None, failure)
        attempt = max((attempt_of(path.name) for path in paths), default=0) + 1
        delay = inbox.defer(batch, list(paths))
        outcome = GrantOutcome(grant.key, len(paths), staging=str(staging.folder))
        outcome.error = f"{failure.one_line()} ({type(exc).__name__})"
        outcome.failure_kind = failure.kind.value
        outcome.retry_in_s = delay
        outcome.attempt = attempt
        log.error(
            "Grant %s: gave up its %d notification(s) in batch %s for now (attempt %d): %s. Fix: %s."
            " They are back in the inbox and a later run retries them in %.0f s.",
            grant.key,
            len(paths),
            batch.id,
            attempt,
            failure.one_line(),
            failure.remedy,
            delay,
        )
    return outcome


def _set_aside(
    outcome: GrantOutcome, files_of: dict[str, list[ObjectStoragePath]], batch: Batch, inbox: Inbox
) -> None:
    """Quarantine the notifications of messages Nylas refused to return; defer those that kept failing."""
    for nylas_id, reason in outcome.refused.items():
        for path in files_of.get(nylas_id, []):
            inbox.quarantine(path, f"{reason}; the daily run reads the message again", source=batch.id)
    deferred = [path for nylas_id in outcome.deferred for path in files_of.get(nylas_id, [])]
    if deferred:
        delay = inbox.defer(batch, deferred)
        log.warning(
            "Grant %s: %d message(s) of batch %s could not be fetched; retried alone in %.0f s",
            outcome.grant_key,
            len(outcome.deferred),
            batch.id,
            delay,
        )


def _report_counts(staging: RunStaging) -> dict[str, int]:
    report = staging.file(layout.REPORT)
    return dict(json.loads(report.read_bytes())["counts"]) if report.exists() else {}


def process_batch(
    batch: Batch,
    grants: Sequence[GrantConfig],
    staging_root: ObjectStoragePath,
    *,
    inbox: Inbox | None = None,
    pool: ServicePool | None = None,
    max_parallel: int | None = None,
    grants_file_errors: Sequence[str] = (),
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> dict[str, Any]:
    """Process one batch; returns its summary (written to the batch as ``done.json`` by the caller).

    With ``grants_file_errors``, notifications of grants not found are kept for a later run rather
    than quarantined: the grant may be the entry the file gets wrong.
    """
    inbox = inbox or Inbox(staging_root)
    pool = pool or ServicePool()
    by_grant_id = {grant.grant_id: grant for grant in grants if grant.enabled}
    summary: dict[str, Any] = {
        "batch_id": batch.id,
        "grants": {},
        "unknown_grants": {},
        "failed_grants": {},
        "quarantined": [],
    }
    work: list[tuple[GrantConfig, list[ObjectStoragePath]]] = []
    for grant_id, paths in sorted(_group(batch, inbox, summary).items()):
        grant = by_grant_id.get(grant_id)
        if grant is None and grants_file_errors:
            # The grant may be the entry the grants file gets wrong: keep its mail for a later run.
            delay = inbox.defer(batch, paths)
            problem = f"the grants file has errors ({'; '.join(grants_file_errors)})"
            log.error(
                "Batch %s: %d notification(s) for grant %s, which is not in the grants file as read; %s."
                " Kept for a later run (in %.0f s).",
                batch.id,
                len(paths),
                grant_id,
                problem,
                delay,
            )
            summary["failed_grants"][grant_id] = {
                "error": f"config: grant id {grant_id} not found while {problem}",
                "kind": "config",
                "notifications": len(paths),
                "attempt": max(attempt_of(path.name) for path in paths) + 1,
                "retry_in_s": delay,
            }
            continue
        if grant is None:
            reason = f"grant {grant_id} is not an enabled grant in the grants file"
            log.warning(
                "Batch %s: %d notification(s) for grant %s, which is not an enabled grant in the grants "
                "file; quarantined (the daily run loads its mail once the grant is configured)",
                batch.id,
                len(paths),
                grant_id,
            )
            for path in paths:
                inbox.quarantine(path, reason, source=batch.id)
            summary["unknown_grants"][grant_id] = len(paths)
            continue
        finished = _finished_part(batch, grant)
        if finished is not None:
            summary["grants"][grant.key] = finished
            continue
        work.append((grant, paths))
    if not work:
        return summary
    workers = min(max_parallel or max_parallel_mailboxes(), len(work))

    def one(item: tuple[GrantConfig, list[ObjectStoragePath]]) -> GrantOutcome:
        grant, paths = item
        return _process_grant(grant, paths, batch, inbox, staging_root, now(), pool.for_grant(grant))

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="realtime") as executor:
        outcomes = list(executor.map(one, work))
    for outcome in outcomes:
        summary["grants"][outcome.grant_key] = outcome.to_json()
        if outcome.retry_in_s is not None:
            summary["failed_grants"][outcome.grant_key] = {
                "error": outcome.error,
                "kind": outcome.failure_kind,
                "notifications": outcome.notifications,
                "attempt": outcome.attempt,
                "retry_in_s": outcome.retry_in_s,
            }
            continue  # no marker: the part is retried from retry/, not from this batch
        marker = batch.grant_marker(outcome.grant_key)
        marker.parent.mkdir(parents=True, exist_ok=True)
        write_whole(marker, json.dumps(outcome.to_json()).encode())
    return summary


def _finished_part(batch: Batch, grant: GrantConfig) -> dict[str, Any] | None:
    """The outcome an earlier attempt recorded for the grant's part of the batch; None when it has none.

    A marker that cannot be read (written by an older version that wrote in place, and cut short) counts
    as none: the part is processed again, which loading makes harmless (deterministic ``activityid``).
    """
    marker = batch.grant_marker(grant.key)
    try:
        finished = json.loads(marker.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        log.warning(
            "Batch %s: the finished-part marker of grant %s is unreadable (%s); processing the part again",
            batch.id,
            grant.key,
            type(exc).__name__,
        )
        return None
    return finished if isinstance(finished, dict) else None


class RealtimeFailuresError(RuntimeError):
    """Some grants' parts failed; everything else was loaded and the batches are closed."""


def process_open_batches(
    inbox: Inbox,
    grants: Sequence[GrantConfig],
    staging_root: ObjectStoragePath,
    *,
    grants_file_errors: Sequence[str] = (),
    pool: ServicePool | None = None,
) -> dict[str, Any]:
    """Process every claimed batch not yet done, oldest first; returns totals for the run.

    One ``ServicePool`` serves the whole run (one token per application user). Raises
    ``RealtimeFailuresError`` at the end when any grant recorded an error, after all batches were
    processed and closed; its message names every failed grant.
    """
    totals: dict[str, Any] = defaultdict(int)
    errors: list[str] = []
    failed: set[str] = set()
    batches = inbox.open_batches()
    pool = pool or ServicePool()
    for batch in batches:
        summary = process_batch(
            batch, grants, staging_root, inbox=inbox, pool=pool, grants_file_errors=grants_file_errors
        )
        read = summary.pop("read", None)
        inbox.mark_done(batch, summary, read=read)
        for grant_id, part in summary["failed_grants"].items():
            if grant_id not in summary["grants"]:  # not in the grants file as read
                failed.add(grant_id)
                errors.append(f"batch {batch.id}, grant {grant_id}: {part['error']}")
        for outcome in summary["grants"].values():
            for name, count in outcome.get("counts", {}).items():
                totals[name] += count
            totals["gone"] += outcome.get("gone", 0)
            if outcome.get("error"):
                failed.add(outcome["grant_key"])
                retry = outcome.get("retry_in_s")
                again = f" (retried in {retry:.0f} s)" if retry is not None else ""
                errors.append(f"batch {batch.id}, grant {outcome['grant_key']}: {outcome['error']}{again}")
        totals["deferred_notifications"] += sum(
            part["notifications"] for part in summary["failed_grants"].values()
        )
        totals["quarantined_records"] += len(summary["quarantined"])
        for outcome in summary["grants"].values():
            totals["quarantined_records"] += outcome.get("refused", 0)
            totals["deferred_notifications"] += outcome.get("deferred", 0)
        totals["unknown_grant_notifications"] += sum(summary["unknown_grants"].values())
    totals["batches"] = len(batches)
    totals["failed_grants"] = sorted(failed)
    inbox.prune()
    log.info("Real-time run: %s", dict(totals))
    if errors:
        raise RealtimeFailuresError(
            f"{len(failed)} grant(s) failed ({', '.join(sorted(failed))}); the other grants' mail was loaded:"
            "\n  " + "\n  ".join(errors)
        )
    return dict(totals)
