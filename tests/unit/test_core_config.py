from __future__ import annotations

import datetime
import pickle
import textwrap
from typing import Any

import pytest
import yaml

from nylas_dataverse.core.config import ConfigError, ConfigResult, GrantConfig, PolicyConfig, parse_config

SOURCE = "include/grants.yaml"
DROP = object()  # marks a key to remove from the base grant


def grant(**overrides: Any) -> dict[str, Any]:
    key = overrides.get("key", "alice")
    base: dict[str, Any] = {"key": "alice", "grant_id": f"g-{key}", "start_date": datetime.date(2026, 11, 2)}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


def parse(document: object) -> ConfigResult:
    text = document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
    return parse_config(text, SOURCE)


def only_error(result: ConfigResult) -> ConfigError:
    assert len(result.errors) == 1, [str(e) for e in result.errors]
    return result.errors[0]


# ------------------------------------------------------------------------------------------------
# valid files


def test_a_minimal_grant_gets_the_built_in_defaults() -> None:
    result = parse({"grants": [grant()]})
    assert result.errors == ()
    assert result.grants == (
        GrantConfig(key="alice", grant_id="g-alice", start_date=datetime.date(2026, 11, 2)),
    )
    only = result.grants[0]
    assert only.dag_id == "nylas_to_dataverse__alice"
    assert (only.nylas_conn_id, only.dataverse_conn_id) == ("nylas_default", "dataverse_default")
    # Page size and concurrency are the connections' (their extras) unless a grant caps them.
    assert (only.page_size, only.max_failures, only.batch_size, only.max_concurrency) == (None, 0, 50, None)
    assert (only.query_overlap_minutes, only.verify_after_load, only.remove_race_duplicates) == (
        60,
        True,
        False,
    )
    assert only.headers_field == "include_headers"
    assert only.enabled is True
    assert only.email is None
    assert only.display_name is None
    assert only.org_domains == ()
    assert only.policy == PolicyConfig(
        internal_only="skip",
        skip_automated=True,
        require_known_party=False,
        first_message_of_thread_only=False,
        excluded_addresses=(),
        excluded_domains=(),
        regarding_preference=("contact", "account"),
    )


FULL = """\
defaults:
  nylas_conn_id: nylas_eu
  dataverse_conn_id: dataverse_sales
  org_domains: [Contoso.Example, contoso.example, fabrikam-internal.example]
  headers_field: include_basic_headers
  page_size: 50
  max_failures: 3
  batch_size: 100
  max_concurrency: 8
  policy:
    internal_only: track
    skip_automated: false
    excluded_addresses: [CEO@Contoso.Example]
    excluded_domains: [Partner.Example]
    regarding_preference: [account, contact, lead]
grants:
  - key: bob
    grant_id: " g-bob "
    start_date: "2026-10-01"
    email: " Bob@Contoso.Example "
    enabled: false
    display_name: Bob's mailbox
    page_size: 200
    dataverse_conn_id: dataverse_other
    org_domains: []
    policy:
      first_message_of_thread_only: true
      regarding_preference: []
  - key: alice
    grant_id: g-alice
    start_date: 2026-11-02
"""


def test_defaults_apply_and_grants_override_them_key_by_key() -> None:
    result = parse(FULL)
    assert result.errors == ()
    alice, bob = result.grants
    assert alice == GrantConfig(
        key="alice",
        grant_id="g-alice",
        start_date=datetime.date(2026, 11, 2),
        nylas_conn_id="nylas_eu",
        dataverse_conn_id="dataverse_sales",
        org_domains=("contoso.example", "fabrikam-internal.example"),
        headers_field="include_basic_headers",
        page_size=50,
        max_failures=3,
        batch_size=100,
        max_concurrency=8,
        policy=PolicyConfig(
            internal_only="track",
            skip_automated=False,
            excluded_addresses=("ceo@contoso.example",),
            excluded_domains=("partner.example",),
            regarding_preference=("account", "contact", "lead"),
        ),
    )
    assert bob == GrantConfig(
        key="bob",
        grant_id="g-bob",
        start_date=datetime.date(2026, 10, 1),
        email="Bob@Contoso.Example",
        enabled=False,
        display_name="Bob's mailbox",
        nylas_conn_id="nylas_eu",
        dataverse_conn_id="dataverse_other",
        org_domains=(),
        headers_field="include_basic_headers",
        page_size=200,
        max_failures=3,
        batch_size=100,
        max_concurrency=8,
        policy=PolicyConfig(
            internal_only="track",
            skip_automated=False,
            first_message_of_thread_only=True,
            excluded_addresses=("ceo@contoso.example",),
            excluded_domains=("partner.example",),
            regarding_preference=(),
        ),
    )


