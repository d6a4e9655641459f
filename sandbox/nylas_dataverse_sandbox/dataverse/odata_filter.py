"""Parse and evaluate the subset of OData `$filter` that the Dataverse Web API accepts.

Pure: text in, a predicate over plain row mappings out. Rejections use the wording of the real service
(Microsoft.OData.Core underneath Dataverse) where it is known, so a client that mishandles quoting fails here
as it would in production; what the sandbox does not implement is refused by name, never guessed.
Comparisons follow SQL: a null operand makes a comparison unknown (so `ne` does not match blanks), strings
compare case-insensitively, and `contains`/`startswith`/`endswith` honour the LIKE wildcards `%`, `_`,
`[...]` and `[^...]` as Dataverse does.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["ODataFilterError", "Predicate", "equality_values", "parse_filter"]

_IN_FUNCTIONS = {"Microsoft.Dynamics.CRM.In": False, "Microsoft.Dynamics.CRM.NotIn": True}
_STRING_FUNCTIONS = ("contains", "startswith", "endswith")
_OPERATOR_KINDS = {
    "eq": "Equal",
    "ne": "NotEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanOrEqual",
    "lt": "LessThan",
    "le": "LessThanOrEqual",
}
_KEYWORDS = {"and", "or", "not", *_OPERATOR_KINDS}
_LITERAL_WORDS: dict[str, object] = {"true": True, "false": False, "null": None}
_LOOKUP_VALUE = re.compile(r"_\w+_value")

_GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![\w-])")
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))?(?![\w:.-])"
)
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?[mMdDfFlL]?(?![\w.])")
_NAME = re.compile(r"[A-Za-z_]\w*(?:[./][A-Za-z_]\w*)*")
_ALIAS = re.compile(r"@[A-Za-z_]\w*")


class ODataFilterError(ValueError):
    """A `$filter` the real service rejects; `message` is the text for the 400 error body."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # name, string, number, guid, datetime, array, alias, punctuation itself, or end
    text: str
    value: object
    position: int


def _tokenize(text: str) -> list[_Token]:
    """Lex the whole expression up front: like the real parser, a bad literal anywhere wins over syntax."""
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char.isspace():
            position += 1
            continue
        start = position
        value: object
        if char == "'":
            value, position = _read_quoted(text, start)
            tokens.append(_Token("string", text[start:position], value, start))
            continue
        if char == "[":
            value, position = _read_array(text, start)
            tokens.append(_Token("array", text[start:position], value, start))
            continue
        if char in "(),=":
            tokens.append(_Token(char, char, None, start))
            position += 1
            continue
        for kind, pattern in (("guid", _GUID), ("datetime", _DATETIME), ("number", _NUMBER)):
            match = pattern.match(text, position)
            if match:
                tokens.append(_Token(kind, match.group(), _literal_value(kind, match), start))
                position = match.end()
                break
        else:
            match = _NAME.match(text, position) or _ALIAS.match(text, position)
            if match is None:
                raise ODataFilterError(
                    f"Syntax error: character '{char}' is not valid at position {position} in '{text}'."
                )
            tokens.append(_Token("alias" if char == "@" else "name", match.group(), None, start))
            position = match.end()
    tokens.append(_Token("end", "", None, len(text)))
    return tokens


def _literal_value(kind: str, match: re.Match[str]) -> object:
    if kind == "guid":
        return match.group()
    if kind == "datetime":
        moment = datetime.fromisoformat(match.group())
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    digits = match.group().rstrip("mMdDfFlL")
    return float(digits) if match.group(1) or match.group(2) else int(digits)


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """An OData string literal: single quotes, a quote inside is written twice."""
    chars: list[str] = []
    position = start + 1
    while position < len(text):
        if text[position] != "'":
            chars.append(text[position])
            position += 1
        elif text.startswith("''", position):
            chars.append("'")
            position += 2
        else:
            return "".join(chars), position + 1
    # The real lexer reports where it ran out of text, not where the literal began.
    raise ODataFilterError(f"There is an unterminated literal at position {len(text)} in '{text}'.")


_JSON_END_OF_STRING = "Invalid JSON. Unexpected end of input reached while processing a JSON string value."
_JSON_OPEN_SCOPE = (
    "Invalid JSON. Unexpected end of input was found in JSON content. Not all object and array scopes were "
    "closed."
)
_JSON_MISSING_COMMA = (
    "Invalid JSON. A comma character ',' was expected in scope 'Array'. Every two elements in an array and "
    "properties of an object must be separated by commas."
)
_JSON_BAD_TOKEN = "Invalid JSON. A token was not recognized in the JSON content."


