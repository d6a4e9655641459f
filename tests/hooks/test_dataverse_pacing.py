"""The hook's pacing against the sandbox: it bursts on a fresh window, backs off when the service says so."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from nylas_dataverse.hooks.dataverse import DataverseHook, InLookup
from nylas_dataverse.hooks.errors import DataverseError
from nylas_dataverse_sandbox.dataverse.throttle import ServiceProtectionLimits

CALLS = 16


def whoami_from_threads(hook: DataverseHook, calls: int = CALLS) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=calls) as pool:
        return list(pool.map(lambda _: hook.whoami(), range(calls)))


def test_a_fresh_window_is_spent_in_a_burst_above_the_dop_hint(sandbox: Any) -> None:
    # Each WhoAmI really takes 0.3 s in the server, so the calls overlap.
    sandbox.dataverse.set_limits(ServiceProtectionLimits(cost_ms={"whoami": 300.0}))
    hook = DataverseHook()

    answers = whoami_from_threads(hook)

    assert all(answer["UserId"] for answer in answers)
    assert hook.pacing["dop_hint"] == 4
    assert hook.pacing["peak_in_flight"] > 4
    assert hook.pacing["throttled_by_code"] == {}


def test_a_concurrency_429_lowers_the_ceiling_and_every_call_still_succeeds(sandbox: Any) -> None:
    sandbox.dataverse.set_limits(ServiceProtectionLimits(max_concurrency=3, cost_ms={"whoami": 300.0}))
    hook = DataverseHook()

    answers = whoami_from_threads(hook)

    assert len(answers) == CALLS
    assert all(answer["UserId"] for answer in answers)
    pacing = hook.pacing
    assert pacing["throttled_by_code"].get("0x80072326", 0) >= 1
    assert pacing["burst_ceiling"] < 52


def test_execution_time_429s_hold_the_hook_until_the_window_frees_and_every_call_succeeds(
    sandbox: Any,
) -> None:
    # A budget of 2 s per (real) 300 s window: two calls spend it; Retry-After then says when the window
    # frees. The window is 1.5 s long here (time scale 0.005); each call is charged 1,000 ms in full.
    sandbox.dataverse.set_limits(
        ServiceProtectionLimits(
            time_scale=0.005, max_execution_ms=2_000.0, cost_ms={"whoami": 1_000.0}, retry_after_growth=0.0
        )
    )
    hook = DataverseHook()
    hook.whoami()
    hook.whoami()  # the budget is spent

    answers = whoami_from_threads(hook, 6)

    assert len(answers) == 6
    assert all(answer["UserId"] for answer in answers)
    pacing = hook.pacing
    assert pacing["throttled_by_code"].get("0x80072321", 0) >= 1
    assert hook.throttled_count == sum(pacing["throttled_by_code"].values())


def test_lookups_travel_as_get_parts_of_one_batch_and_a_missing_table_fails_only_its_own(
    sandbox: Any,
) -> None:
    hook = DataverseHook()
    contacts = list(hook.query("contacts", select=["emailaddress1"], page_size=3))
    addresses = [row["emailaddress1"] for row in contacts if row.get("emailaddress1")][:3]
    before = hook.request_count

    answers = hook.query_in_batched(
        [
            InLookup("contacts", "emailaddress1", addresses, select=["contactid", "emailaddress1"]),
            InLookup("nosuchtables", "emailaddress1", addresses, select=["emailaddress1"]),
            InLookup("accounts", "emailaddress1", ["nobody@nowhere.example"], select=["accountid"]),
        ]
    )

    assert hook.request_count - before == 1
    found, missing, none = answers
    assert isinstance(found, list)
    assert {row["emailaddress1"].lower() for row in found} == {a.lower() for a in addresses}
    assert isinstance(missing, DataverseError)
    assert missing.status == 404
    assert none == []
