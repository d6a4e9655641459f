"""Turn claimed webhook notifications into Dataverse rows with the daily pipeline's own task bodies.

For each open batch (oldest first) and each grant in it, the messages are staged exactly as extract
stages them, in ``<staging>/<grant dag_id>/realtime-<batch id>/`` (``messages.jsonl.gz`` and an
``extract.json`` manifest), and then ``transform_window``, ``load_window`` and ``report_window`` run
unchanged. The same capture policy, address resolution, mapping, deterministic ``activityid`` and
Message-ID lookup therefore apply, and the daily run later records these messages as
``already_present``.

A message is fetched by id (``fields`` = the grant's ``headers_field``) when the notification cannot
stand in for what the daily extract would have read: it was truncated, its body is missing, or its
headers are missing. Webhook payloads normally carry no headers, and the RFC ``Message-ID`` in them is
the dedupe key shared with the daily run. Headers delivered by field customization are used as they
are only when they go beyond the basic three (or the grant asks for basic headers anyway), so automated
mail is recognised exactly as the daily run recognises it.

Per batch and grant, outcomes are isolated:

- a grant not in the grants file (or disabled) is recorded and skipped with a log line;
- a message deleted before it could be fetched is recorded as ``gone`` and left out;
- an error a retry cannot fix (expired grant, bad credentials) is logged as an error, recorded, and
  that grant's part of the batch is given up: the daily run picks those messages up once fixed;
- a transient error propagates, so the task retries; grants already finished in the batch are not
  processed again;
- more failures than ``max_failures`` are recorded in the batch summary instead of blocking it (the
  ledger explains each one) and make the task fail after every batch has been processed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.window import Window
from nylas_dataverse.hooks.errors import NylasNotFoundError
from nylas_dataverse.hooks.nylas import NylasHook
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.extract import grant_context, write_manifest
from nylas_dataverse.pipeline.failures import classify
from nylas_dataverse.pipeline.report import TooManyFailuresError
from nylas_dataverse.pipeline.run import ServicePool, Services, run_window
from nylas_dataverse.pipeline.staging import RunStaging
from nylas_dataverse.realtime.inbox import Batch, Inbox
from nylas_dataverse.realtime.notifications import (
    InvalidNotification,
    Notification,
    NotificationKind,
    notification_from_envelope,
)

log = logging.getLogger(__name__)

RUN_LABEL_PREFIX = layout.REALTIME_LABEL_PREFIX
BASIC_HEADERS = frozenset({"message-id", "in-reply-to", "references"})
ONE_DAY = dt.timedelta(days=1)


@dataclass
class GrantOutcome:
    """What happened to one grant's part of a batch (counts only, never message content)."""

    grant_key: str
    notifications: int
    staging: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    fetched: int = 0
    gone: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "grant_key": self.grant_key,
            "notifications": self.notifications,
            "staging": self.staging,
            "counts": self.counts,
            "fetched": self.fetched,
            "gone": self.gone,
            "error": self.error,
        }


def needs_fetch(notification: Notification, headers_field: str) -> bool:
    """Whether the payload lacks something the daily extract would have had."""
    obj = notification.object
    if notification.truncated or obj.get("body") is None:
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
    notifications: Sequence[Notification],
    staging: RunStaging,
    nylas: NylasHook,
    *,
    batch_id: str,
    now: dt.datetime,
) -> GrantOutcome:
    """Write the notifications' messages and an extract manifest, in the format extract writes."""
    started = time.monotonic()
    requests_before = nylas.request_count
    outcome = GrantOutcome(grant.key, len(notifications), staging=str(staging.folder))
    staging.clear()
    context = grant_context(grant, nylas)
    seen: set[str] = set()
    duplicates = 0
    dates: list[object] = []
    with staging.writer(layout.MESSAGES) as writer:
        for notification in notifications:
            message_id = str(notification.object_id)
            if message_id in seen:
                duplicates += 1
                continue
            seen.add(message_id)
            message = notification.object
            if needs_fetch(notification, grant.headers_field):
                try:
                    message = nylas.get_message(grant.grant_id, message_id, fields=grant.headers_field)
                except NylasNotFoundError:
                    log.info(
                        "Message %s of grant %s no longer exists in Nylas; left out", message_id, grant.key
                    )
                    outcome.gone += 1
                    continue
                outcome.fetched += 1
            dates.append(message.get("date"))
            writer.write(message)
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
            "notifications": len(notifications),
            "duplicate_ids": duplicates,
            "bodies_fetched": outcome.fetched,
            "gone": outcome.gone,
        },
        nylas_requests=nylas.request_count - requests_before,
        duration_s=time.monotonic() - started,
    )
    log.info(
        "Staged %d messages of grant %s from %d notifications (%d fetched by id, %d gone)",
        writer.count,
        grant.key,
        len(notifications),
        outcome.fetched,
        outcome.gone,
    )
    return outcome


