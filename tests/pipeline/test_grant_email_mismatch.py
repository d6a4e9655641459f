"""A grants-file ``email`` that is not the address Nylas reports for the grant id is named in every run."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import pytest

from .conftest import Runner, grants


def test_an_email_that_differs_from_the_grants_address_in_nylas_is_warned_about_naming_both(
    sandbox: Any, runner: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    alice = grants(sandbox)["alice"]
    slip = dataclasses.replace(alice, email="bob@contoso.example")  # bob's address pasted into alice's entry
    caplog.set_level(logging.WARNING, logger="nylas_dataverse")

    staging = runner.extract(slip)

    [warning] = [r.getMessage() for r in caplog.records if "Nylas reports" in r.getMessage()]
    assert "bob@contoso.example" in warning
    assert "alice@contoso.example" in warning
    assert warning.startswith("Grant alice:")
    assert json.loads(staging.file("extract.json").read_bytes())["grant_email"] == "bob@contoso.example"


def test_the_same_address_in_another_case_is_not_a_mismatch(
    sandbox: Any, runner: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    alice = grants(sandbox)["alice"]
    caplog.set_level(logging.WARNING, logger="nylas_dataverse")

    runner.extract(dataclasses.replace(alice, email="Alice@Contoso.example"))

    assert not [r for r in caplog.records if "Nylas reports" in r.getMessage()]
