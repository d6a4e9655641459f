"""Several Dataverse application users: each has its own service-protection limits, so grants spread over
two users are limited separately (the sandbox keeps a window per Entra client, as Dataverse does per user)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk import ObjectStoragePath

from nylas_dataverse.core.config import parse_config
from nylas_dataverse.pipeline.run import Services, run_stage
from nylas_dataverse.pipeline.staging import RunStaging
from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.dataverse.errors import ThrottledError
from nylas_dataverse_sandbox.dataverse.throttle import ServiceProtectionLimits
from nylas_dataverse_sandbox.sandbox import Sandbox, SandboxConfig

from .conftest import DAY, window

FIRST, _ = personas.application_client(1)
SECOND, _ = personas.application_client(2)


@pytest.fixture(scope="module")
def two_users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sandbox = Sandbox.start(
        SandboxConfig(
            state_dir=tmp_path_factory.mktemp("two-users"),
            nylas_port=0,
            entra_port=0,
            dataverse_port=0,
            application_users=2,
        )
    )
    saved = {name: os.environ.get(name) for name in sandbox.environment()}
    os.environ.update(sandbox.environment())
    yield sandbox
    sandbox.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _grants(sandbox: Sandbox, users: dict[str, str]) -> dict[str, Any]:
    config: dict[str, Any] = sandbox.grants_config()
    for grant in config["grants"]:
        if grant["key"] in users:
            grant["dataverse_conn_id"] = users[grant["key"]]
    result = parse_config(yaml.safe_dump(config), "grants")
    assert not result.errors
    return {grant.key: grant for grant in result.grants}


def test_the_sandbox_hosts_one_application_user_per_connection(two_users: Sandbox) -> None:
    assert set(two_users.dataverse_connections()) == {"dataverse_default", "dataverse_app_2"}
    assert "AIRFLOW_CONN_DATAVERSE_APP_2" in two_users.environment()
    users = {
        row["applicationid"]
        for row in two_users.dataverse.store.scan("systemusers")
        if row.get("applicationid")
    }
    assert users == {FIRST, SECOND}


def test_two_application_users_loads_are_limited_separately(two_users: Sandbox, tmp_path: Path) -> None:
    two_users.dataverse.reset()
    grants = _grants(two_users, {"alice": "dataverse_default", "carol": "dataverse_app_2"})
    root = ObjectStoragePath(tmp_path.as_uri())
    staged = {}
    for key in ("alice", "carol"):
        grant = grants[key]
        staging = RunStaging(root, grant.dag_id, DAY.isoformat())
        services = Services.for_grant(grant)
        run_stage("extract", grant, staging, services, window=window(DAY))
        run_stage("transform", grant, staging, services)
        staged[key] = (grant, staging, services)
    protection = two_users.dataverse.protection
    protection.configure(ServiceProtectionLimits(time_scale=0.1))  # a 30 s window
    protection.reset()

    grant, staging, services = staged["alice"]
    run_stage("load", grant, staging, services)
    used_by_first = protection.snapshot()["users"][FIRST]["requests_in_window"]
    # A limit the second user's load fits in (each load needs a few dozen requests), then the first user's
    # window filled to it: one more request of that user is refused.
    limit = max(used_by_first, 200)
    protection.configure(ServiceProtectionLimits(time_scale=0.1, max_requests=limit))
    for _ in range(limit - used_by_first):
        protection.finish(protection.admit(FIRST), 0.0)
    with pytest.raises(ThrottledError):
        protection.admit(FIRST)

    grant, staging, services = staged["carol"]
    run_stage("load", grant, staging, services)
    counts = run_stage("report", grant, staging, services)

    users = protection.snapshot()["users"]
    assert 0 < users[SECOND]["requests_in_window"] <= limit
    assert services.dataverse.throttled_count == 0  # the second user never met the first user's limit
    assert counts["failed"] == 0
    assert counts["created"] + counts["already_present"] > 0
    created_by = {row["_createdby_value"] for row in two_users.dataverse.emails_with_parties()}
    assert {two_users.dataverse.store.get("systemusers", uid)["applicationid"] for uid in created_by} == {
        FIRST,
        SECOND,
    }
