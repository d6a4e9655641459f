"""What the application user must hold, and how RetrieveUserPrivileges' answer is read."""

from __future__ import annotations

import dataclasses
import datetime as dt

from nylas_dataverse.core.config import GrantConfig
from nylas_dataverse.core.privileges import (
    FULL_DEPTH,
    check_privileges,
    required_privileges,
    widest_depths,
)

GRANT = GrantConfig(key="alice", grant_id="g", start_date=dt.date(2026, 11, 2))


def _names(grant: GrantConfig) -> set[str]:
    return {r.privilege for r in required_privileges(grant)}


def test_a_run_needs_to_create_complete_read_bind_and_assign() -> None:
    assert {
        "prvCreateActivity",
        "prvWriteActivity",
        "prvReadActivity",
        "prvAppendActivity",
        "prvAssignActivity",
        "prvReadContact",
        "prvAppendToContact",
        "prvAppendToUser",
    } <= _names(GRANT)
    assert "prvDeleteActivity" not in _names(GRANT)


def test_removing_race_duplicates_needs_delete() -> None:
    assert "prvDeleteActivity" in _names(dataclasses.replace(GRANT, remove_race_duplicates=True))


def test_missing_privileges_are_named_with_what_they_are_for() -> None:
    held = {name: FULL_DEPTH for name in _names(GRANT) - {"prvAppendToLead"}}
    verdict = check_privileges(required_privileges(GRANT), held)
    assert not verdict.ok
    assert [r.privilege for r in verdict.missing] == ["prvAppendToLead"]
    assert "prvAppendToLead: to bind leads as parties and as regarding" in verdict.explain("app-user")


def test_a_narrow_depth_passes_with_a_warning() -> None:
    held = {name: FULL_DEPTH for name in _names(GRANT)} | {"prvReadContact": "Basic"}
    verdict = check_privileges(required_privileges(GRANT), held)
    assert verdict.ok
    assert verdict.narrow[0][0].privilege == "prvReadContact"
    assert "depth Basic" in verdict.explain("app-user")


def test_the_widest_depth_of_several_roles_counts_whatever_its_serialization() -> None:
    answer = [
        {"PrivilegeName": "prvReadContact", "Depth": "Basic"},
        {"PrivilegeName": "prvReadContact", "Depth": "Global"},
        {"PrivilegeName": "prvReadLead", "Depth": 1},
        {"PrivilegeName": "prvReadUser", "Depth": "Deep"},
        {"Depth": "Global"},
    ]
    widest = widest_depths(answer)
    assert widest == {"prvReadContact": "Global", "prvReadLead": "Local", "prvReadUser": "Deep"}


def test_attaching_files_needs_append_to_on_activities_unless_attachments_are_off() -> None:
    assert "prvAppendToActivity" in _names(GRANT)
    assert "prvAppendToActivity" not in _names(dataclasses.replace(GRANT, attachments=False))