def test_grants_are_sorted_by_key() -> None:
    result = parse({"grants": [grant(key="zed"), grant(key="amy"), grant(key="m-2_x")]})
    assert [g.key for g in result.grants] == ["amy", "m-2_x", "zed"]


@pytest.mark.parametrize("text", ["grants: []\n", "defaults:\ngrants: []\n", "defaults: {}\ngrants: []\n"])
def test_a_file_without_grants_is_valid(text: str) -> None:
    assert parse(text) == ConfigResult(grants=(), errors=())


def test_yaml_anchors_and_merge_keys_work() -> None:
    text = textwrap.dedent(
        """\
        grants:
          - &base {key: alice, grant_id: g-a, start_date: 2026-11-02, page_size: 20}
          - <<: *base
            key: bob
            grant_id: g-b
        """
    )
    result = parse(text)
    assert result.errors == ()
    assert [(g.key, g.grant_id, g.page_size) for g in result.grants] == [
        ("alice", "g-a", 20),
        ("bob", "g-b", 20),
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("page_size", 1),
        ("page_size", 200),
        ("batch_size", 1),
        ("batch_size", 500),
        ("max_concurrency", 1),
        ("max_concurrency", 52),
        ("max_failures", 0),
        ("max_failures", 10_000),
    ],
)
def test_limits_are_inclusive(field: str, value: int) -> None:
    result = parse({"grants": [grant(**{field: value})]})
    assert result.errors == ()
    assert getattr(result.grants[0], field) == value


# ------------------------------------------------------------------------------------------------
# errors that stop the whole file


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "grants:\n  - key: alice\n    grant_id: [unclosed\n",
            "include/grants.yaml: invalid YAML at line 4, column 1",
            id="syntax",
        ),
        pytest.param(
            "grants: []\ngrants: []\n",
            "include/grants.yaml: invalid YAML at line 2, column 1: found duplicate key 'grants'"
            " (first at line 1)",
            id="duplicate-top-level-key",
        ),
        pytest.param(
            "defaults:\n  page_size: 5\n  policy: {}\n  page_size: 9\ngrants: []\n",
            "include/grants.yaml: invalid YAML at line 4, column 3: found duplicate key 'page_size'"
            " (first at line 2)",
            id="duplicate-key-in-defaults",
        ),
        pytest.param(
            "grants: []\n\x07",
            "include/grants.yaml: invalid YAML: unacceptable character #x0007",
            id="control-character",
        ),
        pytest.param(
            "", "include/grants.yaml: must be a mapping with a 'grants' list (got nothing (null))", id="empty"
        ),
        pytest.param(
            "- key: alice\n",
            "include/grants.yaml: must be a mapping with a 'grants' list (got a list)",
            id="list",
        ),
        pytest.param(
            "just text\n",
            "include/grants.yaml: must be a mapping with a 'grants' list (got 'just text')",
            id="text",
        ),
        pytest.param(
            "defaults: {}\n",
            "include/grants.yaml: key 'grants': must be a list of grants (got nothing (null))",
            id="no-grants",
        ),
        pytest.param(
            "grants: {alice: {}}\n",
            "include/grants.yaml: key 'grants': must be a list of grants (got a mapping)",
            id="grants-mapping",
        ),
        pytest.param(
            "grant: []\n",
            "include/grants.yaml: key 'grant': unknown key; did you mean 'grants'?",
            id="top-level-typo",
        ),
        pytest.param(
            "grants: []\nsettings: {}\n",
            "include/grants.yaml: key 'settings': unknown key; allowed keys are defaults, grants",
            id="top-level-unknown",
        ),
        pytest.param(
            "defaults: [1]\ngrants: []\n",
            "include/grants.yaml: key 'defaults': must be a mapping (got a list)",
            id="defaults-list",
        ),
        pytest.param(
            "defaults: {pagesize: 10}\ngrants: []\n",
            "include/grants.yaml: key 'defaults.pagesize': unknown key; did you mean 'defaults.page_size'?",
            id="defaults-typo",
        ),
        pytest.param(
            "defaults: {grant_id: x}\ngrants: []\n",
            "include/grants.yaml: key 'defaults.grant_id': unknown key; allowed keys are nylas_conn_id,",
            id="grant-only-key-in-defaults",
        ),
        pytest.param(
            "defaults: {page_size: 500}\ngrants: []\n",
            "include/grants.yaml: key 'defaults.page_size': must be a whole number from 1 to 200 (got 500)",
            id="defaults-bad-value",
        ),
        pytest.param(
            "defaults: {policy: {internal_only: maybe}}\ngrants: []\n",
            "include/grants.yaml: key 'defaults.policy.internal_only': must be one of skip, track"
            " (got 'maybe')",
            id="defaults-bad-policy",
        ),
        pytest.param(
            "defaults: {policy: {skip_automatd: true}}\ngrants: []\n",
            "include/grants.yaml: key 'defaults.policy.skip_automatd': unknown key; did you mean"
            " 'defaults.policy.skip_automated'?",
            id="defaults-policy-typo",
        ),
        pytest.param(
            "defaults: {policy: [skip]}\ngrants: []\n",
            "include/grants.yaml: key 'defaults.policy': must be a mapping of policy options (got a list)",
            id="defaults-policy-list",
        ),
    ],
)
def test_file_level_problems_are_one_error_and_no_grants(text: str, expected: str) -> None:
    result = parse(text)
    error = only_error(result)
    assert str(error).startswith(expected), str(error)
    assert error.grant is None
    assert result.grants == ()


