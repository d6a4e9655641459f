"""The sandbox's `$filter` accepts, matches and rejects what Dataverse does."""

from __future__ import annotations

import json

import pytest

from nylas_dataverse_sandbox.dataverse.odata_filter import ODataFilterError, equality_values, parse_filter

ACCOUNT_ID = "5D2C7A10-3B4E-4F5A-8C6D-7E8F9A0B1C2D"

ROWS: dict[str, dict[str, object]] = {
    "ada": {
        "fullname": "Ada Lovelace",
        "lastname": "Lovelace",
        "emailaddress1": "Ada@Contoso.example",
        "emailaddress2": None,
        "numberofchildren": 2,
        "donotemail": False,
        "_parentcustomerid_value": ACCOUNT_ID.lower(),
        "createdon": "2024-03-01T09:30:00Z",
        "primarycontactid": {"fullname": "Grace Hopper"},
    },
    "brian": {
        "fullname": "Brian O'Bryan",
        "lastname": "O'Bryan",
        "emailaddress1": "brian+sales@fabrikam.example",
        "emailaddress2": "o'bryan@fabrikam.example",
        "numberofchildren": 0,
        "donotemail": True,
        "_parentcustomerid_value": None,
        "createdon": "2024-05-20T17:00:00+02:00",
    },
    "zoe": {
        "fullname": "Zoë Ångström",
        "lastname": "Ångström",
        "emailaddress1": 'zoe."quoted"@example.org',
        "numberofchildren": 5,
        "donotemail": False,
        "createdon": "2023-12-31T23:59:59Z",
    },
    "blank": {"fullname": "No Mail", "lastname": None, "emailaddress1": None},
}


MISSING_COMMA = (
    "Invalid JSON. A comma character ',' was expected in scope 'Array'. Every two elements in an array and "
    "properties of an object must be separated by commas."
)
OPEN_SCOPE = (
    "Invalid JSON. Unexpected end of input was found in JSON content. "
    "Not all object and array scopes were closed."
)


def unknown_function(name: str) -> str:
    return (
        f"An unknown function with name '{name}' was found. This may also be a function import or a key "
        "lookup on a navigation property, which is not allowed."
    )


def matching(filter_text: str, aliases: dict[str, str] | None = None) -> list[str]:
    predicate = parse_filter(filter_text, aliases)
    return sorted(key for key, row in ROWS.items() if predicate(row))


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("numberofchildren eq 2", ["ada"]),
        ("numberofchildren ne 2", ["brian", "zoe"]),
        ("numberofchildren gt 2", ["zoe"]),
        ("numberofchildren ge 2", ["ada", "zoe"]),
        ("numberofchildren lt 2", ["brian"]),
        ("numberofchildren le 2", ["ada", "brian"]),
        ("2 lt numberofchildren", ["zoe"]),
        ("lastname gt 'm'", ["brian", "zoe"]),
        ("lastname lt 'M'", ["ada"]),
        ("donotemail eq true", ["brian"]),
        ("donotemail", ["brian"]),
        ("donotemail eq false", ["ada", "zoe"]),
        ("numberofchildren eq 2.0", ["ada"]),
        ("numberofchildren lt 1.5m", ["brian"]),
        ("createdon gt 2024-01-01T00:00:00Z", ["ada", "brian"]),
        ("createdon lt 2024-05-20T15:30:00Z", ["ada", "brian", "zoe"]),
        ("createdon ge 2024-01-01", ["ada", "brian"]),
        ("primarycontactid/fullname eq 'grace hopper'", ["ada"]),
    ],
)
def test_each_comparison_operator_matches_the_rows_dataverse_returns(
    filter_text: str, expected: list[str]
) -> None:
    assert matching(filter_text) == expected


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        # `and` binds tighter than `or`
        ("numberofchildren eq 0 or numberofchildren eq 2 and donotemail eq true", ["brian"]),
        ("(numberofchildren eq 0 or numberofchildren eq 2) and donotemail eq false", ["ada"]),
        ("donotemail eq true and numberofchildren eq 0 or numberofchildren eq 5", ["brian", "zoe"]),
        # `not` binds tighter than `and`
        ("not contains(fullname,'o') and numberofchildren ge 0", []),
        ("not startswith(fullname,'ada') and numberofchildren ge 0", ["brian", "zoe"]),
        ("not (numberofchildren eq 2 or numberofchildren eq 5)", ["brian"]),
        ("not not (numberofchildren eq 2)", ["ada"]),
        ("((((numberofchildren eq 5))))", ["zoe"]),
    ],
)
def test_precedence_is_not_then_and_then_or(filter_text: str, expected: list[str]) -> None:
    assert matching(filter_text) == expected


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("emailaddress1 eq 'ada@contoso.example'", ["ada"]),
        ("emailaddress1 eq 'ADA@CONTOSO.EXAMPLE'", ["ada"]),
        ("lastname eq 'ÅNGSTRÖM'", ["zoe"]),
        ("contains(fullname,'LOVE')", ["ada"]),
        ("startswith(fullname,'brian')", ["brian"]),
        ("endswith(emailaddress1,'.ORG')", ["zoe"]),
        ("contains(fullname,'xyz')", []),
    ],
)
def test_strings_compare_case_insensitively(filter_text: str, expected: list[str]) -> None:
    assert matching(filter_text) == expected


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("contains(emailaddress1,'brian_sales')", ["brian"]),  # `_` is any one character
        ("contains(emailaddress1,'ada%example')", ["ada"]),  # `%` is any run
        ("startswith(lastname,'[a-l]')", ["ada"]),
        ("startswith(lastname,'[^a-l]')", ["brian", "zoe"]),
        ("contains(emailaddress1,'+')", ["brian"]),
        ("contains(emailaddress1,'[.]\"')", ["zoe"]),
    ],
)
def test_string_functions_honour_like_wildcards_as_dataverse_does(
    filter_text: str, expected: list[str]
) -> None:
    assert matching(filter_text) == expected


