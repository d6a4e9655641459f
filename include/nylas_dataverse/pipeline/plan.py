"""The dry-run plan: what a run would do, with nothing written to Dataverse.

A dry run (the DAG's ``dry_run`` param, or ``nylas-dataverse plan``) runs extract and transform as usual,
then, instead of load, asks Dataverse only the read-only questions load would ask (which Message-IDs it
already holds, in the same bulk lookups) and writes ``plan.json`` and ``plan.csv``: per message the
decision (``create``, ``already_present``, ``skip`` with the policy's reason, ``fail`` with the reason),
the resolved parties, the regarding record and the rule that chose it, and the email it answers with where
that email is (``parent``: ``dataverse:<activityid>``, or ``this_run:<activityid>`` when this run would
create it first; empty when it is nowhere, and the reply is then created unbound), and its files
(``attachments``: per file its position, content type, size and ``upload`` or ``skip <reason>``, as the
grant's attachment policy and the org's upload limit decide; no file names, as in the attachment ledger).

A plan stages in its own folder, ``<dag_id>/plan-<day>/`` (``layout.plan_label``), so previewing a day
never replaces that day's real ledger or report; it records nothing on the health page. Rows are in
extract's order; ``plan.json`` holds them all (one small row per message, no subjects or bodies).
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.health import csv_cell
from nylas_dataverse.core.identity import message_id_key
from nylas_dataverse.core.ledger import Outcome
from nylas_dataverse.core.mapping import MASK_BCC, MASK_CC, MASK_FROM, MASK_TO, EmailRecord
from nylas_dataverse.core.records import Decision
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.present import present_emails
from nylas_dataverse.pipeline.staging import FORMAT_VERSION, RunStaging, write_whole

log = logging.getLogger(__name__)

CHUNK_SIZE = 250
CREATE, ALREADY_PRESENT, SKIP, FAIL = "create", "already_present", "skip", "fail"
COLUMNS = (
    "nylas_id",
    "internet_message_id",
    "decision",
    "reason",
    "parties",
    "regarding",
    "regarding_rule",
    "parent_message_id",
    "parent",
    "new_contacts",
    "attachments",
)
_ROLES = {MASK_FROM: "from", MASK_TO: "to", MASK_CC: "cc", MASK_BCC: "bcc"}


def _parties(email: EmailRecord) -> str:
    return "; ".join(
        f"{_ROLES[party.mask]}:{party.address}="
        + (f"{party.record.entity}:{party.record.id}" if party.record else "unresolved")
        for party in email.parties
    )


def _attachments(email: EmailRecord) -> str:
    """What load would do with each file: ``#<position> <type> <bytes> B: upload`` or ``: skip <reason>``."""
    return "; ".join(
        f"#{plan.position} {plan.content_type} {plan.size} B: "
        + ("upload" if plan.upload else f"skip {plan.skip}")
        for plan in email.attachments
    )


def _parent(email: EmailRecord | None, present: dict[str, str], planned: dict[str, str]) -> str:
    """Where the email a reply answers is: ``dataverse:<id>``, ``this_run:<id>`` (created first), or ''."""
    if email is None or not email.parent_message_id:
        return ""
    key = message_id_key(email.parent_message_id)
    if key in present:
        return f"dataverse:{present[key]}"
    return f"this_run:{planned[key]}" if key in planned else ""


def _row(decision: Decision, present: dict[str, str], planned: dict[str, str]) -> dict[str, str]:
    email = decision.email
    if decision.outcome is Outcome.SKIPPED:
        verdict, reason = SKIP, decision.reason or ""
    elif decision.outcome is Outcome.FAILED:
        verdict, reason = FAIL, decision.reason or ""
    elif email is not None and message_id_key(email.internet_message_id) in present:
        verdict, reason = ALREADY_PRESENT, "messageid_exists"
    else:
        verdict, reason = CREATE, ""
    return {
        "nylas_id": decision.nylas_id,
        "internet_message_id": decision.internet_message_id or "",
        "decision": verdict,
        "reason": reason,
        "parties": _parties(email) if email else "",
        "regarding": f"{email.regarding.entity}:{email.regarding.id}" if email and email.regarding else "",
        "regarding_rule": (email.regarding_rule or "") if email else "",
        "parent_message_id": (email.parent_message_id or "") if email else "",
        "parent": _parent(email, present, planned) if verdict == CREATE else "",
        "new_contacts": "; ".join(c.address for c in email.new_contacts)
        if email and verdict == CREATE
        else "",
        "attachments": _attachments(email) if email and verdict == CREATE else "",
    }


def _chunks(staging: RunStaging, manifest: dict[str, Any]) -> Iterator[list[Decision]]:
    lines = staging.read_lines(layout.DECISIONS, manifest, "transform")
    while chunk := [Decision.from_json(line) for line in itertools.islice(lines, CHUNK_SIZE)]:
        yield chunk


def plan_rows(staging: RunStaging, dataverse: DataverseHook) -> Iterator[dict[str, str]]:
    manifest = staging.read_manifest("transform")
    planned: dict[str, str] = {}  # Message-ID key -> activity id of the emails this plan creates
    for chunk in _chunks(staging, manifest):
        emails = [d.email for d in chunk if d.pending and d.email is not None]
        asked = [e.internet_message_id for e in emails] + [
            e.parent_message_id for e in emails if e.parent_message_id
        ]
        present = present_emails(dataverse, asked)
        for decision in chunk:
            row = _row(decision, present, planned)
            if row["decision"] == CREATE and decision.email is not None:
                planned[message_id_key(decision.email.internet_message_id)] = decision.email.activity_id
            yield row


def to_csv(rows: Iterable[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([csv_cell(row[column]) for column in COLUMNS])
    return out.getvalue()


def plan_window(grant: GrantConfig, staging: RunStaging, dataverse: DataverseHook) -> dict[str, Any]:
    """Write ``plan.json`` and ``plan.csv`` for a transformed run; returns the plan's counts."""
    started = time.monotonic()
    requests_before = dataverse.request_count
    rows = list(plan_rows(staging, dataverse))
    counts = Counter({CREATE: 0, ALREADY_PRESENT: 0, SKIP: 0, FAIL: 0})
    counts.update(row["decision"] for row in rows)
    skipped = Counter(row["reason"] for row in rows if row["decision"] == SKIP)
    plan = {
        "format_version": FORMAT_VERSION,
        "dry_run": True,
        "dag_id": staging.dag_id,
        "grant_key": grant.key,
        "label": staging.label,
        "counts": dict(counts),
        "skipped_by_reason": dict(sorted(skipped.items())),
        "requests": {"dataverse": dataverse.request_count - requests_before},
        "duration_s": round(time.monotonic() - started, 3),
        "files": {
            "plan_csv": str(staging.file(layout.PLAN_CSV)),
            "unresolved addresses": str(staging.file(layout.UNRESOLVED)),
        },
        "messages": rows,
    }
    write_whole(staging.file(layout.PLAN_CSV), to_csv(rows).encode())
    staging.write_json(layout.PLAN, plan)
    log.info(
        "Dry run of %s %s (nothing written to Dataverse): %d to create, %d already present, %d skipped %s,"
        " %d failed. Plan: %s",
        grant.key,
        staging.label,
        counts[CREATE],
        counts[ALREADY_PRESENT],
        counts[SKIP],
        dict(sorted(skipped.items())),
        counts[FAIL],
        staging.file(layout.PLAN),
    )
    return dict(counts)
