"""The health page inside Airflow's own API server app (``create_app``), with Airflow's auth manager.

The plugin is loaded the way the API server loads it; users log in through SimpleAuthManager's token
endpoint. ``support/restricted_auth.py`` gives one user read access to one DAG only, as a production
auth manager can (SimpleAuthManager itself only has roles, and per-team rules in multi-team mode).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath
from fastapi.testclient import TestClient

from nylas_dataverse.core.health import Counts, FailedMessage, RunEntry, RunFailure, RunRef
from nylas_dataverse.pipeline.summary import SummaryStore

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SUPPORT = Path(__file__).resolve().parent / "support"
YESTERDAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
PREFIX = "/nylas-health"

GRANTS_FILE = f"""
defaults:
  org_domains: [contoso.example]
grants:
  - key: alice
    grant_id: 11111111-1111-4111-8111-111111111111
    email: alice@contoso.example
    display_name: Alice (google)
    start_date: {YESTERDAY - dt.timedelta(days=20)}
  - key: bob
    grant_id: 22222222-2222-4222-8222-222222222222
    email: bob@contoso.example
    display_name: Bob (microsoft)
    start_date: {YESTERDAY - dt.timedelta(days=20)}
  - key: carol
    grant_id: 33333333-3333-4333-8333-333333333333
    email: carol@contoso.example
    start_date: {YESTERDAY - dt.timedelta(days=20)}
