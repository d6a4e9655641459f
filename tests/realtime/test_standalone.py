"""``python -m nylas_dataverse.realtime.receiver`` serves the same endpoint outside the API server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from nylas_dataverse.realtime.signature import compute_signature

from .conftest import body_of, envelope


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "NYLAS_DATAVERSE_STAGING": (tmp_path / "staging").as_uri(),
        "AIRFLOW_VAR_NYLAS_WEBHOOK_SECRET": "standalone-secret",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nylas_dataverse.realtime.receiver",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/nylas/webhook"
    deadline = time.monotonic() + 60  # a start-up guard, not an assertion about speed
    try:
        while True:
            try:
                requests.get(url, params={"challenge": "ready"}, timeout=2)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the receiver did not start: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_the_standalone_receiver_answers_the_challenge_and_stores_signed_posts(
    standalone: str, tmp_path: Path
) -> None:
    assert requests.get(standalone, params={"challenge": "xyz"}, timeout=5).text == "xyz"
    body = body_of(envelope("n-standalone"))
    signature = compute_signature("standalone-secret", body)

    accepted = requests.post(standalone, data=body, headers={"X-Nylas-Signature": signature}, timeout=5)
    rejected = requests.post(standalone, data=body, timeout=5)

    assert (accepted.status_code, rejected.status_code) == (200, 401)
    assert len(list((tmp_path / "staging" / "_realtime" / "pending").iterdir())) == 1