def test_a_doubled_quote_is_one_quote_inside_a_literal() -> None:
    assert matching("lastname eq 'O''Bryan'") == ["brian"]
    assert matching("emailaddress2 eq 'O''BRYAN@fabrikam.example'") == ["brian"]
    assert matching("fullname eq ''") == []


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("emailaddress2 eq null", ["ada", "blank", "zoe"]),  # absent counts as null
        ("emailaddress2 ne null", ["brian"]),
        ("null eq lastname", ["blank"]),
        # SQL semantics: comparing a null column with a value is unknown, so `ne` skips blanks too
        ("lastname ne 'Lovelace'", ["brian", "zoe"]),
        ("not (lastname eq 'Lovelace')", ["brian", "zoe"]),
        ("lastname eq 'Lovelace' or emailaddress1 ne null", ["ada", "brian", "zoe"]),
        ("unknowncolumn eq null", ["ada", "blank", "brian", "zoe"]),
    ],
)
def test_null_and_missing_properties(filter_text: str, expected: list[str]) -> None:
    assert matching(filter_text) == expected


def test_lookup_value_compares_with_an_unquoted_guid_case_insensitively() -> None:
    assert matching(f"_parentcustomerid_value eq {ACCOUNT_ID}") == ["ada"]
    assert matching(f"_parentcustomerid_value eq {ACCOUNT_ID.lower()}") == ["ada"]
    assert matching(f"_parentcustomerid_value ne {ACCOUNT_ID}") == []
    assert matching("_parentcustomerid_value eq null") == ["blank", "brian", "zoe"]


def test_a_quoted_guid_against_a_lookup_is_rejected_like_dataverse() -> None:
    with pytest.raises(ODataFilterError) as error:
        parse_filter(f"_parentcustomerid_value eq '{ACCOUNT_ID}'")
    assert error.value.message == (
        "A binary operator with incompatible types was detected. Found operand types 'Edm.Guid' and "
        "'Edm.String' for operator kind 'Equal'."
    )