"""
BODY = "SECRET-BODY-TEXT"
HOSTILE_SUBJECT = "<script>alert(1)</script> Quote for 200 seats"


@dataclass
class Api:
    client: TestClient
    passwords: dict[str, str]
    staging: Path

    def token(self, user: str) -> str:
        response = self.client.post("/auth/token", json={"username": user, "password": self.passwords[user]})
        assert response.status_code in (200, 201), response.text
        return str(response.json()["access_token"])

    def get(self, path: str, user: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        return self.client.get(f"{PREFIX}{path}", headers=headers, follow_redirects=False, **kwargs)


def _entry(key: str, day: dt.date, **kw: Any) -> RunEntry:
    return RunEntry(
        grant_key=key,
        label=day.isoformat(),
        day=day,
        written_at=dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 30), tzinfo=dt.UTC),
        counts=kw.pop("counts", Counts(12, 8, 1, 3, 0)),
        mailbox=f"{key}@contoso.example",
        provider=kw.pop("provider", "google"),
        run=RunRef(f"nylas_to_dataverse__{key}", f"scheduled__{day}T00:00:00+00:00", 1),
        **kw,
    )


def _seed(staging: Path) -> None:
    store = SummaryStore(ObjectStoragePath(staging.as_uri()))
    for offset in range(1, 6):
        store.record(
            _entry("alice", YESTERDAY - dt.timedelta(days=offset), unresolved_top=(("=cmd@evil.example", 1),))
        )
    store.record(
        _entry(
            "alice",
            YESTERDAY,
            counts=Counts(13, 8, 1, 3, 1),
            failure=RunFailure("too_many_failures", "too_many_failures: 1 messages failed", task="report"),
            failed_by_reason={"dataverse_400": 1},
            unresolved_addresses=2,
            unresolved_top=(("stranger@unknown-corp.example", 4), ("=cmd@evil.example", 1)),
            throttled=3,
            throttle_wait_s=42.0,
            failed_messages=(
                FailedMessage(
                    "m-1",
                    "dataverse_400: 0x80040203 Invalid argument",
                    "<m-1@fabrikam.example>",
                    "maria.garcia@fabrikam.example",
                    HOSTILE_SUBJECT,
                ),
            ),
        )
    )
    store.record(
        _entry(
            "bob",
            YESTERDAY,
            counts=None,
            provider="microsoft",
            failure=RunFailure(
                "grant_expired", "grant_expired: Nylas says the grant expired", task="extract"
            ),
        )
    )
    # The newest run's ledger, for the links to the created rows.
    ledger = staging / "nylas_to_dataverse__alice" / YESTERDAY.isoformat() / "ledger.jsonl"
    ledger.parent.mkdir(parents=True)
    ledger.write_text(
        json.dumps(
            {
                "nylas_id": "m-2",
                "grant_id": "g",
                "internet_message_id": "<m-2@fabrikam.example>",
                "outcome": "created",
                "reason": None,
                "activity_id": "be52820f-b6c6-5987-a4d3-5aeb9219df2d",
            }
        )
        + "\n"
    )
    (staging / "nylas_to_dataverse__alice" / YESTERDAY.isoformat() / "messages.jsonl.gz").write_text(BODY)


@pytest.fixture(scope="module")
def api(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    from airflow.api_fastapi import app as api_app
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    workdir = tmp_path_factory.mktemp("health-app")
    staging = workdir / "staging"
    grants = workdir / "grants.yaml"
    grants.write_text(GRANTS_FILE)
    passwords = workdir / "passwords.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(SUPPORT))
        patch.setenv("AIRFLOW__CORE__AUTH_MANAGER", "restricted_auth.RestrictedDagsAuthManager")
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,viewer:viewer,sales:viewer")
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
        patch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "health-test-" + "x" * 80)
        patch.setenv("NYLAS_TEST_DAG_PERMISSIONS", "sales=nylas_to_dataverse__alice")
        patch.setenv("NYLAS_DATAVERSE_CONFIG", str(grants))
        patch.setenv("NYLAS_DATAVERSE_STAGING", staging.as_uri())
        # The DAGs exist in the metadata DB, as the DAG processor would have stored them.
        DagBundlesManager().sync_bundles_to_db()
        bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
        assert bag.import_errors == {}
        sync_bag_to_db(bag, "dags-folder", None)
        _seed(staging)
        api_app.purge_cached_app()
        try:
            client = TestClient(api_app.create_app(apps="core"))
            yield Api(client, json.loads(passwords.read_text()), staging)
        finally:
            api_app.purge_cached_app()


# --- who may see what --------------------------------------------------------------------------------


@pytest.mark.airflow
@pytest.mark.parametrize("path", ["/", "/grants/alice"])
def test_a_page_without_a_login_redirects_to_the_login_page(api: Api, path: str) -> None:
    response = api.get(path)

    assert response.status_code == 303
    assert response.headers["location"].startswith("/auth/login?next=")
    assert "nylas-health" in response.headers["location"]
    assert "alice" not in response.text


@pytest.mark.airflow
@pytest.mark.parametrize(
    "path", ["/api/overview", "/api/grants/alice", "/api/inbox", "/grants/alice/unresolved.csv"]
)
def test_the_api_and_the_csv_without_a_login_answer_401(api: Api, path: str) -> None:
    response = api.get(path)

    assert response.status_code == 401
    assert "alice" not in response.text


@pytest.mark.airflow
def test_a_forged_or_foreign_token_is_refused(api: Api) -> None:
    forged = api.client.get(
        f"{PREFIX}/api/overview", headers={"Authorization": "Bearer not.a.jwt"}, follow_redirects=False
    )
    assert forged.status_code in (401, 403)
    page = api.client.get(f"{PREFIX}/", cookies={"_token": "not.a.jwt"}, follow_redirects=False)
    assert page.status_code in (303, 401, 403)
    assert "alice@contoso.example" not in page.text


@pytest.mark.airflow
@pytest.mark.parametrize("user", ["admin", "viewer"])
def test_admins_and_viewers_see_every_grant(api: Api, user: str) -> None:
    data = api.get("/api/overview", user).json()
    assert {row["key"] for row in data["grants"]} == {"alice", "bob", "carol"}


@pytest.mark.airflow
def test_a_user_who_may_read_one_dag_sees_only_that_grant(api: Api) -> None:
    data = api.get("/api/overview", "sales").json()
    assert [row["key"] for row in data["grants"]] == ["alice"]
    assert data["total"] == 1

    page = api.get("/", "sales")
    assert page.status_code == 200
    assert "bob@contoso.example" not in page.text
    for path in ("/grants/bob", "/api/grants/bob", "/grants/bob/unresolved.csv"):
        assert api.get(path, "sales").status_code == 404, path
    assert api.get("/grants/alice", "sales").status_code == 200


@pytest.mark.airflow
def test_the_ui_cookie_is_enough(api: Api) -> None:
    token = api.token("viewer")
    response = api.client.get(f"{PREFIX}/", cookies={"_token": token}, follow_redirects=False)
    assert response.status_code == 200
    assert "Signed in as viewer" in response.text


# --- what the overview shows ---------------------------------------------------------------------------


@pytest.mark.airflow
def test_the_overview_lists_status_strip_counts_and_throttling(api: Api) -> None:
    rows = {row["key"]: row for row in api.get("/api/overview", "admin").json()["grants"]}

    alice, bob, carol = rows["alice"], rows["bob"], rows["carol"]
    assert alice["status"] == "failing"  # its newest run gave up (too many failures)
    assert alice["last_synced_day"] == (YESTERDAY - dt.timedelta(days=1)).isoformat()
    assert alice["strip"][-1]["state"] == "run_failed"
    assert alice["strip"][-2]["state"] == "synced"
    assert alice["counts"] == {
        "extracted": 73,
        "created": 48,
        "already_present": 6,
        "skipped": 18,
        "failed": 1,
    }
    assert alice["unresolved"] == 2
    assert (alice["throttled"], alice["throttle_wait_s"]) == (3, 42.0)
    assert alice["provider"] == "google"
    assert bob["status"] == "expired"
    assert "re-authenticate" in bob["status_reason"]
    assert carol["status"] == "no_runs"
    assert carol["problem_days"] == 21  # every day from its start date to yesterday is missing


@pytest.mark.airflow
def test_the_overview_page_sorts_and_filters(api: Api) -> None:
    def keys(**params: str) -> list[str]:
        """The grants in the order the table lists them."""
        html = api.get("/", "admin", params=params).text
        return [part.split('"', 1)[0] for part in html.split('data-grant="')[1:]]

    assert keys() == ["bob", "alice", "carol"]  # expired first, then failing, then no runs
    assert keys(sort="created", order="desc") == ["alice", "bob", "carol"]
    assert keys(q="MICROSOFT") == ["bob"]
    assert keys(status="no_runs") == ["carol"]
    assert keys(sort="name", order="desc") == ["carol", "bob", "alice"]


@pytest.mark.airflow
def test_the_pages_never_show_bodies_and_escape_what_mail_contains(api: Api) -> None:
    overview = api.get("/", "admin")
    grant = api.get("/grants/alice", "admin")

    for response in (overview, grant):
        assert response.status_code == 200
        assert BODY not in response.text
        assert response.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in response.headers["content-security-policy"]
    assert HOSTILE_SUBJECT not in grant.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Quote for 200 seats" in grant.text


@pytest.mark.airflow
def test_a_grants_page_shows_failures_with_code_sender_subject_and_links(api: Api) -> None:
    page = api.get("/grants/alice", "admin").text
    data = api.get("/api/grants/alice", "admin").json()

    [failed] = data["failed_messages"]
    assert (failed["code"], failed["dataverse_code"]) == ("dataverse_400", "0x80040203")
    assert failed["sender"] == "maria.garcia@fabrikam.example"
    assert "0x80040203" in page
    assert "maria.garcia@fabrikam.example" in page
    # The run that recorded it, in Airflow's UI (outside the iframe).
    run_id = f"scheduled__{YESTERDAY}T00:00:00+00:00"
    assert (
        f'href="/dags/nylas_to_dataverse__alice/runs/{run_id.replace(":", "%3A").replace("+", "%2B")}"'
        in page
    )
    assert 'target="_top"' in page
    # The chart has a table with the same numbers.
    assert 'data-testid="outcome-chart"' in page
    assert 'data-testid="chart-table"' in page
    assert [day["created"] for day in data["chart"]][-2] == 8
    # The created row, by Message-ID (no Dataverse connection here, so no org URL).
    assert data["records"] == [
        {
            "day": YESTERDAY.isoformat(),
            "activity_id": "be52820f-b6c6-5987-a4d3-5aeb9219df2d",
            "internet_message_id": "<m-2@fabrikam.example>",
        }
    ]
    assert "&lt;m-2@fabrikam.example&gt;" in page


@pytest.mark.airflow
def test_the_unresolved_addresses_download_as_csv_that_no_spreadsheet_runs(api: Api) -> None:
    response = api.get("/grants/alice/unresolved.csv", "viewer")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["address", "messages", "days", "last_seen"]
    assert rows[1][:3] == ["'=cmd@evil.example", "6", "6"]
    assert rows[2][:3] == ["stranger@unknown-corp.example", "4", "1"]


@pytest.mark.airflow
def test_the_inbox_api_reports_an_empty_inbox(api: Api) -> None:
    inbox = api.get("/api/inbox", "admin").json()
    assert inbox["present"] is False
    assert inbox["depth"] == 0


def test_the_plugin_adds_the_page_to_the_ui_navigation() -> None:
    from airflow import plugins_manager

    plugins, errors = plugins_manager._get_plugins()
    assert not any("nylas_health_plugin" in path for path in errors)
    [plugin] = [p for p in plugins if p.name == "nylas_health"]
    [app] = plugin.fastapi_apps
    assert app["url_prefix"] == PREFIX
    [view] = plugin.external_views
    assert view["href"] == f"{PREFIX}/"
    assert view["destination"] == "nav"
    assert view["url_route"] == "nylas-health"


@pytest.mark.airflow
def test_the_unresolved_roll_up_downloads_for_readers_of_the_grant_only(api: Api) -> None:
    assert api.get("/grants/alice/unresolved-all-runs.csv", "viewer").status_code == 404  # none written yet
    rollup = api.staging / "_summary" / "alice" / "unresolved.csv"
    rollup.parent.mkdir(parents=True, exist_ok=True)
    rollup.write_text(
        "address,display_name,messages,first_seen,last_seen,direction\n"
        "dana@new.example,Dana New,3,2026-11-02T10:30:00Z,2026-11-03T09:00:00Z,both\n"
    )
    try:
        response = api.get("/grants/alice/unresolved-all-runs.csv", "viewer")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert response.text.splitlines()[1].startswith("dana@new.example,Dana New,3,")
        assert api.get("/grants/bob/unresolved-all-runs.csv", "sales").status_code == 404
        assert "unresolved-all-runs.csv" in api.get("/grants/alice", "viewer").text
    finally:
        rollup.unlink()