def test_a_bad_defaults_section_blocks_otherwise_valid_grants() -> None:
    result = parse({"defaults": {"batch_size": 0}, "grants": [grant()]})
    assert result.grants == ()
    assert only_error(result).key == "defaults.batch_size"


def test_an_impossible_yaml_date_is_a_grant_error_not_a_crash() -> None:
    result = parse(
        "grants:\n"
        "  - {key: alice, grant_id: g, start_date: 2026-13-45}\n"
        "  - {key: bob, grant_id: g2, start_date: 2026-11-02}\n"
    )
    assert str(only_error(result)) == (
        "include/grants.yaml: grant 'alice': key 'start_date':"
        " must be a date like 2026-11-02 (got '2026-13-45')"
    )
    assert [g.key for g in result.grants] == ["bob"]


# ------------------------------------------------------------------------------------------------
# errors in one grant


@pytest.mark.parametrize(
    ("overrides", "grant_name", "key", "message"),
    [
        pytest.param({"key": DROP}, "grants[0]", "key", "required key is missing", id="no-key"),
        pytest.param({"grant_id": DROP}, "alice", "grant_id", "required key is missing", id="no-grant-id"),
        pytest.param(
            {"start_date": None}, "alice", "start_date", "required key is missing", id="null-start-date"
        ),
        pytest.param({"key": "Alice"}, "grants[0]", "key", "must be a slug", id="key-upper-case"),
        pytest.param({"key": "-alice"}, "grants[0]", "key", "must be a slug", id="key-leading-dash"),
        pytest.param({"key": "a" * 65}, "grants[0]", "key", "must be a slug", id="key-too-long"),
        pytest.param({"key": "al ice"}, "grants[0]", "key", "must be a slug", id="key-space"),
        pytest.param(
            {"key": "realtime"},
            "realtime",
            "key",
            "reserved for the project's real-time DAG",
            id="key-reserved",
        ),
        pytest.param(
            {"key": 7},
            "grants[0]",
            "key",
            "must be a slug: 1 to 64 lowercase letters, digits, '_' or '-',"
            " starting with a letter or digit (got 7)",
            id="key-number",
        ),
        pytest.param(
            {"grant_id": "  "},
            "alice",
            "grant_id",
            "must be a non-empty string (got '  ')",
            id="blank-grant-id",
        ),
        pytest.param(
            {"grant_id": 12345},
            "alice",
            "grant_id",
            "must be a non-empty string (got 12345)",
            id="numeric-grant-id",
        ),
        pytest.param(
            {"start_date": datetime.datetime(2026, 11, 2, 10, 0)},
            "alice",
            "start_date",
            "must be a date like 2026-11-02, without a time (got 2026-11-02 10:00:00 (a date and time))",
            id="start-date-with-time",
        ),
        pytest.param(
            {"start_date": "02/11/2026"},
            "alice",
            "start_date",
            "must be a date like 2026-11-02",
            id="us-date",
        ),
        pytest.param(
            {"start_date": "2026-02-30"}, "alice", "start_date", "(got '2026-02-30')", id="feb-30-text"
        ),
        pytest.param(
            {"start_date": 20261102}, "alice", "start_date", "(got 20261102)", id="start-date-number"
        ),
        pytest.param({"email": "alice"}, "alice", "email", "must be an email address", id="email-no-at"),
        pytest.param(
            {"email": "a b@x.example"}, "alice", "email", "must be an email address", id="email-space"
        ),
        pytest.param(
            {"enabled": "yes"}, "alice", "enabled", "must be true or false (got 'yes')", id="enabled-text"
        ),
        pytest.param(
            {"enabled": 1}, "alice", "enabled", "must be true or false (got 1)", id="enabled-number"
        ),
        pytest.param(
            {"display_name": ""}, "alice", "display_name", "must be a non-empty string", id="display-empty"
        ),
        pytest.param(
            {"page_size": 0},
            "alice",
            "page_size",
            "must be a whole number from 1 to 200 (got 0)",
            id="page-0",
        ),
        pytest.param({"page_size": 201}, "alice", "page_size", "(got 201)", id="page-201"),
        pytest.param({"page_size": True}, "alice", "page_size", "(got true (a boolean))", id="page-bool"),
        pytest.param({"page_size": "200"}, "alice", "page_size", "(got '200')", id="page-text"),
        pytest.param({"page_size": 20.5}, "alice", "page_size", "(got 20.5)", id="page-float"),
        pytest.param(
            {"max_failures": -1},
            "alice",
            "max_failures",
            "must be a whole number >= 0 (got -1)",
            id="failures",
        ),
        pytest.param({"batch_size": 501}, "alice", "batch_size", "from 1 to 500 (got 501)", id="batch-501"),
        pytest.param(
            {"max_concurrency": 53}, "alice", "max_concurrency", "from 1 to 52 (got 53)", id="concurrency-53"
        ),
        pytest.param(
            {"max_concurrency": 0}, "alice", "max_concurrency", "from 1 to 52 (got 0)", id="concurrency-0"
        ),
        pytest.param(
            {"headers_field": "all"},
            "alice",
            "headers_field",
            "must be one of include_headers, include_basic_headers (got 'all')",
            id="headers-field",
        ),
        pytest.param(
            {"nylas_conn_id": ""}, "alice", "nylas_conn_id", "must be a non-empty string", id="conn-empty"
        ),
        pytest.param(
            {"dataverse_conn_id": "my conn"}, "alice", "dataverse_conn_id", "without spaces", id="conn-space"
        ),
        pytest.param(
            {"org_domains": "contoso.example"},
            "alice",
            "org_domains",
            "must be a list of domains",
            id="domains-text",
        ),
        pytest.param(
            {"org_domains": ["contoso.example", "@fabrikam.example"]},
            "alice",
            "org_domains",
            "entry 2: must be a domain like contoso.example (no '@') (got '@fabrikam.example')",
            id="domain-with-at",
        ),
        pytest.param(
            {"org_domains": ["localhost"]},
            "alice",
            "org_domains",
            "entry 1: must be a domain",
            id="domain-no-dot",
        ),
        pytest.param(
            {"pagesize": 5}, "alice", "pagesize", "unknown key; did you mean 'page_size'?", id="typo"
        ),
        pytest.param(
            {"enable": False}, "alice", "enable", "unknown key; did you mean 'enabled'?", id="typo-enabled"
        ),
        pytest.param(
            {"colour": "red"}, "alice", "colour", "unknown key; allowed keys are key, grant_id,", id="unknown"
        ),
        pytest.param(
            {"grant-id": "x", "grant_id": DROP},
            "alice",
            "grant-id",
            "did you mean 'grant_id'?",
            id="typo-first",
        ),
        pytest.param(
            {"policy": "strict"},
            "alice",
            "policy",
            "must be a mapping of policy options (got 'strict')",
            id="policy-text",
        ),
        pytest.param(
            {"policy": {"internal_only": "maybe"}},
            "alice",
            "policy.internal_only",
            "must be one of skip, track (got 'maybe')",
            id="internal-only",
        ),
        pytest.param(
            {"policy": {"internal-only": "skip"}},
            "alice",
            "policy.internal-only",
            "unknown key; did you mean 'policy.internal_only'?",
            id="policy-typo",
        ),
        pytest.param(
            {"policy": {"skip_automated": "no"}},
            "alice",
            "policy.skip_automated",
            "must be true or false",
            id="flag",
        ),
        pytest.param(
            {"policy": {"require_known_party": None}},
            "alice",
            "policy.require_known_party",
            "(got nothing (null))",
            id="null",
        ),
        pytest.param(
            {"policy": {"excluded_addresses": ["ok@x.example", "not-an-address"]}},
            "alice",
            "policy.excluded_addresses",
            "entry 2: must be an email address like someone@example.com (got 'not-an-address')",
            id="excluded-address",
        ),
        pytest.param(
            {"policy": {"excluded_domains": "x.example"}},
            "alice",
            "policy.excluded_domains",
            "must be a list",
            id="excl-domains",
        ),
        pytest.param(
            {"policy": {"regarding_preference": ["contact", "systemuser"]}},
            "alice",
            "policy.regarding_preference",
            "entries must be contact, account, lead (got 'systemuser')",
            id="regarding-systemuser",
        ),
        pytest.param(
            {"policy": {"regarding_preference": ["contact", "contact"]}},
            "alice",
            "policy.regarding_preference",
            "'contact' is listed twice",
            id="regarding-twice",
        ),
        pytest.param(
            {"policy": {"regarding_preference": "contact"}},
            "alice",
            "policy.regarding_preference",
            "must be a list drawn from contact, account, lead",
            id="regarding-text",
        ),
    ],
)
def test_a_bad_grant_is_named_with_its_key_and_the_others_still_load(
    overrides: dict[str, Any], grant_name: str, key: str, message: str
) -> None:
    result = parse({"grants": [grant(**overrides), grant(key="bob", grant_id="g-bob")]})
    error = only_error(result)
    assert (error.source, error.grant, error.key) == (SOURCE, grant_name, key)
    assert message in error.message
    shown = grant_name if grant_name.startswith("grants[") else f"grant '{grant_name}'"
    assert str(error) == f"{SOURCE}: {shown}: key '{key}': {error.message}"
    assert [g.key for g in result.grants] == ["bob"]


