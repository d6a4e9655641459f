"""OData literals, query encoding and In chunking (pure functions, decoded with the standard library)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nylas_dataverse.hooks.odata import (
    IN_FILTER,
    build_url,
    encode_query,
    entity_id_from_url,
    in_filter_params,
    in_query_urls,
    quote_literal,
)

PREFIX = "https://contoso.crm.dynamics.com/api/data/v9.2/contacts"


def decode(url: str) -> dict[str, str]:
    """Query parameters as the server sees them (one value each)."""
    parsed = parse_qs(urlsplit(url).query, keep_blank_values=True, strict_parsing=True)
    assert all(len(v) == 1 for v in parsed.values()), parsed
    return {k: v[0] for k, v in parsed.items()}


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain", "'plain'"),
        ("O'Bryan", "'O''Bryan'"),
        ("''", "''''''"),
        ("", "''"),
        ('say "hi"', "'say \"hi\"'"),
    ],
)
def test_quote_literal_doubles_single_quotes(value: str, literal: str) -> None:
    assert quote_literal(value) == literal


def test_encode_query_percent_encodes_what_breaks_a_query_string() -> None:
    query = encode_query({"$filter": "emailaddress1 eq 'a+b&c#d<e>@x.com' and x eq 'y=z%'", "$select": "a,b"})

    assert "+" not in query
    assert "#" not in query
    assert "<" not in query
    assert " " not in query
    assert "%2B" in query
    assert "%26" in query
    assert "%23" in query
    assert "%3C" in query
    assert "%3E" in query
    assert query.startswith("$filter=")
    assert decode("?" + query) == {
        "$filter": "emailaddress1 eq 'a+b&c#d<e>@x.com' and x eq 'y=z%'",
        "$select": "a,b",
    }


def test_build_url_without_params_is_the_prefix() -> None:
    assert build_url(PREFIX, {}) == PREFIX


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://org.crm.dynamics.com/api/data/v9.2/emails(5A1B1B1B-0000-4000-8000-0000000000AA)",
            "5a1b1b1b-0000-4000-8000-0000000000aa",
        ),
        (
            "[Org]/api/data/v9.2/tasks({1b1b1b1b-0000-4000-8000-000000000001})",
            "1b1b1b1b-0000-4000-8000-000000000001",
        ),
        ("https://org/api/data/v9.2/emails(messageid='x')", None),
        (None, None),
        ("", None),
    ],
)
def test_entity_id_from_url(url: str | None, expected: str | None) -> None:
    assert entity_id_from_url(url) == expected


def test_in_filter_params_use_aliases_and_a_json_array() -> None:
    params = in_filter_params(
        "emailaddress1", ["O'Brian@x.com", 'q"uote\\@x.com'], extra_filter="statecode eq 0"
    )

    assert params["$filter"] == f"(statecode eq 0) and {IN_FILTER}"
    assert params["@p1"] == "'emailaddress1'"
    assert params["@p2"] == '["O\'Brian@x.com","q\\"uote\\\\@x.com"]'
    assert json.loads(params["@p2"]) == ["O'Brian@x.com", 'q"uote\\@x.com']


def test_in_filter_rejects_a_property_name_that_is_not_a_column() -> None:
    with pytest.raises(ValueError, match="column name"):
        in_filter_params("emailaddress1') or (1 eq 1", ["a"])


def addresses_with_quotes_and_plus(count: int) -> list[str]:
    shapes = [
        "o'brien+{i}@example.com",
        "first.last+tag{i}@sub.example.org",
        "d'arcy{i}@example.co.uk",
        "plain{i}@example.com",
        "a&b{i}#x@example.com",
        'weird"{i}\\@example.com',
        "zoë+{i}@exämple.de",
    ]
    return [shapes[i % len(shapes)].format(i=i) for i in range(count)]


def test_in_chunking_of_1000_addresses_stays_under_the_limit_and_round_trips_every_address() -> None:
    addresses = addresses_with_quotes_and_plus(1000)
    with_duplicates = addresses + addresses[:50] + [a.upper() for a in addresses[:3]]

    urls = in_query_urls(
        PREFIX, "emailaddress1", with_duplicates, select=["contactid", "emailaddress1"], max_url_length=4000
    )

    assert len(urls) > 1
    assert all(len(url) <= 4000 for url in urls)
    seen: list[str] = []
    for url in urls:
        assert url.startswith(PREFIX + "?")
        raw_query = urlsplit(url).query
        assert "+" not in raw_query
        assert "#" not in url
        assert '"' not in raw_query
        assert " " not in raw_query
        params = decode(url)
        assert params["$select"] == "contactid,emailaddress1"
        assert params["$filter"] == IN_FILTER
        assert params["@p1"] == "'emailaddress1'"
        seen.extend(json.loads(params["@p2"]))
    expected = addresses + [a.upper() for a in addresses[:3]]  # case variants are distinct strings
    assert seen == expected
    assert len(seen) == len(set(seen))


def test_in_chunking_fills_urls_close_to_the_limit() -> None:
    addresses = addresses_with_quotes_and_plus(1000)
    urls = in_query_urls(PREFIX, "emailaddress1", addresses, select="contactid", max_url_length=16_000)

    longest_item = max(len(build_url("", {"x": json.dumps(a, ensure_ascii=False)})) for a in addresses)
    assert all(len(url) > 16_000 - longest_item - 10 for url in urls[:-1])


def test_in_chunking_with_extra_filter_and_the_default_limit() -> None:
    urls = in_query_urls(
        PREFIX, "internalemailaddress", ["a@x.com"], select="systemuserid", extra_filter="isdisabled eq false"
    )

    assert len(urls) == 1
    assert decode(urls[0])["$filter"] == f"(isdisabled eq false) and {IN_FILTER}"


def test_in_chunking_rejects_a_value_that_cannot_fit() -> None:
    with pytest.raises(ValueError, match="cannot fit"):
        in_query_urls(PREFIX, "emailaddress1", ["x" * 500], select="contactid", max_url_length=400)


def test_in_chunking_of_nothing_is_no_query() -> None:
    assert in_query_urls(PREFIX, "emailaddress1", [], select="contactid") == []


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=60),
    limit=st.integers(min_value=600, max_value=3000),
)
def test_in_chunking_round_trips_any_text(values: list[str], limit: int) -> None:
    urls = in_query_urls(PREFIX, "emailaddress1", values, select="contactid", max_url_length=limit)

    decoded = [v for url in urls for v in json.loads(decode(url)["@p2"])]
    assert decoded == list(dict.fromkeys(values))
    assert all(len(url) <= limit for url in urls)
