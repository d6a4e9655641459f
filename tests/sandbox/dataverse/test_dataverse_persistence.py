"""State survives a restart; the committed schema is what the build script derives from real metadata."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.dataverse import errors
from nylas_dataverse_sandbox.dataverse.backend import Caller, DataverseBackend, application_user_id
from nylas_dataverse_sandbox.entra.backend import EntraBackend

REPO = Path(__file__).resolve().parents[3]
REFERENCE = REPO.parent / "shared/reference/data/dataverse-metadata"
MARIA = personas.stable_id("contact", "maria")
CALLER = Caller(personas.CLIENT_ID, application_user_id(personas.CLIENT_ID))


def _email(subject: str) -> dict[str, object]:
    return {
        "activityid": str(uuid.uuid4()),
        "subject": subject,
        "messageid": f"<{uuid.uuid4().hex}@example.org>",
        "email_activity_parties": [
            {"partyid_contact@odata.bind": f"/contacts({MARIA})", "participationtypemask": 1}
        ],
    }


def test_rows_and_counters_survive_a_restart_and_seeding_happens_once(tmp_path: Path) -> None:
    db = tmp_path / "dataverse.sqlite3"
    first = DataverseBackend(db_path=db, entra=EntraBackend())
    contacts = first.entity_for_set("contacts")
    emails = first.entity_for_set("emails")
    first.update(contacts, MARIA, {"jobtitle": "Buyer"}, CALLER)
    created = first.create(emails, _email("kept"), CALLER)
    first.count("requests", 5)
    first.close()

    second = DataverseBackend(db_path=db, entra=EntraBackend())

    [email] = second.emails_with_parties()
    assert email["activityid"] == created["activityid"]
    assert email["email_activity_parties"][0]["_partyid_value"] == MARIA
    assert second.retrieve(contacts, MARIA)["jobtitle"] == "Buyer"  # not overwritten by a second seeding
    assert second.counters()["requests"] == 5
    assert second.counters()["rows.contacts"] == len(personas.CONTACTS) + len(personas.INACTIVE_CONTACTS)
    second.close()


def test_reset_wipes_and_reseeds(tmp_path: Path) -> None:
    backend = DataverseBackend(db_path=tmp_path / "dv.sqlite3", entra=EntraBackend())
    backend.create(backend.entity_for_set("emails"), _email("gone"), CALLER)

    backend.reset()

    assert backend.emails_with_parties() == []
    assert backend.counters()["rows.systemusers"] == len(personas.SYSTEM_USERS) + 1
    backend.close()


def test_a_failed_change_set_rolls_back_memory_and_disk(tmp_path: Path) -> None:
    db = tmp_path / "dv.sqlite3"
    backend = DataverseBackend(db_path=db, entra=EntraBackend())
    emails = backend.entity_for_set("emails")

    def change_set() -> None:
        with backend.atomic():
            backend.create(emails, _email("first of the set"), CALLER)
            backend.create(emails, _email("x" * 801), CALLER)

    with pytest.raises(errors.LengthExceededError):
        change_set()

    assert backend.emails_with_parties() == []
    backend.close()
    reopened = DataverseBackend(db_path=db, entra=EntraBackend())
    assert reopened.emails_with_parties() == []
    assert reopened.counters()["rows.activityparties"] == 0
    reopened.close()


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="shared reference metadata not available")
def test_committed_schema_is_the_build_scripts_output(tmp_path: Path) -> None:
    output = tmp_path / "schema.json"
    script = REPO / "sandbox/scripts/build_dataverse_schema.py"

    subprocess.run(
        [sys.executable, str(script), str(REFERENCE), str(output)], check=True, capture_output=True
    )

    committed = REPO / "sandbox/nylas_dataverse_sandbox/data/dataverse_schema.json"
    assert json.loads(output.read_text()) == json.loads(committed.read_text())
    email = json.loads(committed.read_text())["entities"]["email"]
    assert email["attributes"]["subject"]["max_length"] == 800
    assert email["attributes"]["inreplyto"]["create"] is False
    assert "regardingobjectid_contact_email" in email["single_navs"]
