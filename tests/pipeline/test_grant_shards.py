"""Thousands of grants: the daily DAGs are spread over the shard files of dags/, each grant's DAG in exactly
one of them, and a task reads its own grant's entry only (not the whole grants file)."""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
import time
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from nylas_dataverse.core.config import ConfigResult, parse_config
from nylas_dataverse.core.sharding import SHARDS, shard_of
from nylas_dataverse.pipeline import grants_index
from nylas_dataverse.pipeline.grants_index import CACHE_ENV, RACY_SECONDS

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAGS = PROJECT_ROOT / "dags"
SHARD_FILES = sorted(DAGS.glob("nylas_to_dataverse_shard_*.py"))
PARSING_CONTEXT = "_AIRFLOW_PARSING_CONTEXT_DAG_ID"  # what Airflow's task runner sets before it parses

_opened: list[str] = []  # every file opened while a test listens, from Python's "open" audit event


def _listen(event: str, args: tuple[object, ...]) -> None:
    if event == "open" and _opened and isinstance(args[0], str | bytes | os.PathLike):
        _opened.append(os.fsdecode(args[0]))


sys.addaudithook(_listen)


def _grants_text(count: int, broken: int | None = None) -> str:
    lines = ["defaults:", "  org_domains: [contoso.example]", "grants:"]
    for index in range(count):
        lines += [
            f"  - key: mailbox-{index:05d}",
            f"    grant_id: {index:08d}-0000-4000-8000-000000000000",
            f"    start_date: 2026-11-{1 + index % 28:02d}",
        ]
        if index == broken:
            lines.append("    page_size: lots")
    return "\n".join(lines) + "\n"


@pytest.fixture
def grants_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "grants.yaml"
    monkeypatch.setenv("NYLAS_DATAVERSE_CONFIG", str(path))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(PARSING_CONTEXT, raising=False)
    return path


def _files_of(bag: DagBag) -> dict[str, str]:
    return {dag_id: Path(dag.fileloc).name for dag_id, dag in bag.dags.items()}


def test_there_is_one_file_per_shard_and_each_builds_its_own_shard() -> None:
    assert [path.name for path in SHARD_FILES] == [
        f"nylas_to_dataverse_shard_{n:02d}.py" for n in range(SHARDS)
    ]
    for path in SHARD_FILES:
        assert f"build_shard({int(path.stem[-2:])}, " in path.read_text()


def _is_daily(dag_id: str) -> bool:
    """A grant's DAG, not the real-time or staging-retention DAG that every deployment also has."""
    return dag_id.startswith("nylas_to_dataverse__") and dag_id != "nylas_to_dataverse__realtime"


def test_each_grant_lands_in_exactly_one_shard_file_and_adding_one_moves_no_other(grants_file: Path) -> None:
    grants_file.write_text(_grants_text(60))
    before = _files_of(DagBag(dag_folder=str(DAGS)))
    daily = {dag_id: name for dag_id, name in before.items() if _is_daily(dag_id)}

    assert sorted(daily) == [f"nylas_to_dataverse__mailbox-{index:05d}" for index in range(60)]
    for dag_id, name in daily.items():
        key = dag_id.removeprefix("nylas_to_dataverse__")
        assert name == f"nylas_to_dataverse_shard_{shard_of(key):02d}.py"

    grants_file.write_text(_grants_text(61))
    after = _files_of(DagBag(dag_folder=str(DAGS)))
    assert {dag_id: after[dag_id] for dag_id in before} == before
    assert len(after) == len(before) + 1


