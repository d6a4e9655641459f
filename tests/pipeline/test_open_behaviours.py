"""Either answer works: a full day through the pipeline under every answer the sandbox can give to a behaviour
the real services leave open (docs/sandbox.md "Open behaviours"), and a few combinations.

For each answer, the same day of three mailboxes (Google, Microsoft, IMAP; with shared messages; two for the
Dataverse answers) runs through
``pipeline.run.run_window``, the code each DAG task calls, and must end with:

- no failed message and a passing report;
- every message the mailbox holds for the day (the sandbox's own record, not what the API returned) in the
  ledger, exactly once, created, already present or skipped with a reason: nothing lost at the day's edges;
- one Dataverse row per Message-ID: nothing duplicated, whatever was retried.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest

from nylas_dataverse.core.identity import message_id_key
from nylas_dataverse.core.records import Decision
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.dataverse_tables import email_create_body
from nylas_dataverse.hooks.errors import NylasApiKeyError, NylasGrantAuthError
from nylas_dataverse.pipeline import layout

from .conftest import DAY, Runner, grants

MAILBOXES = ("alice", "bob", "carol")


def _ledger(runner: Runner, grant: Any) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in runner.staging(grant).file(layout.LEDGER).read_bytes().splitlines()]


def _day_truth(sandbox: Any, key: str) -> set[str]:
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC).timestamp()
    return {m["id"] for m in sandbox.nylas.messages_for(key, DAY) if start <= m["date"] < start + 86_400}


def _run_every_mailbox(
    sandbox: Any, runner: Runner, mailboxes: tuple[str, ...] = MAILBOXES, **settings: Any
) -> dict[str, list[dict[str, Any]]]:
    config = grants(sandbox, **settings)
    ledgers: dict[str, list[dict[str, Any]]] = {}
    for key in mailboxes:
        counts = runner.day(config[key])
        assert counts["failed"] == 0, (key, counts)
        ledgers[key] = _ledger(runner, config[key])
    return ledgers


def _assert_exactly_once(sandbox: Any, ledgers: dict[str, list[dict[str, Any]]]) -> None:
    for key, ledger in ledgers.items():
        ids = Counter(entry["nylas_id"] for entry in ledger)
        assert max(ids.values()) == 1, f"{key}: a message recorded twice"
        missing = _day_truth(sandbox, key) - set(ids)
        assert not missing, f"{key}: {len(missing)} message(s) of the day never reached the ledger: {missing}"
        for entry in ledger:
            assert entry["outcome"] in ("created", "already_present", "skipped"), entry
            if entry["outcome"] == "skipped":
                assert entry["reason"]
    rows = Counter(
        message_id_key(str(row["messageid"]))
        for row in sandbox.dataverse.emails_with_parties()
        if row.get("messageid")
    )
    assert rows
    assert max(rows.values()) == 1, [key for key, n in rows.items() if n > 1]
    for ledger in ledgers.values():
        for entry in ledger:
            if entry["outcome"] in ("created", "already_present"):
                assert rows[message_id_key(entry["internet_message_id"])] == 1, entry


NYLAS_ANSWERS = [
    pytest.param({"received_after": "exclusive"}, {}, id="received_after-exclusive"),
    pytest.param({"received_before": "inclusive"}, {}, id="received_before-inclusive"),
    pytest.param({"received_field": "created_at"}, {}, id="filters-compare-created_at"),
    pytest.param({"list_body": "omitted"}, {}, id="lists-without-body"),
    pytest.param({"headers_504_over_limit": 20}, {"page_size": 200}, id="504-for-large-pages-with-headers"),
    pytest.param({"retry_after": "never"}, {"page_size": 10}, id="429-without-retry-after"),
    pytest.param({"imap_headers": "unsupported"}, {}, id="imap-without-headers"),
    pytest.param(
        {"received_after": "exclusive", "received_before": "inclusive", "list_body": "omitted"},
        {"page_size": 10},
        id="both-bounds-flipped-no-bodies-small-pages",
    ),
]


@pytest.mark.parametrize(("switches", "settings"), NYLAS_ANSWERS)
def test_every_nylas_answer_loses_nothing_and_duplicates_nothing(
    sandbox: Any, runner: Runner, switches: dict[str, Any], settings: dict[str, Any]
) -> None:
    sandbox.nylas.set_switches(switches)
    if switches.get("retry_after") == "never":
        sandbox.nylas.set_faults({"rate_limit_every": 3})
    _assert_exactly_once(sandbox, _run_every_mailbox(sandbox, runner, **settings))


DATAVERSE_ANSWERS = [
    pytest.param(
        {"batch_stop_on_failed_changeset": True},
        {"changeset_fault_match": ("procurement@tailspin.example",), "changeset_fault_times": 1},
        {},
        id="stop-at-a-failed-change-set",
    ),
    pytest.param({}, {"changeset_throttle_fraction": 0.1, "seed": 7}, {}, id="429-parts-in-a-200-batch"),
    pytest.param({}, {"changeset_5xx_fraction": 0.1, "seed": 8}, {}, id="5xx-parts"),
    pytest.param({"sender_party_restricted": True}, {}, {}, id="sender-only-users-and-queues"),
    pytest.param({"messageid_duplicates": "rejected"}, {}, {}, id="messageid-unique"),
    pytest.param({"max_batch_operations": 250}, {}, {"batch_size": 200}, id="250-operations-per-batch"),
    pytest.param({"content_id_scope": "batch", "batch_require_crlf": True}, {}, {}, id="strict-batch-format"),
    pytest.param(
        {}, {"gateway_after_apply_every": 3, "gateway_after_apply_status": 502}, {}, id="502-after-apply"
    ),
    pytest.param(
        {"duplicate_key_status": 500, "duplicate_key_message": "integrity"}, {}, {}, id="duplicate-key-500"
    ),
    pytest.param({"length_unit": "codepoints"}, {}, {}, id="lengths-in-code-points"),
    pytest.param(
        {"batch_stop_on_failed_changeset": True, "sender_party_restricted": True},
        {
            "changeset_throttle_fraction": 0.05,
            "changeset_fault_match": ("orders@tailspin.example",),
            "seed": 9,
        },
        {"batch_size": 10},
        id="stop-and-sender-and-429-parts",
    ),
]


@pytest.mark.parametrize(("behaviour", "faults", "settings"), DATAVERSE_ANSWERS)
def test_every_dataverse_answer_loses_nothing_and_duplicates_nothing(
    sandbox: Any, runner: Runner, behaviour: dict[str, Any], faults: dict[str, Any], settings: dict[str, Any]
) -> None:
    sandbox.dataverse.set_behaviour(**behaviour)
    sandbox.dataverse.set_faults(**faults)
    # Two mailboxes sharing messages are enough on the Dataverse side (IMAP differs only in what Nylas sends).
    ledgers = _run_every_mailbox(sandbox, runner, ("alice", "bob"), **settings)
    _assert_exactly_once(sandbox, ledgers)
    if behaviour.get("sender_party_restricted"):
        reasons = Counter(
            e["reason"] for ledger in ledgers.values() for e in ledger if e["outcome"] == "created"
        )
        assert any(str(reason).startswith("sender_unbound") for reason in reasons), reasons


def test_a_row_created_between_lookup_and_create_is_already_present_under_every_duplicate_key_answer(
    sandbox: Any, runner: Runner
) -> None:
    """Another grant or run created the row (same deterministic id, the lookup did not see it yet)."""
    for status, message in ((412, "sql"), (400, "matching-key"), (500, "integrity")):
        sandbox.dataverse.reset()
        sandbox.dataverse.set_behaviour(
            duplicate_key_status=status, duplicate_key_message=message, batch_stop_on_failed_changeset=True
        )
        alice = grants(sandbox)["alice"]
        runner.extract(alice)
        runner.transform(alice)
        pending = [
            Decision.from_json(line)
            for line in runner.staging(alice).read_lines(
                layout.DECISIONS, runner.staging(alice).read_manifest("transform"), "transform"
            )
        ]
        first = next(d.email for d in pending if d.email is not None)
        body = email_create_body(first)
        body["messageid"] = "<created-elsewhere@other.example>"  # the lookup by Message-ID misses it
        body["email_activity_parties"] = []
        DataverseHook().create("emails", body)

        runner.load(alice)
        counts = runner.report(alice)

        assert counts["failed"] == 0, (status, counts)
        entry = next(e for e in _ledger(runner, alice) if e["activity_id"] == first.activity_id)
        assert (entry["outcome"], entry["reason"]) == ("already_present", "activityid_exists")
        assert counts["created"] == sum(1 for d in pending if d.email is not None) - 1


def test_a_cursor_that_cycles_ends_the_extract_with_a_clear_error_not_a_loop(
    sandbox: Any, runner: Runner
) -> None:
    sandbox.nylas.set_switches({"cursor": "cycle"})
    alice = grants(sandbox, page_size=5)["alice"]
    with pytest.raises(Exception, match="already given in this walk") as caught:
        runner.extract(alice)
    assert caught.value.kind == "service_refused"  # type: ignore[attr-defined]


@pytest.mark.parametrize("envelope", ["unauthorized", "refresh_token_invalid"])
@pytest.mark.parametrize("key_status", [401, 400])
def test_an_expired_grant_and_a_rejected_key_are_told_apart_under_every_envelope(
    sandbox: Any, runner: Runner, envelope: str, key_status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from nylas_dataverse.core.config import parse_config
    from nylas_dataverse_sandbox import personas

    sandbox.nylas.set_switches({"expired_grant_error": envelope, "bad_api_key_status": key_status})
    config = sandbox.grants_config()
    dave = personas.grant_by_key("dave")
    config["grants"] = [{"key": "dave", "grant_id": dave.grant_id, "start_date": "2026-11-02"}]
    import yaml

    grant = parse_config(yaml.safe_dump(config), "test").grants[0]
    with pytest.raises(NylasGrantAuthError) as expired:
        runner.extract(grant)
    assert expired.value.kind == "grant_expired", expired.value

    connection = json.loads(sandbox.environment()["AIRFLOW_CONN_NYLAS_DEFAULT"])
    connection["password"] = "nyk_v0_wrong_key"
    monkeypatch.setenv("AIRFLOW_CONN_NYLAS_DEFAULT", json.dumps(connection))
    alice = grants(sandbox)["alice"]
    with pytest.raises(NylasApiKeyError) as refused:
        runner.extract(alice)
    assert refused.value.kind == "credentials", refused.value
    assert "re-authenticate" not in str(refused.value)