def test_the_documented_error_text() -> None:
    error = only_error(parse({"grants": [grant(policy={"internal_only": "maybe"})]}))
    assert str(error) == (
        "include/grants.yaml: grant 'alice': key 'policy.internal_only':"
        " must be one of skip, track (got 'maybe')"
    )
    assert isinstance(error, Exception)


@pytest.mark.parametrize("entry", [["alice"], "alice", 42, None])
def test_a_grant_that_is_not_a_mapping_is_named_by_its_index(entry: object) -> None:
    result = parse({"grants": [grant(key="amy"), entry]})
    error = only_error(result)
    assert (error.grant, error.key) == ("grants[1]", None)
    assert error.message.startswith("must be a mapping with at least key, grant_id and start_date")
    assert [g.key for g in result.grants] == ["amy"]


def test_a_repeated_grant_key_is_an_error_on_the_later_one() -> None:
    result = parse({"grants": [grant(grant_id="first"), grant(key="bob"), grant(grant_id="second")]})
    error = only_error(result)
    assert str(error) == (
        "include/grants.yaml: grants[2]: key 'key': duplicate key 'alice', already used by grants[0]"
        " (line 2); every grant needs its own key"
    )
    assert [(g.key, g.grant_id) for g in result.grants] == [("alice", "first"), ("bob", "g-bob")]