def _process_grant(
    grant: GrantConfig,
    notifications: Sequence[Notification],
    batch: Batch,
    staging_root: ObjectStoragePath,
    now: dt.datetime,
    services: Services,
) -> GrantOutcome:
    staging = RunStaging(staging_root, grant.dag_id, layout.realtime_label(batch.id))
    staged: list[GrantOutcome] = []

    def source(staging: RunStaging, services: Services) -> None:
        staged.append(
            stage_messages(grant, notifications, staging, services.nylas, batch_id=batch.id, now=now)
        )

    try:
        try:
            counts = run_window(grant, staging, services=services, source=source)
            outcome = staged[0]
            outcome.counts = counts or {}
        except TooManyFailuresError as exc:
            outcome = staged[0]
            outcome.error = f"too_many_failures: {exc}"
            log.error("Grant %s, batch %s: %s", grant.key, batch.id, exc)
            outcome.counts = _report_counts(staging)
    except Exception as exc:
        failure = classify(exc)
        if failure.retryable:
            raise
        outcome = GrantOutcome(grant.key, len(notifications), staging=str(staging.folder))
        outcome.error = f"{type(exc).__name__}: {exc}"
        log.error(
            "Grant %s: giving up its %d notification(s) in batch %s: %s. Fix the cause (%s); the daily run"
            " picks these messages up afterwards.",
            grant.key,
            len(notifications),
            batch.id,
            failure.one_line(),
            failure.remedy,
        )
    return outcome


def _report_counts(staging: RunStaging) -> dict[str, int]:
    report = staging.file(layout.REPORT)
    return dict(json.loads(report.read_bytes())["counts"]) if report.exists() else {}


def _notifications(batch: Batch) -> list[Notification]:
    notifications = []
    for record in batch.records():
        try:
            notification = notification_from_envelope(record.get("notification"))
        except InvalidNotification as exc:
            log.warning("Batch %s holds an unusable notification (%s); skipped", batch.id, exc)
            continue
        if notification.kind is NotificationKind.MESSAGE_CREATED:
            notifications.append(notification)
    return notifications


def process_batch(
    batch: Batch,
    grants: Sequence[GrantConfig],
    staging_root: ObjectStoragePath,
    *,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> dict[str, Any]:
    """Process one batch; returns its summary (also written to the batch as ``done.json`` by the caller)."""
    by_grant_id = {grant.grant_id: grant for grant in grants if grant.enabled}
    grouped: dict[str, list[Notification]] = defaultdict(list)
    for notification in _notifications(batch):
        grouped[str(notification.grant_id)].append(notification)
    summary: dict[str, Any] = {"batch_id": batch.id, "grants": {}, "unknown_grants": {}}
    pool = ServicePool()
    for grant_id, notifications in sorted(grouped.items()):
        grant = by_grant_id.get(grant_id)
        if grant is None:
            log.warning(
                "Batch %s: %d notification(s) for grant %s, which is not an enabled grant in the grants "
                "file; recorded and skipped",
                batch.id,
                len(notifications),
                grant_id,
            )
            summary["unknown_grants"][grant_id] = len(notifications)
            continue
        marker = batch.grant_marker(grant.key)
        if marker.exists():
            summary["grants"][grant.key] = json.loads(marker.read_bytes())
            continue
        outcome = _process_grant(grant, notifications, batch, staging_root, now(), pool.for_grant(grant))
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_bytes(json.dumps(outcome.to_json()).encode())
        summary["grants"][grant.key] = outcome.to_json()
    return summary


class RealtimeFailuresError(RuntimeError):
    """Some batches recorded failures; everything else was loaded and the batches are closed."""


def process_open_batches(
    inbox: Inbox, grants: Sequence[GrantConfig], staging_root: ObjectStoragePath
) -> dict[str, Any]:
    """Process every claimed batch not yet done, oldest first; returns totals for the run.

    Raises ``RealtimeFailuresError`` at the end when any grant recorded an error, after all batches
    were processed and closed.
    """
    totals: dict[str, int] = defaultdict(int)
    errors: list[str] = []
    batches = inbox.open_batches()
    for batch in batches:
        summary = process_batch(batch, grants, staging_root)
        inbox.mark_done(batch, summary)
        for outcome in summary["grants"].values():
            for name, count in outcome.get("counts", {}).items():
                totals[name] += count
            totals["gone"] += outcome.get("gone", 0)
            if outcome.get("error"):
                errors.append(f"batch {batch.id}, grant {outcome['grant_key']}: {outcome['error']}")
        totals["unknown_grant_notifications"] += sum(summary["unknown_grants"].values())
    totals["batches"] = len(batches)
    inbox.prune()
    log.info("Real-time run: %s", dict(totals))
    if errors:
        raise RealtimeFailuresError(
            f"{len(errors)} grant part(s) of the processed batches recorded errors:\n  " + "\n  ".join(errors)
        )
    return dict(totals)
