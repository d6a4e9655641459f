"""Drill: no secret ends up in a log line or a staging file, even on the unhappy paths.

Runs a day at DEBUG through the paths that handle credentials (token refresh after 401s, throttling
retries, an expired Nylas grant's error), then scans this drill's output and everything the drills
before it left behind: their captured logs, staging folders and child-process log files. The watch
knows every access token Entra issued during the session, not only the live ones.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.hooks.dataverse import DataverseHook
from nylas_dataverse.hooks.errors import NylasGrantAuthError
from nylas_dataverse_sandbox import personas

from .conftest import SEEDED_DAY, DrillRunner, SecretWatch, grants

pytestmark = pytest.mark.drills

log = logging.getLogger(__name__)


def test_no_log_line_or_staging_file_of_the_drills_holds_a_secret(
    drill_sandbox: Any, drill_runner: DrillRunner, secret_watch: SecretWatch, tmp_path: Path
) -> None:
    sandbox = drill_sandbox
    sandbox.dataverse.set_faults(throttle_fraction=0.2, expire_tokens_every_s=0.5, seed=3)
    alice = grants(sandbox)["alice"]

    def hook() -> DataverseHook:
        return DataverseHook(sleep=lambda seconds: time.sleep(seconds / 10))

    drill_runner.extract(alice, SEEDED_DAY)
    drill_runner.transform(alice, SEEDED_DAY, hook())
    drill_runner.load(alice, SEEDED_DAY, hook())
    sandbox.dataverse.set_faults(throttle_fraction=0.0, expire_tokens_every_s=None)
    assert drill_runner.report(alice, SEEDED_DAY)["failed"] == 0
    dave = personas.grant_by_key("dave")  # expired: Nylas answers 401
    expired = GrantConfig(key="dave", grant_id=dave.grant_id, start_date=dt.date(2026, 11, 2))
    with pytest.raises(NylasGrantAuthError) as raised:
        drill_runner.extract(expired, SEEDED_DAY)
    log.exception("extract of an expired grant failed", exc_info=raised.value)

    assert sandbox.dataverse.counters().get("faults.token_expiry", 0) >= 1
    assert len(secret_watch.tokens) >= 2, "tokens were refreshed, so several were issued"
    planted = tmp_path / "planted" / "scanner-self-test.log"
    planted.parent.mkdir()
    planted.write_text(f"Authorization: Bearer {secret_watch.tokens[0]}\n")
    assert secret_watch.leaks_in_files([planted]), "the scanner must find a token where one is"
    planted.unlink()

    leaks = [
        leak
        for drill, text in secret_watch.log_texts
        for leak in secret_watch.leaks_in_text(f"the DEBUG log of {drill}", text)
    ]
    leaks += secret_watch.leaks_in_files([path for path in secret_watch.paths if path.exists()])
    assert not leaks, leaks
