"""Report: the run's ledger and counts, checked, logged as a table, sent to metrics, and judged.

The run fails only here, after everything loadable was loaded, when failures exceed the grant's
``max_failures`` (default 0) or when the ledger does not account for every extracted message.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from nylas_dataverse.core.attachments import summarize
from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.errors import FailureKind, PipelineError
from nylas_dataverse.core.ledger import LedgerEntry, Outcome, RunReport
from nylas_dataverse.pipeline import attachments, layout, summary
from nylas_dataverse.pipeline.staging import RunStaging, StagingError, open_binary

log = logging.getLogger(__name__)


class TooManyFailuresError(PipelineError, RuntimeError):
    """More messages failed than the grant allows; the report lists why."""

    KIND = FailureKind.TOO_MANY_FAILURES


def build_report(grant: GrantConfig, staging: RunStaging) -> RunReport:
    extracted = staging.read_manifest("extract")
    transformed = staging.read_manifest("transform")
    loaded = staging.read_manifest("load")
    window = extracted["window"]
    report = RunReport(
        staging.dag_id,
        grant.key,
        dt.datetime.fromisoformat(window["start"]),
        dt.datetime.fromisoformat(window["end"]),
    )
    report.extracted = extracted["files"][layout.MESSAGES]["count"]
    ledger_path = staging.file(layout.LEDGER)
    if not ledger_path.exists():
        raise StagingError(f"{ledger_path} is missing; rerun 'load' for this window.")
    lines_read = 0
    try:
        with open_binary(ledger_path, "rb") as lines:
            for line in lines:
                report.add(LedgerEntry.from_json(json.loads(line)))
                lines_read += 1
    except (ValueError, KeyError, TypeError) as exc:
        raise StagingError(
            f"{ledger_path} is corrupt at line {lines_read + 1} ({exc}); rerun 'load'."
        ) from exc
    if lines_read != loaded["ledger_entries"]:
        raise StagingError(
            f"{ledger_path} has {lines_read} entries but load wrote {loaded['ledger_entries']}; rerun 'load'."
        )
    try:
        files = list(attachments.read_ledger(staging))
    except (ValueError, KeyError, TypeError) as exc:
        raise StagingError(
            f"{staging.file(layout.ATTACHMENT_LEDGER)} is corrupt ({exc}); rerun 'load'."
        ) from exc
    if files:
        report.attachments = summarize(files)
    report.unresolved_addresses = transformed.get("unresolved_addresses", 0)
    report.ambiguous_addresses = transformed.get("ambiguous_addresses", 0)
    report.requests = {
        "nylas": extracted["requests"]["nylas"],
        "dataverse": transformed["requests"]["dataverse"] + loaded["requests"]["dataverse"],
        "dataverse_throttled": loaded["requests"]["dataverse_throttled"],
        "token": loaded["requests"].get("token", 0),
    }
    report.durations_s = {
        "extract": extracted["duration_s"],
        "transform": transformed["duration_s"],
        "load": loaded["duration_s"],
    }
    return report


def _emit_metrics(report: RunReport, data: dict[str, Any]) -> None:
    try:
        from airflow.sdk.observability.stats import Stats
    except ImportError:  # metrics are best effort; the report file is the record
        return
    tags = {"dag_id": report.dag_id, "grant": report.grant_key}
    for outcome, count in data["counts"].items():
        Stats.incr(f"nylas_dataverse.messages.{outcome}", count=count, tags=tags)
    for name, count in report.requests.items():
        Stats.incr(f"nylas_dataverse.requests.{name}", count=count, tags=tags)


def report_window(grant: GrantConfig, staging: RunStaging) -> dict[str, Any]:
    report = build_report(grant, staging)
    report.check_invariant()
    data = report.to_json()
    staging.write_json(layout.REPORT, data)
    log.info("Run summary for %s\n%s", report.dag_id, report.summary_table())
    log.info("Report: %s  Ledger: %s", staging.file(layout.REPORT), staging.file(layout.LEDGER))
    _emit_metrics(report, data)
    failed = report.counts[Outcome.FAILED]
    verdict = None
    if failed > grant.max_failures:
        verdict = TooManyFailuresError(
            f"{failed} messages failed (allowed: {grant.max_failures}); "
            f"reasons: {dict(report.failed_by_reason)}. Everything else was loaded; "
            f"see {staging.file(layout.LEDGER)} for each message."
        )
    _record_summary(grant, staging, data, verdict)
    if verdict is not None:
        raise verdict
    counts: dict[str, Any] = data["counts"]
    return counts


def _record_summary(
    grant: GrantConfig, staging: RunStaging, data: dict[str, Any], verdict: PipelineError | None
) -> None:
    """Update the grant's summary for the health page; a monitor's record never fails the run."""
    try:
        summary.record_report(grant, staging, data, failure=verdict.failure() if verdict else None)
    except Exception:
        log.warning("Could not update the health summary of %s", grant.key, exc_info=True)
