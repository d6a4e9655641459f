"""Every error the Dataverse stand-in answers, one class per documented situation.

The body is always Dataverse's ``{"error": {"code": "0x...", "message": "..."}}``; ``serialize`` is the one
place that turns an error into status, headers and body. Where the real status, code or wording is not
documented, the class docstring says SANDBOX CHOICE or UNCERTAIN, so readers know what is certain.
"""

from __future__ import annotations

import json
import uuid


class DataverseError(Exception):
    status = 400
    code = "0x80040203"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message}}


def serialize(error: DataverseError) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [
        ("Content-Type", "application/json; odata.metadata=minimal"),
        ("OData-Version", "4.0"),
        ("REQ_ID", str(uuid.uuid4())),
        *error.headers.items(),
    ]
    return error.status, headers, json.dumps(error.body(), ensure_ascii=False).encode("utf-8")


# --- 400: the request itself ----------------------------------------------------------------------------
class BadRequestError(DataverseError):
    """Malformed JSON, keys or query options (OData layer; Dataverse reports code 0x0 for these)."""

    code = "0x0"


class PropertyNotFoundError(DataverseError):
    """Unknown column in ``$select``/``$filter``/``$orderby``."""

    code = "0x80060888"

    def __init__(self, name: str, logical_name: str) -> None:
        super().__init__(
            f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{logical_name}'."
        )


class UnknownPayloadPropertyError(DataverseError):
    """Unknown property in a POST/PATCH body. SANDBOX CHOICE: code 0x80048d19 (payload error)."""

    code = "0x80048d19"

    def __init__(self, name: str, logical_name: str) -> None:
        super().__init__(
            f"The property '{name}' does not exist on type 'Microsoft.Dynamics.CRM.{logical_name}'. "
            "Make sure to only use property names that are defined by the type."
        )


class UndeclaredNavigationPropertyError(DataverseError):
    """``x@odata.bind`` where ``x`` is not a navigation property of the entity."""

    code = "0x80048d19"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"An undeclared property '{name}' which only has property annotations in the payload but no "
            "property value was found in the payload. In OData, only declared navigation properties and "
            "declared named streams can be represented as properties without values."
        )


class BindTargetMismatchError(DataverseError):
    """A bind whose row is of another table than the navigation property allows. SANDBOX CHOICE wording."""

    code = "0x80048d19"

    def __init__(self, nav: str, found: str, expected: list[str]) -> None:
        wanted = " or ".join(f"'Microsoft.Dynamics.CRM.{e}'" for e in expected)
        super().__init__(
            f"The navigation property '{nav}' expects an entity of type {wanted}, but the reference is of "
            f"type 'Microsoft.Dynamics.CRM.{found}'."
        )


class InvalidValueError(DataverseError):
    """A JSON value of the wrong type for its column."""

    code = "0x0"


class LengthExceededError(DataverseError):
    code = "0x80044331"

    def __init__(self, attribute: str, logical_name: str, max_length: int) -> None:
        super().__init__(
            f"A validation error occurred.  The length of the '{attribute}' attribute of the "
            f"'{logical_name}' entity exceeded the maximum allowed length of '{max_length}'."
        )


class OptionOutOfRangeError(DataverseError):
    """SANDBOX CHOICE: picklist value outside its option set (code of the validation family)."""

    code = "0x80044331"

    def __init__(self, attribute: str, logical_name: str, value: object, allowed: list[int]) -> None:
        super().__init__(
            f"A validation error occurred.  The value {value} of '{attribute}' on record of type "
            f"'{logical_name}' is outside the valid range. Accepted Values: {','.join(map(str, allowed))}"
        )


class InvalidStateTransitionError(DataverseError):
    """statuscode not valid for the (resulting) statecode. Code 0x80048408 as reported; UNCERTAIN."""

    code = "0x80048408"

    def __init__(
        self, status: object, state_type: str, state_label: str, logical_name: str, row_id: str
    ) -> None:
        super().__init__(
            f"{status} is not a valid status code for state code {state_type}.{state_label} on "
            f"{logical_name} with Id {row_id}."
        )


class RecordReadOnlyError(DataverseError):
    """Any change to a completed or canceled activity. SANDBOX CHOICE: 400, code 0x80040203, wording."""

    code = "0x80040203"

    def __init__(self, logical_name: str, row_id: str, state_label: str) -> None:
        super().__init__(
            f"The {logical_name} with Id = {row_id} is read-only because its state is {state_label}. "
            "Completed and canceled activities can't be edited; set every column before closing them."
        )