def test_a_repeated_key_is_reported_even_when_the_first_grant_is_invalid() -> None:
    result = parse({"grants": [grant(page_size=0), grant(grant_id="second")]})
    assert [(e.grant, e.key) for e in result.errors] == [("alice", "page_size"), ("grants[1]", "key")]
    assert result.grants == ()


def test_every_bad_grant_gets_its_own_error_in_file_order() -> None:
    result = parse(
        {
            "grants": [
                grant(key="c", page_size=0),
                grant(key="a"),
                grant(key="b", email="nope"),
                grant(key="Bad"),
            ]
        }
    )
    assert [(e.grant, e.key) for e in result.errors] == [
        ("c", "page_size"),
        ("b", "email"),
        ("grants[3]", "key"),
    ]
    assert [g.key for g in result.grants] == ["a"]


def test_a_grant_policy_error_does_not_affect_other_grants_policy() -> None:
    result = parse(
        {
            "defaults": {"policy": {"require_known_party": True}},
            "grants": [
                grant(policy={"skip_automated": 3}),
                grant(key="bob", policy={"skip_automated": False}),
            ],
        }
    )
    assert only_error(result).key == "policy.skip_automated"
    (bob,) = result.grants
    assert (bob.policy.require_known_party, bob.policy.skip_automated) == (True, False)