@pytest.mark.parametrize(
    ("filter_text", "aliases", "expected"),
    [
        (
            "Microsoft.Dynamics.CRM.In(PropertyName='emailaddress1',PropertyValues=[\"ADA@contoso.example\","
            '"zoe.\\"quoted\\"@example.org"])',
            None,
            ["ada", "zoe"],
        ),
        (
            "Microsoft.Dynamics.CRM.In(PropertyName='emailaddress1',PropertyValues=['brian+sales@fabrikam.example'])",
            None,
            ["brian"],
        ),
        (
            "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)",
            {"@p1": "'emailaddress2'", "@p2": '["a@x.com","O\'Bryan@fabrikam.example"]'},
            ["brian"],
        ),
        (
            "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)",
            {"@p1": "'lastname'", "@p2": "['o''bryan', 'ångström']"},
            ["brian", "zoe"],
        ),
        (
            "Microsoft.Dynamics.CRM.NotIn(PropertyName='lastname',PropertyValues=[\"Lovelace\"])",
            None,
            ["brian", "zoe"],  # a null column is in neither In nor NotIn
        ),
        (
            "Microsoft.Dynamics.CRM.In(PropertyName='numberofchildren',PropertyValues=[\"0\",5])",
            None,
            ["brian", "zoe"],
        ),
        (
            "Microsoft.Dynamics.CRM.In(PropertyName='lastname',PropertyValues=[]) or numberofchildren eq 2",
            None,
            ["ada"],
        ),
        (
            "not Microsoft.Dynamics.CRM.In(PropertyName='emailaddress1',PropertyValues=[\"a@x.com\"])"
            " and donotemail eq false",
            None,
            ["ada", "zoe"],
        ),
    ],
)
def test_in_and_not_in_inline_and_with_parameter_aliases(
    filter_text: str, aliases: dict[str, str] | None, expected: list[str]
) -> None:
    assert matching(filter_text, aliases) == expected


def test_in_with_a_thousand_values_finds_the_one_that_exists() -> None:
    values = [f"person{n}@nowhere.example" for n in range(999)] + ["Brian+Sales@Fabrikam.example"]
    aliases = {"@p1": "'emailaddress1'", "@p2": json.dumps(values)}
    predicate = parse_filter("Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)", aliases)
    assert [key for key, row in ROWS.items() if predicate(row)] == ["brian"]


def test_an_alias_used_as_a_comparison_operand() -> None:
    assert matching("lastname eq @name", {"@name": "'o''bryan'"}) == ["brian"]
    assert matching("numberofchildren gt @n", {"@n": "1"}) == ["ada", "zoe"]
    # OData: an alias the query string never assigns is null
    assert matching("lastname eq @missing") == ["blank"]


@pytest.mark.parametrize(
    ("filter_text", "aliases", "message"),
    [
        (
            "lastname eq 'O'Bryan'",
            None,
            "There is an unterminated literal at position 21 in 'lastname eq 'O'Bryan''.",
        ),
        (
            "lastname eq 'Lovelace",
            None,
            "There is an unterminated literal at position 21 in 'lastname eq 'Lovelace'.",
        ),
        (
            "Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)",
            {"@p1": "'lastname'", "@p2": "['O'Brian']"},
            MISSING_COMMA,
        ),
        (
            "Microsoft.Dynamics.CRM.In(PropertyName='lastname',PropertyValues=['O'Brian'])",
            None,
            MISSING_COMMA,
        ),
        (
            'Microsoft.Dynamics.CRM.In(PropertyName=\'lastname\',PropertyValues=["a" "b"])',
            None,
            MISSING_COMMA,
        ),
        (
            "Microsoft.Dynamics.CRM.In(PropertyName='lastname',PropertyValues=[\"a\"",
            None,
            OPEN_SCOPE,
        ),
        (
            "Microsoft.Dynamics.CRM.In(PropertyName='lastname',PropertyValues=[\"a)",
            None,
            "Invalid JSON. Unexpected end of input reached while processing a JSON string value.",
        ),
        (
            "substringof('a',lastname)",
            None,
            unknown_function("substringof"),
        ),
        (
            "Contains(lastname,'a')",
            None,
            unknown_function("Contains"),
        ),
        (
            "contains(lastname)",
            None,
            "No function signature for the function with name 'contains' matches the specified arguments. "
            "The function signatures considered are: "
            "contains(Edm.String Nullable=true, Edm.String Nullable=true).",
        ),
        ("lastname eq", None, "Expression expected at position 11 in 'lastname eq'."),
        ("lastname eq 'a' 'b'", None, "Syntax error at position 16 in 'lastname eq 'a' 'b''."),
        ("(lastname eq 'a'", None, "')' or operator expected at position 16 in '(lastname eq 'a''."),
        (
            "lastname eq 'a' && x",
            None,
            "Syntax error: character '&' is not valid at position 16 in 'lastname eq 'a' && x'.",
        ),
        ("'abc'", None, "The $filter expression must evaluate to a single boolean value."),
    ],
)
def test_rejections_carry_dataverse_messages(
    filter_text: str, aliases: dict[str, str] | None, message: str
) -> None:
    with pytest.raises(ODataFilterError) as error:
        parse_filter(filter_text, aliases)
    assert error.value.message == message
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("filter_text", "reason"),
    [
        # `not` applies to `lastname` alone, as in Dataverse, where that is a type error
        ("not lastname eq 'Lovelace'", "'not' binds tighter than 'eq' at position 13"),
        ("Microsoft.Dynamics.CRM.In(PropertyName='lastname')", "got ['PropertyName']"),
        ('Microsoft.Dynamics.CRM.In(PropertyName=@p9,PropertyValues=["a"])', "takes PropertyName"),
        (
            'Microsoft.Dynamics.CRM.In(PropertyName=lastname,PropertyValues=["a"])',
            "Syntax error at position 39",
        ),
        (
            'Microsoft.Dynamics.CRM.Between(PropertyName=\'numberofchildren\',PropertyValues=["1","3"])',
            "does not implement the query function 'Microsoft.Dynamics.CRM.Between'",
        ),
        ("lastname eq @p1", "'@p1' has the value 'lastname eq 'x'', which is not a literal"),
        ("lastname/any(o: o eq 1)", "character ':' is not valid at position 14"),
    ],
)
def test_other_unsupported_or_malformed_filters_are_rejected_not_guessed(
    filter_text: str, reason: str
) -> None:
    with pytest.raises(ODataFilterError) as error:
        parse_filter(filter_text, {"@p1": "lastname eq 'x'"})
    assert reason in error.value.message


