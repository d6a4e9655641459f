"""Which DAG file builds a grant's DAG: a stable function of the grant's key alone."""

from __future__ import annotations

from collections import Counter

import pytest

from nylas_dataverse.core.sharding import SHARDS, key_of_dag, shard_of


def test_the_shard_of_a_key_never_changes_between_processes_or_releases() -> None:
    # Pinned values: a different hash would move existing DAGs to other files on upgrade.
    assert {key: shard_of(key) for key in ("alice", "bob", "carol")} == {"alice": 15, "bob": 26, "carol": 30}


def test_every_key_lands_in_exactly_one_shard_and_the_shards_are_balanced() -> None:
    keys = [f"mailbox-{index:05d}" for index in range(5000)]
    counts = Counter(shard_of(key) for key in keys)
    assert set(counts) == set(range(SHARDS))
    assert max(counts.values()) <= 1.25 * 5000 / SHARDS  # no file gets far more than its share


def test_adding_grants_does_not_move_the_others() -> None:
    before = {f"g{index}": shard_of(f"g{index}") for index in range(100)}
    after = {f"g{index}": shard_of(f"g{index}") for index in range(1000)}
    assert {key: after[key] for key in before} == before


@pytest.mark.parametrize("shards", [0, -1])
def test_a_shard_count_below_one_is_refused(shards: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        shard_of("alice", shards)


@pytest.mark.parametrize(
    ("dag_id", "key"),
    [
        ("nylas_to_dataverse__alice", "alice"),
        ("nylas_to_dataverse__realtime", "realtime"),
        ("nylas_to_dataverse__", None),
        ("other_dag", None),
    ],
)
def test_the_key_of_a_daily_dag_id(dag_id: str, key: str | None) -> None:
    assert key_of_dag(dag_id) == key