def test_config_errors_survive_pickling() -> None:
    error = only_error(parse({"grants": [grant(page_size=0)]}))
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, produced one line earlier
    assert (copy.source, copy.grant, copy.key, copy.message) == (
        error.source,
        "alice",
        "page_size",
        error.message,
    )
    assert str(copy) == str(error)


def test_the_source_is_only_used_in_messages() -> None:
    result = parse_config("grants: [1]\n", "/does/not/exist.yaml")
    assert str(only_error(result)).startswith("/does/not/exist.yaml: grants[0]: ")


def test_create_contacts_is_off_by_default_and_reads_a_bare_yaml_off() -> None:
    assert PolicyConfig().create_contacts == "off"
    text = textwrap.dedent(
        """
        defaults:
          policy: {create_contacts: off, role_address_patterns: [sales*, Info]}
        grants:
          - {key: alice, grant_id: g1, start_date: 2026-11-02}
          - {key: bob, grant_id: g2, start_date: 2026-11-02, policy: {create_contacts: senders}}
        """
    )
    result = parse_config(text, "grants.yaml")
    assert result.errors == ()
    alice, bob = result.grants
    assert (alice.policy.create_contacts, bob.policy.create_contacts) == ("off", "senders")
    assert bob.policy.role_address_patterns == ("sales*", "info")


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({"create_contacts": "yes"}, "must be one of off, senders, all"),
        ({"role_address_patterns": ["info@contoso.example"]}, "the part before '@'"),
    ],
)
def test_bad_create_contacts_settings_name_the_key(policy: dict[str, Any], expected: str) -> None:
    error = only_error(parse({"grants": [grant(policy=policy)]}))
    assert expected in error.message
    assert next(iter(policy)) in str(error)


# ------------------------------------------------------------------------------------------------
# the same thing given twice (issue 11)

TWICE = """\
grants:
  - key: alice
    grant_id: g-alice
    start_date: 2026-11-02
    page_size: 5
    page_size: 9
  - key: bob
    grant_id: g-bob
    start_date: 2026-11-02
    policy:
      skip_automated: true
      skip_automated: false
  - key: carol
    grant_id: g-carol
    start_date: 2026-11-02
"""


def test_a_key_given_twice_inside_a_grant_is_that_grants_error_naming_both_lines() -> None:
    result = parse(TWICE)
    assert [str(error) for error in result.errors] == [
        "include/grants.yaml: grant 'alice': key 'page_size': given twice, at lines 5 and 6;"
        " YAML would silently keep only the last value, so remove one of them",
        "include/grants.yaml: grant 'bob': key 'skip_automated': given twice, at lines 11 and 12;"
        " YAML would silently keep only the last value, so remove one of them",
    ]
    assert [g.key for g in result.grants] == ["carol"]


def test_a_key_given_twice_in_a_grant_without_a_usable_key_names_the_entry_by_index() -> None:
    text = "grants:\n  - key: Not A Slug\n    grant_id: a\n    grant_id: b\n    start_date: 2026-11-02\n"
    error = only_error(parse(text))
    assert (error.grant, error.key) == ("grants[0]", "grant_id")
    assert "at lines 3 and 4" in error.message


def test_two_grants_with_one_grant_id_are_both_errors_naming_each_other_by_line() -> None:
    text = (
        "grants:\n"
        "  - {key: alice, grant_id: shared-id, start_date: 2026-11-02}\n"
        "  - {key: bob, grant_id: g-bob, start_date: 2026-11-02}\n"
        "  - {key: carol, grant_id: shared-id, start_date: 2026-11-02}\n"
    )
    result = parse(text)
    assert [(e.grant, e.key) for e in result.errors] == [("alice", "grant_id"), ("carol", "grant_id")]
    assert result.errors[0].message.startswith(
        "this entry (line 2) has the same Nylas grant id as grant 'carol' (line 4);"
    )
    assert result.errors[1].message.startswith(
        "this entry (line 4) has the same Nylas grant id as grant 'alice' (line 2);"
    )
    assert [g.key for g in result.grants] == ["bob"]


def test_a_disabled_entry_may_keep_the_grant_id_of_its_replacement() -> None:
    result = parse({"grants": [grant(grant_id="same", enabled=False), grant(key="alice2", grant_id="same")]})
    assert result.errors == ()
    assert [(g.key, g.enabled) for g in result.grants] == [("alice", False), ("alice2", True)]