class InvalidPartyError(DataverseError):
    """An activity party the sandbox cannot accept (mask outside Sender/To/Cc/Bcc, no party, ...)."""

    code = "0x80040203"


class ActivityPartyObjectTypeNotAllowedError(DataverseError):
    """A party bound to a table its PartyList does not allow (the sender restriction). Code and message are
    the documented ActivityPartyObjectTypeNotAllowed (0x80043506); the HTTP status (400) is a SANDBOX
    CHOICE, as Web API validation errors are 400."""

    code = "0x80043506"

    def __init__(self) -> None:
        super().__init__("Cannot create activity party of specified object type.")


class AttachmentTooLargeError(DataverseError):
    """Base64 body over ``organization.maxuploadfilesize``: ``0x80044a02`` with the documented message; the
    status (400) is UNCERTAIN."""

    code = "0x80044a02"

    def __init__(self) -> None:
        super().__init__("Attachment file size is too big.")


class InvalidArgumentError(DataverseError):
    """A request the real service refuses as an invalid argument (0x80040203); wording is a SANDBOX CHOICE."""

    code = "0x80040203"


class UnsupportedBySandboxError(DataverseError):
    """A real feature this stand-in does not implement; the message says so plainly."""

    code = "0x80040203"


class InvalidBatchError(DataverseError):
    code = "0x0"


# --- 401/403/404/405/412 --------------------------------------------------------------------------------
class NotAuthenticatedError(DataverseError):
    status = 401
    code = ""


class PrivilegeDeniedError(DataverseError):
    """The caller lacks a privilege: 403 ``0x80040220`` (PrivilegeDenied, -2147220960). The message follows
    the shape real orgs answer ("Principal user (Id=..., type=8, ...), is missing prvX privilege (Id=...) on
    OTC=n for entity 'x' ..."), as quoted in public threads; the counts in it are the sandbox's."""

    status = 403
    code = "0x80040220"


class NotAMemberError(DataverseError):
    status = 403
    code = "0x80072560"

    def __init__(self) -> None:
        super().__init__("The user is not a member of the organization.")


class ResourceNotFoundError(DataverseError):
    status = 404
    code = "0x8006088a"

    def __init__(self, segment: str) -> None:
        super().__init__(f"Resource not found for the segment '{segment}'.")


class RecordNotFoundError(DataverseError):
    status = 404
    code = "0x80040217"

    def __init__(self, logical_name: str, row_id: str) -> None:
        super().__init__(f"{logical_name} With Id = {row_id} Does Not Exist")


class MethodNotAllowedError(DataverseError):
    status = 405
    code = "0x80040800"

    def __init__(self, operation: str, logical_name: str) -> None:
        super().__init__(f"The '{operation}' method does not support entities of type '{logical_name}'.")


class DuplicateRecordError(DataverseError):
    """Create with an existing primary key. SANDBOX CHOICE: 412 + 0x80040237 (real status UNCERTAIN)."""

    status = 412
    code = "0x80040237"

    def __init__(self, message: str = "A record with matching key values already exists.") -> None:
        super().__init__(message)


class DuplicateRecordsFoundError(DataverseError):
    """A duplicate-detection rule matched: DuplicateRecordsFound ``0x80040333`` with the documented message;
    500 as in the Learn example (the status table says 412 DuplicateRecord; UNCERTAIN)."""

    status = 500
    code = "0x80040333"

    def __init__(self) -> None:
        super().__init__(
            "A record was not created or updated because a duplicate of the current record already exists."
        )


class VersionMismatchError(DataverseError):
    status = 412
    code = "0x80060882"

    def __init__(self) -> None:
        super().__init__("The version of the existing record doesn't match the RowVersion property provided.")


# --- 429 and 5xx -----------------------------------------------------------------------------------------
class ThrottledError(DataverseError):
    status = 429

    def __init__(self, code: str, message: str, retry_after_s: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})
        self.code = code
        self.retry_after_s = retry_after_s


class UrlTooLongError(DataverseError):
    """A URL over the documented limit (32 KB, 64 KB inside ``$batch``). SANDBOX CHOICE: 414 with a JSON
    body; the real status and body are undocumented (HTTP.sys answers such requests itself)."""

    status = 414
    code = "0x0"

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"The request URL is {length} characters long; the limit is {limit}.")


class ServerError(DataverseError):
    status = 500
    code = "0x80040216"

    def __init__(self, status: int = 500, message: str = "An unexpected error occurred.") -> None:
        super().__init__(message)
        self.status = status
