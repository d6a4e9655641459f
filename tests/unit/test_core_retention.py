"""The retention rule (core/retention.py): which day a staging label names, and when its bodies expire."""

from __future__ import annotations

import datetime as dt

import pytest

from nylas_dataverse.core import retention
from nylas_dataverse.core.config import parse_config


@pytest.mark.parametrize(
    ("label", "day"),
    [
        ("2026-11-04", dt.date(2026, 11, 4)),
        ("realtime-20261104T101502123456Z-a1b2c3", dt.date(2026, 11, 4)),
        ("20261104T101502123456Z-a1b2c3", dt.date(2026, 11, 4)),  # a webhook inbox batch
        ("2026-13-45", None),
        ("realtime-20261345T101502Z-x", None),
        ("load", None),
        ("notes-2026-11-04", None),
        ("", None),
    ],
)
def test_a_label_names_the_day_its_data_belongs_to_or_none(label: str, day: dt.date | None) -> None:
    assert retention.label_day(label) == day


def test_retention_days_keeps_that_many_whole_days_before_today() -> None:
    today = dt.date(2026, 12, 2)
    assert retention.oldest_kept_day(today, 30) == dt.date(2026, 11, 2)
    assert retention.expired("2026-11-01", today, 30)
    assert not retention.expired("2026-11-02", today, 30)
    assert not retention.expired("2026-12-02", today, 1)
    assert retention.expired("2026-11-30", today, 1)


def test_a_folder_whose_label_names_no_day_never_expires() -> None:
    assert not retention.expired("something-else", dt.date(2030, 1, 1), 1)


def test_an_out_of_range_retention_is_refused() -> None:
    with pytest.raises(ValueError, match="from 1 to 3650"):
        retention.oldest_kept_day(dt.date(2026, 12, 2), 0)


def test_data_shared_by_grants_follows_the_shortest_retention_set() -> None:
    assert retention.shortest([None, 30, 7, None]) == 7
    assert retention.shortest([None, None]) is None


def test_sizes_read_well_in_logs() -> None:
    assert retention.human_bytes(512) == "512 B"
    assert retention.human_bytes(1536) == "1.5 KiB"
    assert retention.human_bytes(3 * 1024**3) == "3.0 GiB"


def test_retention_days_is_set_in_defaults_and_overridden_per_grant() -> None:
    text = """
defaults: {retention_days: 30}
grants:
  - {key: alice, grant_id: g-1, start_date: 2026-11-02}
  - {key: bob, grant_id: g-2, start_date: 2026-11-02, retention_days: 7}
  - {key: carol, grant_id: g-3, start_date: 2026-11-02, retention_days: 0}
"""
    result = parse_config(text, "grants.yaml")
    assert {g.key: g.retention_days for g in result.grants} == {"alice": 30, "bob": 7}
    [error] = result.errors
    assert str(error) == (
        "grants.yaml: grant 'carol': key 'retention_days': must be a whole number from 1 to 3650 (got 0)"
    )


def test_without_retention_days_a_grant_keeps_its_staging() -> None:
    result = parse_config("grants: [{key: alice, grant_id: g-1, start_date: 2026-11-02}]", "g.yaml")
    assert result.grants[0].retention_days is None
