"""Drill: malformed Nylas message JSON in staging, pushed through transform, load and report.

Hypothesis builds days of messages with fields missing, of the wrong type, huge, or full of odd text
(control characters, NULs, bidi marks, broken RFC 2047 words, astral characters, header injection), next
to one well-formed message. Each day is written into staging with its manifest, exactly as extract would
leave it (string ids are de-duplicated, as extract does), and run through the remaining tasks. Every
message must end in the ledger with exactly one outcome, no task may crash on a bad message, the well-
formed one must be created, and failures must fail the run only in report, after the load.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nylas_dataverse.pipeline.report import TooManyFailuresError
from nylas_dataverse.pipeline.staging import RunStaging

from .conftest import SEEDED_DAY, DrillRunner, day_window, grants

pytestmark = pytest.mark.drills

FIELDS = (
    "id",
    "grant_id",
    "thread_id",
    "subject",
    "from",
    "to",
    "cc",
    "bcc",
    "reply_to",
    "date",
    "folders",
    "body",
    "snippet",
    "headers",
)
OUTCOMES = {"created", "already_present", "skipped", "failed"}
_serial = itertools.count()

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
odd_text = st.one_of(
    # Any Unicode but lone surrogates (those have a drill of their own below).
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.sampled_from(
        [
            "",
            "   ",
            "=?utf-8?B?////?=",
            "=?x-unknown?Q?=E9t=E9?=",
            "=?utf-8?Q?caf=C3?= =?utf-8?Q?=A9?=",
            "\u202egnp.exe",
            "nul\x00inside",
            "line\r\nBcc: victim@example.com",
            "😀" * 30,
            "\ufeffbom",
            "<script>alert(1)</script>",
            "'; DROP TABLE emails; --",
        ]
    ),
)
huge_text = st.integers(min_value=1_000, max_value=120_000).map(lambda n: ("<p>Ünïcödé ✓</p>" * n)[:n])
any_text = st.one_of(odd_text, huge_text, st.emails())
# Addresses stay within what a mail header can carry; a longer one has a drill of its own below.
address_text = st.one_of(odd_text, st.emails(), st.text(min_size=100, max_size=320))


def participants() -> st.SearchStrategy[Any]:
    entry = st.one_of(
        junk,
        st.fixed_dictionaries(
            {"email": st.one_of(address_text, junk)}, optional={"name": st.one_of(any_text, junk)}
        ),
    )
    return st.one_of(junk, st.lists(entry, max_size=4), st.lists(entry, min_size=60, max_size=80))


def headers() -> st.SearchStrategy[Any]:
    entry = st.one_of(
        junk,
        st.fixed_dictionaries(
            {
                "name": st.one_of(
                    st.sampled_from(["Message-ID", "message-id", "References", "List-Id"]), junk
                ),
                "value": st.one_of(any_text, junk),
            }
        ),
    )
    return st.one_of(junk, st.lists(entry, max_size=4))


MUTATIONS: dict[str, st.SearchStrategy[Any]] = {
    "from": participants(),
    "to": participants(),
    "cc": participants(),
    "bcc": participants(),
    "reply_to": participants(),
    "headers": headers(),
    "folders": st.one_of(junk, st.lists(st.one_of(any_text, junk), max_size=3)),
    "date": st.one_of(
        junk,
        odd_text,
        st.sampled_from([0, -1, 253_402_300_799, 253_402_300_800, "1794009600", "1794009600.5", 1.79e9]),
    ),
}


def well_formed(serial: int) -> dict[str, Any]:
    """A message alice would track: from a known contact, in her inbox, inside the window."""
    window = day_window(SEEDED_DAY)
    return {
        "id": f"fuzz-{serial}",
        "grant_id": "grant-under-test",
        "thread_id": f"thread-{serial}",
        "subject": f"Renewal question {serial}",
        "from": [{"name": "María José García", "email": "maria.garcia@fabrikam.example"}],
        "to": [{"name": "Alice Nakamura", "email": "alice@contoso.example"}],
        "cc": [],
        "bcc": [],
        "reply_to": [],
        "date": int(window.start.timestamp()) + 3600 + serial % 80_000,
        "folders": ["INBOX"],
        "body": f"<p>Hello Alice,</p><p>question number {serial}</p>",
        "snippet": "Hello Alice",
        "headers": [{"name": "Message-ID", "value": f"<fuzz-{serial}@fabrikam.example>"}],
    }


@st.composite
def bad_message(draw: st.DrawFn) -> dict[str, Any]:
    message = well_formed(next(_serial))
    for field in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4, unique=True)):
        if draw(st.booleans()):
            del message[field]
        else:
            message[field] = draw(MUTATIONS.get(field, st.one_of(junk, any_text)))
    return message


def as_extract_would_stage(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Extract drops a repeated string id (a shifting cursor); anything else is staged as received."""
    seen: set[str] = set()
    kept = []
    for message in messages:
        message_id = message.get("id")
        if isinstance(message_id, str):
            if message_id in seen:
                continue
            seen.add(message_id)
        kept.append(message)
    return kept


