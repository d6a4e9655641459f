"""Builders for Nylas message dicts, shared by the core unit tests.

`raw_message(**overrides)` returns a realistic message dict (an incoming mail from a customer to Alice,
received 2026-11-02T10:30:00Z). Participants may be given as plain address strings and headers as
(name, value) pairs; `from_` stands for the JSON key `from`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from nylas_dataverse.core.messages import NylasMessage, parse_message

RECEIVED_AT = 1_793_615_400  # 2026-11-02T10:30:00Z


def _participant(value: object) -> object:
    return {"name": "", "email": value} if isinstance(value, str) else value


def _header(value: object) -> object:
    return {"name": value[0], "value": value[1]} if isinstance(value, tuple) else value


def build_raw(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "object": "message",
        "id": "18d5a4b2c3e4f567",
        "grant_id": "grant-alice",
        "thread_id": "thread-1",
        "subject": "Quote for 40 chairs",
        "from": [{"name": "Carol Customer", "email": "carol@fabrikam.example"}],
        "to": [{"name": "Alice Adams", "email": "alice@contoso.example"}],
        "cc": [],
        "bcc": [],
        "reply_to": [],
        "date": RECEIVED_AT,
        "folders": ["INBOX"],
        "body": "<p>Hello Alice</p>",
        "snippet": "Hello Alice",
        "headers": [{"name": "Message-ID", "value": "<quote-40@fabrikam.example>"}],
        "attachments": [],
    }
    for key, value in overrides.items():
        key = "from" if key == "from_" else key
        if key in ("from", "to", "cc", "bcc", "reply_to") and isinstance(value, list):
            value = [_participant(v) for v in value]
        if key == "headers" and isinstance(value, list):
            value = [_header(v) for v in value]
        raw[key] = value
    return raw


@pytest.fixture
def raw_message() -> Callable[..., dict[str, Any]]:
    return build_raw


@pytest.fixture
def message() -> Callable[..., NylasMessage]:
    def make(**overrides: Any) -> NylasMessage:
        return parse_message(build_raw(**overrides))

    return make
