"""Role-based security for the sandbox's application user: which privilege an operation needs, the 403 when
it is missing, and ``RetrieveUserPrivileges``. Pure: the backend passes in who asks and what they hold.

Privilege names are the real ones. Activities (email, its activity parties, its attachments) share the
``Activity`` privileges (prvCreateActivity, prvReadActivity, ...): Dataverse has no prvCreateEmail.
``systemuser`` privileges are named ``User`` (prvReadUser, prvAppendToUser). Which privileges an operation
needs follows the documented model (create/read/write/delete on the table; binding a lookup needs Append on
the row that points and AppendTo on the row pointed at; setting another owner needs Assign), plus:

- SANDBOX CHOICE: attachments (``activitymimeattachment``, OwnershipType None) use the Activity
  privileges, their access coming from the parent activity: prvCreateActivity, and for the bind to the
  email prvAppendActivity and prvAppendToActivity;
- ``overriddencreatedon`` needs prvOverrideCreatedOnCreatedBy (Learn lists the privilege for it);
- PrivilegeId values are sandbox GUIDs (stable per name); real orgs have their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nylas_dataverse_sandbox import personas
from nylas_dataverse_sandbox.dataverse import errors
from nylas_dataverse_sandbox.dataverse.behaviour import KNOWN_PRIVILEGES

# The privilege-name stem and the localized display name per table.
_STEMS = {
    "email": "Activity",
    "activitypointer": "Activity",
    "activityparty": "Activity",
    "activitymimeattachment": "Activity",
    "contact": "Contact",
    "account": "Account",
    "lead": "Lead",
    "systemuser": "User",
    "organization": "Organization",
}
_DISPLAY = {
    "email": "Email",
    "activitypointer": "Activity",
    "activityparty": "Activity Party",
    "activitymimeattachment": "Attachment",
    "contact": "Contact",
    "account": "Account",
    "lead": "Lead",
    "systemuser": "User",
    "organization": "Organization",
}
# Real object type codes of these tables.
OBJECT_TYPE_CODES = {
    "account": 1,
    "contact": 2,
    "lead": 4,
    "systemuser": 8,
    "activityparty": 135,
    "activitymimeattachment": 1001,
    "organization": 1019,
    "activitypointer": 4200,
    "email": 4202,
}


def privilege_id(name: str) -> str:
    return personas.stable_id("privilege", name)


def privilege(access: str, table: str) -> str | None:
    """``privilege("AppendTo", "contact")`` -> ``prvAppendToContact``; None where the sandbox has none."""
    stem = _STEMS.get(table)
    if stem is None:
        return None
    name = f"prv{access}{stem}"
    return name if name in KNOWN_PRIVILEGES else None


@dataclass(frozen=True)
class Principal:
    user_id: str
    business_unit_id: str
    azure_object_id: str
    held: frozenset[str]

    def require(self, access: str, table: str) -> None:
        name = privilege(access, table)
        if name is not None and name not in self.held:
            raise errors.PrivilegeDeniedError(self._missing_message(name, table))

    def require_named(self, name: str, table: str) -> None:
        if name not in self.held:
            raise errors.PrivilegeDeniedError(self._missing_message(name, table))

    def _missing_message(self, name: str, table: str) -> str:
        return (
            f"Principal user (Id={self.user_id}, type=8, roleCount=1, privilegeCount={len(self.held)}, "
            f"accessMode='4 Non-interactive', AADObjectId='{self.azure_object_id}', "
            f"businessUnitId={self.business_unit_id}), is missing {name} privilege (Id={privilege_id(name)}) "
            f"on OTC={OBJECT_TYPE_CODES.get(table, 0)} for entity '{table}' "
            f"(LocalizedName='{_DISPLAY.get(table, table)}'). context.Caller={self.user_id}. "
            "Consider adding missed privilege to one of the principal (user/team) roles."
        )


def granted(missing: Iterable[str]) -> frozenset[str]:
    """What the application user's role holds: every known privilege but the ``missing`` ones."""
    return frozenset(KNOWN_PRIVILEGES) - frozenset(missing)


def role_privileges(held: Iterable[str], business_unit_id: str) -> list[dict[str, object]]:
    """``RolePrivileges`` of ``RetrieveUserPrivilegesResponse``: one RolePrivilege per held privilege, at
    Global depth (the PrivilegeDepth enum serialized by name, as OData does)."""
    return [
        {
            "Depth": "Global",
            "PrivilegeId": privilege_id(name),
            "BusinessUnitId": business_unit_id,
            "PrivilegeName": name,
            "RecordFilterId": "00000000-0000-0000-0000-000000000000",
            "RecordFilterUniqueName": None,
        }
        for name in sorted(held)
    ]
