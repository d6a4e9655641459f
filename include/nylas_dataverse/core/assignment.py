"""Spreading mailboxes over several Dataverse application users, and the Airflow pool of each (pure).

Dataverse's service-protection limits are per application user, so N application users give N times
the write budget of one. Every grant names its user in the grants file (``dataverse_conn_id``); each
user's transform and load tasks run in that user's own pool (``pool_name``), sized for that user's
limits, so a busy user never takes the slots of another.

The assignment rule (``assign``): grants in order of falling volume (messages per day; ties by key), each
to the user with the least volume so far (ties: the earlier user in the list). With equal volumes it
deals grants out evenly. It is the classic greedy "longest first" rule, within 4/3 of the best possible
balance, and deterministic: the same grants, volumes and users always give the same answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from nylas_dataverse.core.health import GrantSummary

DEFAULT_CONN_ID = "dataverse_default"
DEFAULT_POOL = "dataverse_api"


def pool_name(dataverse_conn_id: str) -> str:
    """The pool of an application user's Dataverse tasks: ``dataverse_api`` for ``dataverse_default``
    (the one-user setup), ``dataverse_api__<conn id>`` for any other connection."""
    return DEFAULT_POOL if dataverse_conn_id == DEFAULT_CONN_ID else f"{DEFAULT_POOL}__{dataverse_conn_id}"


def assign(volumes: Mapping[str, float], users: Sequence[str]) -> dict[str, str]:
    """Grant key -> connection id of its application user (see the module docstring)."""
    if not users:
        raise ValueError("name at least one Dataverse connection (application user)")
    if len(set(users)) != len(users):
        raise ValueError("each Dataverse connection may be named once")
    negative = sorted(key for key, volume in volumes.items() if volume < 0)
    if negative:
        raise ValueError(f"volumes cannot be negative: {', '.join(negative)}")
    load = dict.fromkeys(users, 0.0)
    order = {user: index for index, user in enumerate(users)}
    chosen: dict[str, str] = {}
    for key in sorted(volumes, key=lambda k: (-volumes[k], k)):
        user = min(users, key=lambda u: (load[u], order[u]))
        chosen[key] = user
        load[user] += volumes[key]
    return dict(sorted(chosen.items()))


def loads(
    assignment: Mapping[str, str], volumes: Mapping[str, float], users: Sequence[str]
) -> dict[str, float]:
    """Each user's total volume under ``assignment`` (users without grants show 0)."""
    totals = dict.fromkeys(users, 0.0)
    for key, user in assignment.items():
        totals[user] = totals.get(user, 0.0) + volumes.get(key, 0.0)
    return totals


def daily_volume(summary: GrantSummary | None) -> float | None:
    """A grant's emails created per synced day in its health summary (creates are what spend an
    application user's budget), or None without a day to go by."""
    if summary is None:
        return None
    created = [row.counts.created for row in summary.daily if row.counts is not None]
    return sum(created) / len(created) if created else None


def with_unknown_filled(volumes: Mapping[str, float | None]) -> dict[str, float]:
    """Grants without a history count as the median of those with one (1.0 when none has one)."""
    known = sorted(volume for volume in volumes.values() if volume is not None)
    middle = len(known) // 2
    median = (known[middle] if len(known) % 2 else (known[middle - 1] + known[middle]) / 2) if known else 1.0
    return {key: median if volume is None else volume for key, volume in volumes.items()}
