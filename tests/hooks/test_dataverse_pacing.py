"""The hook's pacing against the sandbox: it bursts on a fresh window, backs off when the service says so."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from nylas_dataverse.hooks.dataverse import DataverseHook
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
    # A budget of 2 s per (real) 300 s window: the first few calls spend it; Retry-After then says when the
    # window frees. The window is 3 s long here (time scale 0.01), costs are charged in full (1,000 ms each).
    sandbox.dataverse.set_limits(
        ServiceProtectionLimits(
            time_scale=0.01, max_execution_ms=2_000.0, cost_ms={"whoami": 1_000.0}, retry_after_growth=0.0
        )
    )
    hook = DataverseHook()

    answers = whoami_from_threads(hook, 8)

    assert len(answers) == 8
    assert all(answer["UserId"] for answer in answers)
    pacing = hook.pacing
    assert pacing["throttled_by_code"].get("0x80072321", 0) >= 1
    assert hook.throttled_count == sum(pacing["throttled_by_code"].values())
