from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from nylas_dataverse.core import unresolved
from nylas_dataverse.core.messages import NylasMessage
from nylas_dataverse.core.unresolved import UnresolvedAddress, UnresolvedTally

from .conftest import RECEIVED_AT

SEEN = dt.datetime.fromtimestamp(RECEIVED_AT, tz=dt.UTC)


def test_a_run_counts_messages_per_address_with_name_dates_and_direction(
    message: Callable[..., NylasMessage],
) -> None:
    tally = UnresolvedTally()
    first = message(from_=[{"name": "Dana New", "email": "Dana@new.example"}])
    later = message(id="m2", date=RECEIVED_AT + 3600, from_=["dana@new.example"])
    reply = message(
        id="m3", date=RECEIVED_AT + 7200, to=["dana@new.example"], from_=["alice@contoso.example"]
    )
    tally.add_message(first, ["Dana@new.example"], outgoing=False)
    tally.add_message(later, ["dana@new.example"], outgoing=False)
    tally.add_message(reply, ["dana@new.example"], outgoing=True)
    tally.add_message(later, ["other@new.example"], outgoing=False)

    rows = tally.rows()

    assert rows[0] == UnresolvedAddress(
        "Dana@new.example", "Dana New", 3, SEEN, SEEN + dt.timedelta(hours=2), unresolved.BOTH
    )
    assert [(row.address, row.messages, row.direction) for row in rows[1:]] == [
        ("other@new.example", 1, unresolved.INCOMING)
    ]


def test_the_csv_has_no_subject_or_body_and_no_formula_a_spreadsheet_would_run(
    message: Callable[..., NylasMessage],
) -> None:
    tally = UnresolvedTally()
    tally.add_message(
        message(from_=[{"name": "=HYPERLINK(1)", "email": "=cmd@evil.example"}]),
        ["=cmd@evil.example"],
        outgoing=False,
    )

    text = unresolved.to_csv(tally.rows())

    assert text.splitlines() == [
        "address,display_name,messages,first_seen,last_seen,direction",
        "'=cmd@evil.example,'=HYPERLINK(1),1,2026-11-02T10:30:00Z,2026-11-02T10:30:00Z,incoming",
    ]
    assert "Quote for 40 chairs" not in text
    assert "Hello Alice" not in text
    assert unresolved.from_csv(text) == tally.rows()


def test_runs_roll_up_by_address() -> None:
    day1 = [UnresolvedAddress("a@x.example", "", 2, SEEN, SEEN, unresolved.INCOMING)]
    later = SEEN + dt.timedelta(days=1)
    day2 = [
        UnresolvedAddress("A@X.example", "Ann", 1, later, later, unresolved.OUTGOING),
        UnresolvedAddress("b@x.example", "Bo", 5, later, later, unresolved.INCOMING),
    ]

    rows = unresolved.merge([day1, day2])

    assert rows == [
        UnresolvedAddress("b@x.example", "Bo", 5, later, later, unresolved.INCOMING),
        UnresolvedAddress("a@x.example", "Ann", 3, SEEN, later, unresolved.BOTH),
    ]


def test_a_malformed_csv_names_its_line() -> None:
    header = ",".join(unresolved.COLUMNS)
    with pytest.raises(ValueError, match="line 2"):
        unresolved.from_csv(
            f"{header}\na@x.example,,many,2026-11-02T10:30:00Z,2026-11-02T10:30:00Z,incoming\n"
        )
    with pytest.raises(ValueError, match="columns"):
        unresolved.from_csv("address,messages\n")