def _read_array(text: str, start: int) -> tuple[tuple[str, ...], int]:
    """A `PropertyValues` collection: JSON strings in double quotes, or single-quoted ones with `''`."""
    values: list[str] = []
    position = _skip_spaces(text, start + 1)
    if text.startswith("]", position):
        return (), position + 1
    while True:
        position = _skip_spaces(text, position)
        if position >= len(text):
            raise ODataFilterError(_JSON_OPEN_SCOPE)
        if text[position] == '"':
            value, position = _read_json_string(text, position)
        elif text[position] == "'":
            try:
                value, position = _read_quoted(text, position)
            except ODataFilterError:
                raise ODataFilterError(_JSON_END_OF_STRING) from None
        elif match := _NUMBER.match(text, position):
            value, position = match.group(), match.end()
        else:
            raise ODataFilterError(_JSON_BAD_TOKEN)
        values.append(value)
        position = _skip_spaces(text, position)
        if position >= len(text):
            raise ODataFilterError(_JSON_OPEN_SCOPE)
        if text[position] == "]":
            return tuple(values), position + 1
        if text[position] != ",":
            raise ODataFilterError(_JSON_MISSING_COMMA)
        position += 1


def _skip_spaces(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _read_json_string(text: str, start: int) -> tuple[str, int]:
    position = start + 1
    while position < len(text):
        if text[position] == "\\":
            position += 2
        elif text[position] == '"':
            try:
                return str(json.loads(text[start : position + 1])), position + 1
            except json.JSONDecodeError:
                raise ODataFilterError(_JSON_BAD_TOKEN) from None
        else:
            position += 1
    raise ODataFilterError(_JSON_END_OF_STRING)


class _Node(Protocol):
    def evaluate(self, row: Mapping[str, object]) -> object: ...


@dataclass(frozen=True, slots=True)
class _Literal:
    value: object
    kind: str  # the token kind it came from: a quoted string and an unquoted GUID differ in type

    def evaluate(self, row: Mapping[str, object]) -> object:
        return self.value


@dataclass(frozen=True, slots=True)
class _Property:
    path: str

    def evaluate(self, row: Mapping[str, object]) -> object:
        value: object = row
        for segment in self.path.split("/"):
            value = value.get(segment) if isinstance(value, Mapping) else None
        return value


@dataclass(frozen=True, slots=True)
class _Logical:  # three-valued `and`/`or`: None stands for SQL's UNKNOWN
    is_and: bool
    left: _Node
    right: _Node

    def evaluate(self, row: Mapping[str, object]) -> bool | None:
        results = (_truth(self.left.evaluate(row)), _truth(self.right.evaluate(row)))
        decisive = not self.is_and
        if decisive in results:
            return decisive
        return None if None in results else not decisive


@dataclass(frozen=True, slots=True)
class _Not:
    operand: _Node

    def evaluate(self, row: Mapping[str, object]) -> bool | None:
        result = _truth(self.operand.evaluate(row))
        return None if result is None else not result


def _truth(value: object) -> bool | None:
    """A bare operand used as a condition: only a boolean true counts; null stays unknown."""
    return None if value is None else value is True


@dataclass(frozen=True, slots=True)
class _Comparison:
    operator: str
    left: _Node
    right: _Node

    def evaluate(self, row: Mapping[str, object]) -> bool | None:
        left, right = self.left.evaluate(row), self.right.evaluate(row)
        if self.operator in ("eq", "ne") and any(
            isinstance(side, _Literal) and side.value is None for side in (self.left, self.right)
        ):
            return (left is None and right is None) == (self.operator == "eq")
        if left is None or right is None:
            return None
        try:
            return bool(_COMPARE[self.operator](_comparable(left, right), _comparable(right, left)))
        except TypeError:  # a number against a string, say: the real service would not match either
            return False


_COMPARE: dict[str, Callable[[object, object], object]] = {
    name: getattr(operator, name) for name in ("eq", "ne", "gt", "ge", "lt", "le")
}


def _comparable(value: object, other: object) -> object:
    if isinstance(value, str) and isinstance(other, datetime):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value.casefold()
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return value.casefold() if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class _StringFunction:
    subject: _Node
    pattern: re.Pattern[str]

    def evaluate(self, row: Mapping[str, object]) -> bool | None:
        value = self.subject.evaluate(row)
        return None if value is None else self.pattern.fullmatch(str(value)) is not None


def _like_pattern(function: str, argument: str) -> re.Pattern[str]:
    """SQL LIKE semantics for the argument, anchored as the function implies."""
    parts: list[str] = []
    position = 0
    while position < len(argument):
        char = argument[position]
        closing = argument.find("]", position + 2) if char == "[" else -1
        if char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        elif closing != -1:
            inner = argument[position + 1 : closing]
            negate = inner.startswith("^")
            body = re.escape(inner[1:] if negate else inner).replace("\\-", "-")
            parts.append(f"[{'^' if negate else ''}{body}]")
            position = closing
        else:
            parts.append(re.escape(char))
        position += 1
    core = "".join(parts)
    prefix = "" if function == "startswith" else ".*"
    suffix = "" if function == "endswith" else ".*"
    return re.compile(f"{prefix}{core}{suffix}", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class _Membership:
    property_name: str
    values: frozenset[str]
    negate: bool

    def evaluate(self, row: Mapping[str, object]) -> bool | None:
        value = row.get(self.property_name)
        if value is None:
            return None
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return (text.casefold() in self.values) != self.negate


@dataclass(frozen=True)
class Predicate:
    """A parsed `$filter`: call it on a row; `properties` lists every column it names."""

    root: _Node
    properties: frozenset[str]

    def __call__(self, row: Mapping[str, object]) -> bool:
        return self.root.evaluate(row) is True


class _Parser:
    def __init__(self, text: str, aliases: Mapping[str, str]) -> None:
        self._text = text
        self._tokens = _tokenize(text)
        self._index = 0
        self._aliases = aliases
        self.properties: set[str] = set()

    def parse(self) -> _Node:
        node = self._or()
        if self._peek().kind != "end":
            raise self._syntax_error(self._peek())
        if isinstance(node, _Literal) and not isinstance(node.value, bool):
            raise ODataFilterError("The $filter expression must evaluate to a single boolean value.")
        return node

    def _peek(self) -> _Token:
        return self._tokens[self._index]

    def _next(self) -> _Token:
        token = self._tokens[self._index]
        self._index = min(self._index + 1, len(self._tokens) - 1)
        return token

    def _accept_word(self, word: str) -> bool:
        if self._peek().kind == "name" and self._peek().text == word:
            self._index += 1
            return True
        return False

    def _expect(self, kind: str, message: str) -> _Token:
        token = self._next()
        if token.kind != kind:
            raise ODataFilterError(f"{message} at position {token.position} in '{self._text}'.")
        return token

    def _syntax_error(self, token: _Token) -> ODataFilterError:
        return ODataFilterError(f"Syntax error at position {token.position} in '{self._text}'.")

    def _or(self) -> _Node:
        node = self._and()
        while self._accept_word("or"):
            node = _Logical(False, node, self._and())
        return node

    def _and(self) -> _Node:
        node = self._comparison()
        while self._accept_word("and"):
            node = _Logical(True, node, self._comparison())
        return node

    def _comparison(self) -> _Node:
        node = self._unary()
        while self._peek().kind == "name" and self._peek().text in _OPERATOR_KINDS:
            operator = self._next()
            right = self._unary()
            self._check_operands(node, operator, right)
            node = _Comparison(operator.text, node, right)
        return node

    def _check_operands(self, left: _Node, operator: _Token, right: _Node) -> None:
        """Type errors the real service reports although the sandbox knows no column types."""
        kind = _OPERATOR_KINDS[operator.text]
        for one, other in ((left, right), (right, left)):
            if isinstance(one, _Not) and not (isinstance(other, _Literal) and isinstance(other.value, bool)):
                raise ODataFilterError(
                    f"A unary operator with an incompatible type was detected: 'not' binds tighter than "
                    f"'{operator.text}' at position {operator.position} in '{self._text}'; write 'not (...)'."
                )
            is_lookup = isinstance(one, _Property) and _LOOKUP_VALUE.fullmatch(one.path)
            if is_lookup and isinstance(other, _Literal) and other.kind == "string":
                raise ODataFilterError(
                    "A binary operator with incompatible types was detected. Found operand types "
                    f"'Edm.Guid' and 'Edm.String' for operator kind '{kind}'."
                )

    def _unary(self) -> _Node:
        if self._accept_word("not"):
            return _Not(self._unary())
        return self._primary()

    def _primary(self) -> _Node:
        token = self._next()
        if token.kind == "(":
            node = self._or()
            self._expect(")", "')' or operator expected")
            return node
        if token.kind in ("string", "number", "guid", "datetime"):
            return _Literal(token.value, token.kind)
        if token.kind == "alias":
            return self._alias_literal(token.text, ("string", "number", "guid", "datetime", "name"))
        if token.kind == "name" and token.text in _LITERAL_WORDS:
            return _Literal(_LITERAL_WORDS[token.text], token.text)
        if token.kind == "name" and token.text not in _KEYWORDS:
            if self._peek().kind == "(":
                return self._function(token)
            self.properties.add(token.text)
            return _Property(token.text)
        raise ODataFilterError(f"Expression expected at position {token.position} in '{self._text}'.")

    def _alias_literal(self, alias: str, kinds: tuple[str, ...]) -> _Literal:
        raw = self._aliases.get(alias)
        if raw is None:
            return _Literal(None, "null")  # an alias the query never assigns is null, as OData specifies
        tokens = _tokenize(raw)
        token = tokens[0]
        if (
            len(tokens) != 2
            or token.kind not in kinds
            or (token.kind == "name" and token.text not in _LITERAL_WORDS)
        ):
            raise ODataFilterError(
                f"The parameter alias '{alias}' has the value '{raw}', which is not a literal."
            )
        if token.kind == "name":
            return _Literal(_LITERAL_WORDS[token.text], token.text)
        return _Literal(token.value, token.kind)

    def _function(self, name: _Token) -> _Node:
        self._next()  # the opening parenthesis
        if name.text in _IN_FUNCTIONS:
            return self._membership(name.text)
        if name.text not in _STRING_FUNCTIONS:
            if name.text.startswith("Microsoft.Dynamics.CRM."):
                raise ODataFilterError(f"The sandbox does not implement the query function '{name.text}'.")
            raise ODataFilterError(
                f"An unknown function with name '{name.text}' was found. This may also be a function import "
                "or a key lookup on a navigation property, which is not allowed."
            )
        arguments = [self._or()]
        while self._peek().kind == ",":
            self._next()
            arguments.append(self._or())
        self._expect(")", "')' or ',' expected")
        pattern = arguments[-1]
        if len(arguments) != 2 or not isinstance(pattern, _Literal) or not isinstance(pattern.value, str):
            raise ODataFilterError(
                f"No function signature for the function with name '{name.text}' matches the specified "
                f"arguments. The function signatures considered are: {name.text}(Edm.String Nullable=true, "
                "Edm.String Nullable=true)."
            )
        return _StringFunction(arguments[0], _like_pattern(name.text, pattern.value))

    def _membership(self, function: str) -> _Node:
        parameters: dict[str, object] = {}
        while True:
            parameter = self._expect("name", "Parameter name expected")
            self._expect("=", "'=' expected")
            value = self._next()
            if value.kind == "alias":
                parameters[parameter.text] = self._alias_literal(value.text, ("string", "array")).value
            elif value.kind in ("string", "array"):
                parameters[parameter.text] = value.value
            else:
                raise self._syntax_error(value)
            separator = self._next()
            if separator.kind == ")":
                break
            if separator.kind != ",":
                raise ODataFilterError(
                    f"')' or ',' expected at position {separator.position} in '{self._text}'."
                )
        name, values = parameters.get("PropertyName"), parameters.get("PropertyValues")
        if not isinstance(name, str) or not isinstance(values, tuple) or len(parameters) != 2:
            raise ODataFilterError(
                f"Function '{function}' takes PropertyName (a quoted column name) and PropertyValues "
                f"(an array of strings); got {sorted(parameters)} in '{self._text}'."
            )
        self.properties.add(name)
        return _Membership(name, frozenset(str(v).casefold() for v in values), _IN_FUNCTIONS[function])


def parse_filter(text: str, aliases: Mapping[str, str] | None = None) -> Predicate:
    """Parse a decoded `$filter` value; `aliases` maps `@name` to its raw (decoded) query-string value."""
    parser = _Parser(text, aliases or {})
    root = parser.parse()
    return Predicate(root, frozenset(parser.properties))


def equality_values(predicate: Predicate, column: str) -> frozenset[str] | None:
    """The casefolded strings ``column`` must equal for a row to match, or None when the filter does not pin
    the column to a finite set (then only a scan answers it). What an index can serve: ``column eq 'x'``,
    ``In(PropertyName='column', ...)``, ``or`` of those, and ``and`` with any other condition. The rows an
    index finds still have to pass the whole predicate."""
    return _pinned(predicate.root, column)


def _pinned(node: _Node, column: str) -> frozenset[str] | None:
    if isinstance(node, _Comparison) and node.operator == "eq":
        for side, other in ((node.left, node.right), (node.right, node.left)):
            if (
                isinstance(side, _Property)
                and side.path == column
                and isinstance(other, _Literal)
                and isinstance(other.value, str)
            ):
                return frozenset({other.value.casefold()})
        return None
    if isinstance(node, _Membership):
        return node.values if node.property_name == column and not node.negate else None
    if isinstance(node, _Logical):
        left, right = _pinned(node.left, column), _pinned(node.right, column)
        if node.is_and:
            if left is not None and right is not None:
                return left & right
            return left if left is not None else right
        return left | right if left is not None and right is not None else None
    return None
