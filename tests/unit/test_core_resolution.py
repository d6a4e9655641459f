from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nylas_dataverse.core.resolution import Directory, DirectoryRow, Resolution, email_columns

ADDRESS = "carol@fabrikam.example"


def row(
    entity: str, record_id: str, column: str = "", created_on: str = "", address: str = ADDRESS
) -> DirectoryRow:
    column = column or ("internalemailaddress" if entity == "systemuser" else "emailaddress1")
    return DirectoryRow(
        entity=entity, id=record_id, email_column=column, address=address, created_on=created_on
    )


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param([row("contact", "c1")], Resolution("contact", "c1", False, 1), id="single-contact"),
        pytest.param(
            [row("lead", "l1"), row("account", "a1"), row("contact", "c1"), row("systemuser", "u1")],
            Resolution("systemuser", "u1", True, 4),
            id="systemuser-first",
        ),
        pytest.param(
            [row("lead", "l1"), row("account", "a1"), row("contact", "c1")],
            Resolution("contact", "c1", True, 3),
            id="contact-before-account-and-lead",
        ),
        pytest.param(
            [row("lead", "l1"), row("account", "a1")],
            Resolution("account", "a1", True, 2),
            id="account-before-lead",
        ),
        pytest.param(
            [
                row("contact", "c3", "emailaddress3"),
                row("contact", "c2", "emailaddress2"),
                row("contact", "c1x", "emailaddress1"),
            ],
            Resolution("contact", "c1x", True, 3),
            id="emailaddress1-first",
        ),
        pytest.param(
            [row("contact", "c3", "emailaddress3"), row("contact", "c2", "emailaddress2")],
            Resolution("contact", "c2", True, 2),
            id="emailaddress2-before-3",
        ),
        pytest.param(
            [row("contact", "c9", "emailaddress2"), row("account", "a1", "emailaddress1")],
            Resolution("contact", "c9", True, 2),
            id="entity-before-column",
        ),
        pytest.param(
            [
                row("contact", "late", created_on="2025-03-01T00:00:00Z"),
                row("contact", "early", created_on="2021-06-15T08:00:00Z"),
            ],
            Resolution("contact", "early", True, 2),
            id="earliest-created",
        ),
        pytest.param(
            [row("contact", "unknown-date"), row("contact", "dated", created_on="2025-03-01T00:00:00Z")],
            Resolution("contact", "dated", True, 2),
            id="unknown-created-sorts-last",
        ),
        pytest.param(
            [
                row("contact", "B0000000-0000-0000-0000-000000000000", created_on="2024-01-01T00:00:00Z"),
                row("contact", "a0000000-0000-0000-0000-000000000000", created_on="2024-01-01T00:00:00Z"),
            ],
            Resolution("contact", "a0000000-0000-0000-0000-000000000000", True, 2),
            id="lowest-id-breaks-ties-case-insensitively",
        ),
        pytest.param(
            [row("contact", "c1", "emailaddress1"), row("contact", "c1", "emailaddress3")],
            Resolution("contact", "c1", False, 1),
            id="one-record-two-columns-is-not-ambiguous",
        ),
        pytest.param(
            [row("contact", "c1"), row("contact", "c1")],
            Resolution("contact", "c1", False, 1),
            id="repeated-row",
        ),
    ],
)
def test_the_documented_rule_picks_one_row(rows: list[DirectoryRow], expected: Resolution) -> None:
    assert Directory.from_rows(rows).resolve(ADDRESS) == expected


def test_addresses_compare_casefolded_and_stripped() -> None:
    directory = Directory.from_rows([row("contact", "c1", address="Carol@Fabrikam.EXAMPLE")])
    assert directory.resolve(" CAROL@fabrikam.example ") == Resolution("contact", "c1", False, 1)
    assert directory.resolve("dan@fabrikam.example") is None
    assert Directory.from_rows([]).resolve(ADDRESS) is None


def test_rows_for_other_addresses_do_not_compete() -> None:
    directory = Directory.from_rows(
        [row("contact", "c1"), row("systemuser", "u1", address="alice@contoso.example")]
    )
    assert directory.resolve(ADDRESS) == Resolution("contact", "c1", False, 1)
    assert directory.resolve("alice@contoso.example") == Resolution("systemuser", "u1", False, 1)
    assert len(directory) == 2


@pytest.mark.parametrize(
    ("entity", "column"),
    [
        ("systemuser", "emailaddress1"),
        ("contact", "internalemailaddress"),
        ("lead", "emailaddress4"),
        ("queue", "x"),
    ],
)
def test_rows_must_name_a_real_email_column_of_their_entity(entity: str, column: str) -> None:
    with pytest.raises(ValueError, match=entity if entity == "queue" else column):
        DirectoryRow(entity=entity, id="x", email_column=column, address=ADDRESS)


_rows = st.lists(
    st.builds(
        lambda entity, number, column, created: row(
            entity,
            f"id-{number}",
            "internalemailaddress" if entity == "systemuser" else column,
            created,
        ),
        st.sampled_from(["systemuser", "contact", "account", "lead"]),
        st.integers(0, 5),
        st.sampled_from(["emailaddress1", "emailaddress2", "emailaddress3"]),
        st.sampled_from(["", "2021-01-01T00:00:00Z", "2024-05-05T00:00:00Z"]),
    ),
    min_size=1,
    max_size=8,
)


def test_active_rows_win_over_inactive_ones_whatever_the_entity() -> None:
    rows = [
        DirectoryRow("contact", "c-old", "emailaddress1", ADDRESS, "2020-01-01T00:00:00Z", active=False),
        DirectoryRow("lead", "l1", "emailaddress1", ADDRESS, "2024-01-01T00:00:00Z"),
    ]
    assert Directory.from_rows(rows).resolve(ADDRESS) == Resolution("lead", "l1", True, 2)
    only_inactive = [DirectoryRow("contact", "c-old", "emailaddress1", ADDRESS, active=False)]
    assert Directory.from_rows(only_inactive).resolve(ADDRESS) == Resolution("contact", "c-old", False, 1)


@pytest.mark.parametrize("entity", ["queue", "Contact", "contacts", ""])
def test_unknown_entities_are_rejected(entity: str) -> None:
    with pytest.raises(ValueError, match="unknown entity"):
        email_columns(entity)


@settings(max_examples=200, deadline=None)
@given(rows=_rows, data=st.data())
def test_the_choice_does_not_depend_on_query_order(rows: list[DirectoryRow], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(rows))
    assert Directory.from_rows(shuffled).resolve(ADDRESS) == Directory.from_rows(rows).resolve(ADDRESS)
