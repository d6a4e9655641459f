"""Load against a slow Dataverse: batches shrink to fit the client timeout instead of timing out again."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse_sandbox.dataverse.throttle import ServiceProtectionLimits

from .conftest import Runner, grants


class _BatchSizes(HTTPAdapter):
    """Records how many change sets each $batch carried, and whether it was answered in time."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[int, bool]] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if not (request.url and request.url.endswith("/$batch")):
            return super().send(request, *args, **kwargs)
        size = _body(request).count(b"boundary=changeset")
        try:
            response = super().send(request, *args, **kwargs)
        except requests.exceptions.ReadTimeout:
            self.sent.append((size, False))
            raise
        self.sent.append((size, True))
        return response


def _body(request: requests.PreparedRequest) -> bytes:
    """The request's body, also when the hook streams it from a spooled file (a $batch with attachments)."""
    body: Any = request.body
    if hasattr(body, "read"):
        start = body.tell()
        data = body.read()
        body.seek(start)
        return data if isinstance(data, bytes) else data.encode()
    return body if isinstance(body, bytes) else str(body or "").encode()


def test_a_batch_that_outlasts_the_timeout_is_not_sent_again_at_that_size(
    sandbox: Any, runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = grants(sandbox, batch_size=14, max_concurrency=1)["alice"]
    runner.extract(alice)
    runner.transform(alice)
    # 0.25 s of server time per email in real time: a batch of 14 takes 3.5 s, the client waits 1 s. (The
    # day has 28 emails to load: two batches, too few to be sent as a burst of half-size batches.)
    sandbox.dataverse.set_limits(
        ServiceProtectionLimits(cost_ms={"create_email": 250.0, "party": 0.0, "update": 0.0, "batch": 0.0})
    )
    connection = json.loads(sandbox.environment()["AIRFLOW_CONN_DATAVERSE_DEFAULT"])
    connection["extra"]["timeout"] = 1
    monkeypatch.setenv("AIRFLOW_CONN_DATAVERSE_DEFAULT", json.dumps(connection))
    adapter = _BatchSizes()
    session = requests.Session()
    session.mount("https://", adapter)

    runner.load(alice, hook=DataverseHook("dataverse_default", session=session))
    counts = runner.report(alice)

    assert counts["failed"] == 0
    first_size, answered = adapter.sent[0]
    assert (first_size, answered) == (14, False)
    later_sizes = Counter(size for size, _ in adapter.sent[1:])
    assert later_sizes, "nothing was sent after the timeout"
    assert max(later_sizes) <= 7
    assert sum(1 for _, in_time in adapter.sent if not in_time) <= 2