def test_a_task_parses_its_dag_from_its_own_grant_without_opening_the_grants_file(
    grants_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 5,000 grants, one broken; the task's grant shares its shard (its DAG file) with the broken one.
    grants_file.write_text(_grants_text(5000, broken=17))
    key = next(
        f"mailbox-{i:05d}"
        for i in range(4000, 5000)
        if shard_of(f"mailbox-{i:05d}") == shard_of("mailbox-00017")
    )
    # What the DAG processor does first: the config-check DAG names the broken grant ...
    check = DAGS / "nylas_to_dataverse_config_check.py"
    [error] = DagBag(dag_folder=str(check)).import_errors.values()
    assert "grant 'mailbox-00017': key 'page_size'" in error
    # ... and parses the file again later, once it is older than any timestamp granularity (a deployed
    # file is; there is no quicker way to age a file's ctime than to wait).
    while time.time() < os.stat(grants_file).st_ctime + RACY_SECONDS + 0.05:
        time.sleep(0.1)
    DagBag(dag_folder=str(check))

    monkeypatch.setenv(PARSING_CONTEXT, f"nylas_to_dataverse__{key}")
    shard_file = DAGS / f"nylas_to_dataverse_shard_{shard_of(key):02d}.py"
    _opened[:] = ["(listening)"]
    try:
        bag = DagBag(dag_folder=str(shard_file))
    finally:
        opened, _opened[:] = _opened[1:], []

    assert bag.import_errors == {}
    assert list(bag.dags) == [f"nylas_to_dataverse__{key}"]
    index = int(key[-5:])
    assert bag.dags[f"nylas_to_dataverse__{key}"].start_date == dt.datetime(
        2026, 11, 1 + index % 28, tzinfo=dt.UTC
    )
    assert str(grants_file) not in opened, "the task read the whole grants file"
    assert any(name.endswith(".stat") for name in opened)  # it found its version's index instead


def test_a_task_sees_an_edit_of_its_grant_at_once_even_when_the_size_stays_the_same(
    grants_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grants_file.write_text(_grants_text(30))
    key = "mailbox-00003"
    shard_file = DAGS / f"nylas_to_dataverse_shard_{shard_of(key):02d}.py"
    monkeypatch.setenv(PARSING_CONTEXT, f"nylas_to_dataverse__{key}")
    assert DagBag(dag_folder=str(shard_file)).dags[f"nylas_to_dataverse__{key}"].start_date.day == 4

    text = grants_file.read_text()
    edited = re.sub(r"(key: mailbox-00003\n.*\n    start_date: 2026-11-)04", r"\g<1>09", text)
    assert len(edited) == len(text)
    assert edited != text
    grants_file.write_text(edited)

    assert DagBag(dag_folder=str(shard_file)).dags[f"nylas_to_dataverse__{key}"].start_date.day == 9


@pytest.mark.parametrize("cache", ["shared", "not a folder"])
def test_without_a_private_cache_folder_the_dags_still_load_from_the_file(
    grants_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: str
) -> None:
    grants_file.write_text(_grants_text(5))
    folder = tmp_path / "elsewhere"
    if cache == "shared":
        folder.mkdir(mode=0o777)
        folder.chmod(0o777)  # others could plant an index here
    else:
        folder.write_text("a file where the folder should be")
    monkeypatch.setenv(CACHE_ENV, str(folder))

    bag = DagBag(dag_folder=str(DAGS))

    assert len([d for d in bag.dags if _is_daily(d)]) == 5
    assert not (folder / "grants-index").exists()


RICH = """\
defaults:
  org_domains: [contoso.example, Fabrikam.example]
  page_size: 150
  max_concurrency: 3
  policy: {internal_only: track, excluded_domains: [spam.example]}
grants:
  - key: alice
    grant_id: g-alice
    start_date: 2026-11-02
    email: alice@contoso.example
    display_name: Alice
    policy: {regarding_preference: [lead], first_message_of_thread_only: true}
  - {key: bob, grant_id: g-bob, start_date: "2026-11-03", enabled: false, headers_field: include_headers}
  - {key: carol, grant_id: g-carol, start_date: 2026-11-04, page_size: 0}
alerts:
  on_failure:
    - notifier: airflow.providers.smtp.notifications.smtp.SmtpNotifier
      kwargs: {to: [ops@contoso.example], since: 2026-11-01, retries: 2}
"""


def test_what_the_dags_and_tasks_read_is_exactly_what_validating_the_file_gives(grants_file: Path) -> None:
    grants_file.write_text(RICH)
    validated = parse_config(RICH, str(grants_file))
    assert [g.key for g in validated.grants] == ["alice", "bob"]

    def same(result: ConfigResult) -> bool:
        return (result.grants, result.alerts, [str(e) for e in result.errors]) == (
            validated.grants,
            validated.alerts,
            [str(e) for e in validated.errors],
        )

    assert same(grants_index.load_all(PROJECT_ROOT))  # builds the index
    assert same(grants_index.load_all(PROJECT_ROOT))  # reads it
    for grant in validated.grants:
        assert grants_index.load_one(PROJECT_ROOT, grant.key) == (grant, validated.alerts)
        shard = grants_index.load_shard(PROJECT_ROOT, shard_of(grant.key))
        assert grant in shard.grants
        assert [str(e) for e in shard.errors] == [str(e) for e in validated.errors]
    assert grants_index.load_one(PROJECT_ROOT, "carol") == (None, validated.alerts)


def test_a_damaged_index_is_ignored_and_rebuilt(grants_file: Path, tmp_path: Path) -> None:
    grants_file.write_text(_grants_text(5))
    assert len(grants_index.load_all(PROJECT_ROOT).grants) == 5
    [index] = (tmp_path / "cache" / "grants-index").glob("*.sqlite")
    index.write_bytes(b"not a database")

    assert grants_index.load_one(PROJECT_ROOT, "mailbox-00002")[0] is not None
    assert len(grants_index.load_all(PROJECT_ROOT).grants) == 5
    assert index.read_bytes().startswith(b"SQLite format 3")