def test_properties_lists_every_column_named_including_in_targets_and_paths() -> None:
    predicate = parse_filter(
        "(emailaddress1 eq 'a' or contains(fullname,'b')) and not (statecode eq 1)"
        " and Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)"
        " and primarycontactid/fullname ne null"
        f" and _parentcustomerid_value eq {ACCOUNT_ID}",
        {"@p1": "'emailaddress3'", "@p2": '["x"]'},
    )
    assert predicate.properties == frozenset(
        {
            "emailaddress1",
            "fullname",
            "statecode",
            "emailaddress3",
            "primarycontactid/fullname",
            "_parentcustomerid_value",
        }
    )


def test_literals_are_not_reported_as_properties() -> None:
    predicate = parse_filter("lastname eq 'statecode' and donotemail eq true and numberofchildren eq null")
    assert predicate.properties == frozenset({"lastname", "donotemail", "numberofchildren"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("messageid eq '<A@x>'", {"<a@x>"}),
        ("'<A@x>' eq messageid", {"<a@x>"}),
        (
            "Microsoft.Dynamics.CRM.In(PropertyName='messageid',PropertyValues=['<a@x>','<B@y>'])",
            {"<a@x>", "<b@y>"},
        ),
        ("messageid eq '<a@x>' or messageid eq '<b@y>'", {"<a@x>", "<b@y>"}),
        ("messageid eq '<a@x>' and statecode eq 1", {"<a@x>"}),
        ("(messageid eq '<a@x>' or messageid eq '<b@y>') and messageid eq '<b@y>'", {"<b@y>"}),
        ("messageid eq '<a@x>' or statecode eq 1", None),
        ("messageid ne '<a@x>'", None),
        ("Microsoft.Dynamics.CRM.NotIn(PropertyName='messageid',PropertyValues=['<a@x>'])", None),
        ("startswith(messageid,'<a')", None),
        ("not (messageid eq '<a@x>')", None),
        ("subject eq 'x'", None),
        ("messageid eq null", None),
    ],
)
def test_equality_values_says_which_values_an_index_may_serve(text: str, expected: set[str] | None) -> None:
    values = equality_values(parse_filter(text), "messageid")

    assert values == (frozenset(expected) if expected is not None else None)


def test_index_candidates_never_change_what_matches() -> None:
    rows = [{"messageid": m, "statecode": s} for m, s in [("<A@x>", 1), ("<b@y>", 0), ("<c@z>", 1)]]
    text = "(messageid eq '<a@x>' or messageid eq '<B@Y>') and statecode eq 1"
    predicate = parse_filter(text)
    values = equality_values(predicate, "messageid")
    assert values is not None

    through_index = [r for r in rows if str(r["messageid"]).casefold() in values and predicate(r)]

    assert through_index == [r for r in rows if predicate(r)] == [rows[0]]
