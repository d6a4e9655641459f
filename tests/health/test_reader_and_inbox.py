"""health/reader.py and health/inbox.py on real files: cached summaries stay current; inbox figures."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core.config import parse_config
from nylas_dataverse.core.health import Counts, RunEntry
from nylas_dataverse.health.inbox import QUARANTINE_DIR, read_inbox
from nylas_dataverse.health.reader import HealthReader, SummaryCache
from nylas_dataverse.pipeline.summary import SummaryStore
from nylas_dataverse.realtime.inbox import Inbox
from nylas_dataverse.realtime.notifications import notification_from_envelope
from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.nylas.webhooks import WebhookSender

GRANTS = parse_config(
    """
grants:
  - {key: alice, grant_id: g-a, start_date: 2026-11-01, email: alice@contoso.example}
  - {key: bob, grant_id: g-b, start_date: 2026-11-01}
""",
    "grants.yaml",
).grants
YESTERDAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def _entry(created: int) -> RunEntry:
    return RunEntry(
        grant_key="alice",
        label=YESTERDAY.isoformat(),
        day=YESTERDAY,
        written_at=dt.datetime.now(dt.UTC),
        counts=Counts(created, created, 0, 0, 0),
    )


def test_a_summary_written_after_an_overview_is_read_again_by_the_next_one(tmp_path: Path) -> None:
    root = ObjectStoragePath(tmp_path.as_uri())
    cache = SummaryCache()
    store = SummaryStore(root)
    store.record(_entry(3))

    first = {row.key: row for row in HealthReader(root, cache=cache).overview(GRANTS).rows}
    store.record(_entry(11))
    second = {row.key: row for row in HealthReader(root, cache=cache).overview(GRANTS).rows}

    assert first["alice"].counts.created == 3
    assert second["alice"].counts.created == 11
    assert second["bob"].status.value == "no_runs"  # no summary file at all


def test_a_staging_root_without_summaries_lists_every_grant_with_no_runs(tmp_path: Path) -> None:
    overview = HealthReader(ObjectStoragePath((tmp_path / "empty").as_uri())).overview(GRANTS)
    assert [row.status.value for row in overview.rows] == ["no_runs", "no_runs"]


@pytest.fixture
def sender() -> WebhookSender:
    return WebhookSender(personas.WEBHOOK_SECRET)


def _notification(sender: WebhookSender, serial: int) -> object:
    alice = personas.grant_by_key("alice")
    message = {"id": f"m-{serial}", "grant_id": alice.grant_id, "subject": "hello", "date": 1_800_000_000}
    return notification_from_envelope(sender.build_notification(message, notification_id=f"n-{serial}"))


def test_inbox_depth_oldest_pending_quarantine_and_latency(tmp_path: Path, sender: WebhookSender) -> None:
    root = ObjectStoragePath(tmp_path.as_uri())
    # The receiver accepted these five minutes ago, ten seconds apart. Latency is read from file times, so
    # "now" is the file system's clock (the same as time.time(), except under pytest --today).
    (tmp_path / "now").touch()
    start = float(int((tmp_path / "now").stat().st_mtime) - 300)
    clock = {"now": start}
    inbox = Inbox(root, clock=lambda: clock["now"])
    for serial in range(3):
        inbox.store(_notification(sender, serial))  # type: ignore[arg-type]
        clock["now"] += 10
    batch = inbox.claim_batch()
    assert batch is not None
    marker = batch.grant_marker("alice")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_bytes(b"{}")
    inbox.mark_done(batch, {"batch_id": batch.id})
    for serial in range(3, 5):
        inbox.store(_notification(sender, serial))  # type: ignore[arg-type]
        clock["now"] += 10
    quarantine = tmp_path / "_realtime" / QUARANTINE_DIR
    quarantine.mkdir()
    (quarantine / "00001-broken.json").write_bytes(b"")

    health = read_inbox(root)

    assert health.present
    assert (health.pending, health.claimed, health.depth, health.quarantined) == (2, 0, 2, 1)
    assert health.oldest_pending_at == dt.datetime.fromtimestamp(start + 30, tz=dt.UTC)
    # Received 300, 290 and 280 s ago; their grant's part was finished just now.
    assert health.latency_samples == 3
    assert health.latency_p50_s == pytest.approx(290, abs=30)
    assert health.latency_max_s == pytest.approx(300, abs=30)
    figures = health.to_json(dt.datetime.fromtimestamp(start + 90, tz=dt.UTC))
    assert figures["oldest_pending_age_s"] == 60.0
    assert figures["depth"] == 2