def stage(staging: RunStaging, template: dict[str, Any], messages: list[dict[str, Any]]) -> None:
    """messages.jsonl.gz and extract.json as extract writes them (JSON escapes keep any string)."""
    data = gzip.compress(b"".join(json.dumps(m).encode() + b"\n" for m in messages), mtime=0)
    staging.folder.mkdir(parents=True, exist_ok=True)
    staging.file("messages.jsonl.gz").write_bytes(data)
    manifest = dict(template)
    manifest["files"] = {
        "messages.jsonl.gz": {"count": len(messages), "sha256": hashlib.sha256(data).hexdigest()}
    }
    staging.write_json("extract.json", manifest)


def read_ledger(staging: RunStaging) -> list[dict[str, Any]]:
    return [json.loads(line) for line in staging.file("ledger.jsonl").read_bytes().splitlines()]


def run_remaining_tasks(
    drill_runner: DrillRunner, grant: Any, staging: RunStaging
) -> tuple[dict[str, Any], bool]:
    """transform, load, report; returns (counts, whether report failed the run)."""
    from nylas_dataverse.hooks.dataverse import DataverseHook
    from nylas_dataverse.pipeline.load import load_window
    from nylas_dataverse.pipeline.report import report_window
    from nylas_dataverse.pipeline.transform import transform_window

    transform_window(grant, staging, DataverseHook())
    load_window(grant, staging, DataverseHook())
    assert staging.file("ledger.jsonl").exists(), "load must write the ledger before report judges"
    try:
        return report_window(grant, staging), False
    except TooManyFailuresError:
        return json.loads(staging.file("load.json").read_bytes()), True


@pytest.fixture
def extract_template(drill_sandbox: Any, drill_runner: DrillRunner) -> dict[str, Any]:
    alice = grants(drill_sandbox)["alice"]
    staging = drill_runner.extract(alice, SEEDED_DAY)
    return dict(json.loads(staging.file("extract.json").read_bytes()))


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(fuzzed=st.lists(bad_message(), min_size=1, max_size=5))
def test_every_bad_message_ends_in_the_ledger_with_one_outcome_and_none_crashes_a_task(
    drill_sandbox: Any,
    drill_runner: DrillRunner,
    extract_template: dict[str, Any],
    fuzzed: list[dict[str, Any]],
) -> None:
    sandbox = drill_sandbox
    alice = grants(sandbox)["alice"]
    good = well_formed(next(_serial))
    messages = as_extract_would_stage([*fuzzed, good])
    staging = RunStaging(drill_runner.root, alice.dag_id, f"fuzz-{next(_serial)}")
    stage(staging, extract_template, messages)

    _, run_failed = run_remaining_tasks(drill_runner, alice, staging)

    ledger = read_ledger(staging)
    assert len(ledger) == len(messages)
    assert {entry["outcome"] for entry in ledger} <= OUTCOMES
    assert all(entry["reason"] for entry in ledger if entry["outcome"] in ("skipped", "failed"))
    assert len({entry["nylas_id"] for entry in ledger}) == len(ledger), "a message has two ledger entries"
    failed = sum(entry["outcome"] == "failed" for entry in ledger)
    assert run_failed == (failed > 0), "report must fail the run exactly when a message failed"
    by_id = {entry["nylas_id"]: entry for entry in ledger}
    assert by_id[good["id"]]["outcome"] == "created", "a bad message stopped a good one"
    rows = Counter(row["messageid"] for row in sandbox.dataverse.store.scan("emails"))
    assert max(rows.values()) == 1, "an email was created twice"
    created = {entry["internet_message_id"] for entry in ledger if entry["outcome"] == "created"}
    assert created <= set(rows), "a created entry has no row in Dataverse"


def test_a_lone_surrogate_in_a_message_fails_that_message_not_the_task(
    drill_sandbox: Any, drill_runner: DrillRunner, extract_template: dict[str, Any]
) -> None:
    alice = grants(drill_sandbox)["alice"]
    broken = well_formed(next(_serial))
    broken["subject"] = "caf\ud800"
    good = well_formed(next(_serial))
    staging = RunStaging(drill_runner.root, alice.dag_id, "lone-surrogate")
    stage(staging, extract_template, [broken, good])

    _, run_failed = run_remaining_tasks(drill_runner, alice, staging)

    outcomes = {entry["nylas_id"]: entry for entry in read_ledger(staging)}
    assert outcomes[broken["id"]]["outcome"] == "failed"
    assert outcomes[broken["id"]]["reason"].startswith("invalid_message: bad_encoding")
    assert outcomes[good["id"]]["outcome"] == "created"
    assert run_failed


def test_an_absurdly_long_address_fails_or_stays_unresolved_without_stopping_the_day(
    drill_sandbox: Any, drill_runner: DrillRunner, extract_template: dict[str, Any]
) -> None:
    alice = grants(drill_sandbox)["alice"]
    broken = well_formed(next(_serial))
    broken["cc"] = [{"email": "x" * 20_000 + "@example.com"}]
    good = well_formed(next(_serial))
    staging = RunStaging(drill_runner.root, alice.dag_id, "long-address")
    stage(staging, extract_template, [broken, good])

    run_remaining_tasks(drill_runner, alice, staging)

    outcomes = {entry["nylas_id"]: entry["outcome"] for entry in read_ledger(staging)}
    assert outcomes[good["id"]] == "created"
    assert outcomes[broken["id"]] in OUTCOMES
