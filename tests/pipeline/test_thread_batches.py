"""A day's thread waves in one chunk: one lookup and one ordered ``$batch``, replies bound to parents created
in the same batch, and what happens to a reply when its parent's change set fails (issue 15: the fixed cost
of a small mailbox-day)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from typing import Any

import pytest

from nylas_dataverse.core.identity import message_id_key
from nylas_dataverse.core.ledger import Outcome
from nylas_dataverse.core.records import Decision
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.pipeline import layout
from nylas_dataverse.pipeline.load import CHUNK_SIZE, _Chunk, _ChunkLoader, _LoadState

from .conftest import DAY, Runner, grants


def _decisions(runner: Runner, grant: Any, day: dt.date = DAY) -> list[Decision]:
    payloads = runner.staging(grant, day).file(layout.DECISIONS).read_bytes()
    return [Decision.from_json(json.loads(line)) for line in gzip.decompress(payloads).splitlines()]


def _thread(decisions: list[Decision]) -> tuple[Decision, Decision]:
    """A parent and its reply, both to be created by this run (the reply in a later wave)."""
    by_key = {message_id_key(d.email.internet_message_id): d for d in decisions if d.pending and d.email}
    for reply in decisions:
        if reply.pending and reply.email and reply.email.parent_message_id:
            parent = by_key.get(message_id_key(reply.email.parent_message_id))
            if parent is not None and parent.thread_wave < reply.thread_wave:
                return parent, reply
    raise AssertionError("the seeded day has a reply to mail of the same day")


def _rows(sandbox: Any) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for row in sandbox.dataverse.emails_with_parties():
        rows.setdefault(message_id_key(row["messageid"]), []).append(row)
    return rows


def _ledger(runner: Runner, grant: Any, day: dt.date = DAY) -> dict[str, dict[str, Any]]:
    lines = runner.staging(grant, day).file(layout.LEDGER).read_bytes().splitlines()
    return {entry["nylas_id"]: entry for entry in map(json.loads, lines)}


def test_a_small_day_with_thread_waves_costs_one_lookup_and_one_batch(sandbox: Any, runner: Runner) -> None:
    alice = grants(sandbox)["alice"]
    runner.extract(alice)
    runner.transform(alice)
    decisions = _decisions(runner, alice)
    waves = {d.thread_wave for d in decisions if d.pending}
    assert len(waves) >= 2, "the seeded day's threads give it more than one wave"
    before = sandbox.dataverse.counters()

    runner.load(alice)

    after = sandbox.dataverse.counters()
    spent = {key: after.get(key, 0) - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    # One $batch for every wave, one Message-ID lookup, one second-row check; WhoAmI and the privilege check
    # once per process (earlier tests may have paid them). Wave by wave it was 3 lookups and 3 batches.
    assert spent["requests.batch"] == 1, spent
    assert spent["requests"] <= 5, spent
    parent, reply = _thread(decisions)
    rows, ledger = _rows(sandbox), _ledger(runner, alice)
    assert reply.email
    assert parent.email
    [reply_row] = rows[message_id_key(reply.email.internet_message_id)]
    [parent_row] = rows[message_id_key(parent.email.internet_message_id)]
    assert reply_row["_parentactivityid_value"] == parent_row["activityid"]
    assert ledger[reply.nylas_id]["parent_activity_id"] == parent_row["activityid"]


@pytest.mark.parametrize("stop_at_failure", [False, True], ids=["continue-on-error", "batch-stops"])
def test_a_reply_whose_parent_was_throttled_in_the_same_batch_is_created_once_and_bound(
    sandbox: Any, runner: Runner, stop_at_failure: bool
) -> None:
    """The parent's change set gets a 429 (its reply, later in the batch, is refused for the missing parent,
    or not run at all when the service stops the batch): both are created on the next round, once."""
    alice = grants(sandbox)["alice"]
    runner.extract(alice)
    runner.transform(alice)
    parent, reply = _thread(_decisions(runner, alice))
    assert parent.email
    assert reply.email
    sandbox.dataverse.set_behaviour(batch_stop_on_failed_changeset=stop_at_failure)
    sandbox.dataverse.set_faults(
        changeset_fault_match=[parent.email.internet_message_id], changeset_fault_times=1
    )

    runner.load(alice)

    ledger = _ledger(runner, alice)
    assert ledger[parent.nylas_id]["outcome"] == ledger[reply.nylas_id]["outcome"] == "created"
    assert not [e for e in ledger.values() if e["outcome"] == "failed"]
    rows = _rows(sandbox)
    [parent_row] = rows[message_id_key(parent.email.internet_message_id)]
    [reply_row] = rows[message_id_key(reply.email.internet_message_id)]
    assert reply_row["_parentactivityid_value"] == parent_row["activityid"]
    assert ledger[reply.nylas_id]["parent_activity_id"] == parent_row["activityid"]
    assert sandbox.dataverse.counters().get("faults.changeset_throttle") == 1


def test_a_reply_whose_parent_keeps_failing_is_created_without_the_link(sandbox: Any, runner: Runner) -> None:
    """The parent fails every attempt (a 500 each time): it ends failed, its reply is created unbound rather
    than refused for a parent that never came."""
    alice = grants(sandbox)["alice"]
    runner.extract(alice)
    runner.transform(alice)
    decisions = [d for d in _decisions(runner, alice) if d.pending]
    parent, reply = _thread(decisions)
    assert parent.email
    assert reply.email
    sandbox.dataverse.set_faults(
        changeset_fault_match=[parent.email.internet_message_id],
        changeset_fault_times=100,
        changeset_fault_status=500,
    )
    # The chunk loader itself, with its waits between rounds skipped (six rounds of backoff otherwise).
    loader = _ChunkLoader(DataverseHook(alice.dataverse_conn_id), 50, _LoadState(), sleep=lambda _s: None)

    entries = {entry.nylas_id: entry for entry in loader.load(_Chunk(0, decisions), None)}

    assert entries[parent.nylas_id].outcome is Outcome.FAILED
    assert "dataverse_500" in str(entries[parent.nylas_id].reason)
    assert entries[reply.nylas_id].outcome is Outcome.CREATED
    assert entries[reply.nylas_id].parent_activity_id is None
    rows = _rows(sandbox)
    assert message_id_key(parent.email.internet_message_id) not in rows
    [reply_row] = rows[message_id_key(reply.email.internet_message_id)]
    assert reply_row.get("_parentactivityid_value") is None
    others = [e for key, e in entries.items() if key != parent.nylas_id]
    assert all(e.outcome in (Outcome.CREATED, Outcome.ALREADY_PRESENT) for e in others)


def test_a_day_larger_than_a_chunk_loads_each_wave_in_chunks_of_that_wave_only(
    sandbox: Any, runner: Runner
) -> None:
    """A chunk holding a later wave than one in progress waits for it; chunks mixing waves would so load one
    after another (the 1,000-email burst: 24 s instead of 19). Every reply is still bound to its parent."""
    day = dt.date(2026, 11, 17)  # after the seeded week: only the bulk mail
    sandbox.nylas.add_bulk_day("alice", day, 700)
    alice = grants(sandbox)["alice"]
    runner.extract(alice, day)
    staging = runner.transform(alice, day)
    per_wave = staging.read_manifest("transform")["thread_waves"]
    assert len(per_wave) >= 2, per_wave
    assert sum(per_wave.values()) > CHUNK_SIZE
    wave_of = {d.nylas_id: d.thread_wave for d in _decisions(runner, alice, day)}

    runner.load(alice, day)

    chunks = json.loads(staging.file(layout.LOAD_MANIFEST).read_bytes())["chunks"]
    assert chunks == sum(-(-count // CHUNK_SIZE) for count in per_wave.values())
    for index in range(chunks):
        part = json.loads(staging.file(layout.load_part(index)).read_bytes())
        assert len({wave_of[entry["nylas_id"]] for entry in part}) == 1, f"chunk {index} mixes waves"
    ledger = _ledger(runner, alice, day)
    assert len(ledger) == 700
    assert {entry["outcome"] for entry in ledger.values()} == {Outcome.CREATED.value}
    replies = [d for d in _decisions(runner, alice, day) if d.email and d.email.parent_message_id]
    assert replies
    assert all(ledger[d.nylas_id]["parent_activity_id"] for d in replies if d.thread_wave > 0)


def test_a_transform_manifest_without_wave_counts_still_puts_every_chunk_in_the_ledger(
    sandbox: Any, runner: Runner
) -> None:
    """Staging transformed by a release that did not count decisions per wave (loaded after an upgrade):
    the load splits the day at wave changes all the same, so it must read back every chunk it made, not
    the ``ceil(total / CHUNK_SIZE)`` the manifest suggests."""
    day = dt.date(2026, 11, 17)
    sandbox.nylas.add_bulk_day("alice", day, 700)
    alice = grants(sandbox)["alice"]
    runner.extract(alice, day)
    staging = runner.transform(alice, day)
    manifest = staging.read_manifest("transform")
    per_wave = manifest.pop("thread_waves")
    made = sum(-(-count // CHUNK_SIZE) for count in per_wave.values())
    assert made > -(-700 // CHUNK_SIZE), per_wave  # the estimate falls short of the chunks made
    staging.write_json(layout.STAGE_MANIFESTS["transform"], manifest)

    runner.load(alice, day)

    assert json.loads(staging.file(layout.LOAD_MANIFEST).read_bytes())["chunks"] == made
    ledger = _ledger(runner, alice, day)
    assert len(ledger) == 700
    assert {entry["outcome"] for entry in ledger.values()} == {Outcome.CREATED.value}
