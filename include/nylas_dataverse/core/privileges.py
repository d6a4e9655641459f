"""What the Dataverse application user must be allowed to do for a grant's runs, and what it lacks.

Dataverse checks privileges per table and operation; the names below are the real ones (activities share
the ``Activity`` privileges, system users are ``User``). A run of the pipeline:

- reads contacts, accounts, leads and system users (address resolution) and emails (the Message-ID lookup);
- creates emails and completes them (Create, Write on Activity);
- binds parties, the regarding record and the owner (Append on Activity; AppendTo on the tables bound);
- sets the owner to the mailbox owner, another user than itself (Assign on Activity);
- with ``attachments`` on, binds files to the emails it creates (AppendTo on Activity: an
  ``activitymimeattachment`` takes its privileges from its email);
- with ``remove_race_duplicates``, deletes the copy of an email it made (Delete on Activity).

A privilege held at a depth narrower than the organization (``Basic``: only records the user owns) lets the
calls succeed while showing only part of the org, so such depths are reported as warnings: resolution would
miss every contact the application user does not own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nylas_dataverse.core.config import GrantConfig

FULL_DEPTH = "Global"
ROLE_HINT = (
    "add them to a security role of the application user (Power Platform admin center > Environments >"
    " your environment > Settings > Users + permissions > Application users > the app > Edit security roles)"
)


@dataclass(frozen=True)
class Requirement:
    privilege: str
    why: str


_ALWAYS = (
    Requirement("prvCreateActivity", "create the email activities"),
    Requirement("prvWriteActivity", "complete each email (Completed, Sent or Received)"),
    Requirement("prvReadActivity", "find emails already in Dataverse by Message-ID"),
    Requirement("prvAppendActivity", "bind an email's parties, regarding record and owner"),
    Requirement("prvAssignActivity", "make the mailbox owner the owner of each email"),
    Requirement("prvReadUser", "resolve addresses of system users"),
    Requirement("prvReadContact", "resolve addresses of contacts"),
    Requirement("prvReadAccount", "resolve addresses of accounts"),
    Requirement("prvReadLead", "resolve addresses of leads"),
    Requirement("prvAppendToUser", "bind system users as parties and as owner"),
    Requirement("prvAppendToContact", "bind contacts as parties and as regarding"),
    Requirement("prvAppendToAccount", "bind accounts as parties and as regarding"),
    Requirement("prvAppendToLead", "bind leads as parties and as regarding"),
)


def required_privileges(grant: GrantConfig) -> tuple[Requirement, ...]:
    extra: list[Requirement] = []
    if grant.attachments:
        extra.append(Requirement("prvAppendToActivity", "attach files to the emails it creates"))
    if grant.remove_race_duplicates:
        extra.append(Requirement("prvDeleteActivity", "remove the copy it made of a message tracked twice"))
    return (*_ALWAYS, *extra)


@dataclass(frozen=True)
class PrivilegeCheck:
    missing: tuple[Requirement, ...]
    narrow: tuple[tuple[Requirement, str], ...]  # (requirement, depth held)

    @property
    def ok(self) -> bool:
        return not self.missing

    def explain(self, who: str) -> str:
        lines: list[str] = []
        if self.missing:
            lines.append(
                f"The Dataverse application user {who} lacks {len(self.missing)} privilege(s) the runs need; "
                f"{ROLE_HINT}:"
            )
            lines.extend(f"  - {r.privilege}: to {r.why}" for r in self.missing)
        for requirement, depth in self.narrow:
            lines.append(
                f"  ! {requirement.privilege} is held at depth {depth}, not {FULL_DEPTH}: {requirement.why}"
                " will see only the records that depth allows"
            )
        return (
            "\n".join(lines)
            if lines
            else f"The Dataverse application user {who} holds every privilege needed."
        )


def check_privileges(required: Iterable[Requirement], held: Mapping[str, str]) -> PrivilegeCheck:
    """``held`` maps privilege names to the widest depth held (``RetrieveUserPrivileges``' RolePrivileges)."""
    needed = tuple(required)
    missing = tuple(r for r in needed if r.privilege not in held)
    narrow = tuple(
        (r, held[r.privilege]) for r in needed if r.privilege in held and held[r.privilege] != FULL_DEPTH
    )
    return PrivilegeCheck(missing, narrow)


_DEPTH_ORDER = ("None", "Basic", "Local", "Deep", "Global")
# The PrivilegeDepth enum when serialized by value instead of by name.
_DEPTH_VALUES = {"0": "Basic", "1": "Local", "2": "Deep", "3": "Global"}


def widest_depths(role_privileges: Iterable[Mapping[str, object]]) -> dict[str, str]:
    """Privilege name -> the widest depth among the roles (a user with two roles gets the wider)."""
    widest: dict[str, str] = {}
    for entry in role_privileges:
        name, raw = entry.get("PrivilegeName"), str(entry.get("Depth", "Global"))
        depth = _DEPTH_VALUES.get(raw, raw)
        if not isinstance(name, str):
            continue
        current = widest.get(name)
        rank = _DEPTH_ORDER.index(depth) if depth in _DEPTH_ORDER else len(_DEPTH_ORDER)
        if current is None or rank > (_DEPTH_ORDER.index(current) if current in _DEPTH_ORDER else -1):
            widest[name] = depth
    return widest
