"""The ``serve`` flags for every Dataverse switch, generated from the dataclasses so none is forgotten.

Each field of ``DataverseBehaviour`` is a flag named after it (``--messageid-duplicates``); booleans take
``--x`` / ``--no-x``; tuples repeat (``--missing-privileges prvReadLead --missing-privileges ...``). Fault
fields that existed before the per-change-set faults are prefixed ``--dataverse-`` (``--dataverse-seed``)
so they cannot be mistaken for Nylas knobs. A few service-protection settings complete the set.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from nylas_dataverse_sandbox.dataverse import behaviour as bh
from nylas_dataverse_sandbox.dataverse.throttle import COST_PROFILES, RATELIMIT_HEADER_FORMATS

_CHOICES: dict[str, tuple[Any, ...]] = {
    "content_id_scope": bh.CONTENT_ID_SCOPES,
    "messageid_duplicates": bh.MESSAGEID_DUPLICATES,
    "attachments_on_closed_email": bh.CLOSED_EMAIL_ATTACHMENTS,
    "description_filter": bh.DESCRIPTION_FILTERS,
    "length_unit": bh.LENGTH_UNITS,
    "duplicate_key_message": bh.DUPLICATE_KEY_MESSAGES,
    "duplicate_key_status": (400, 412, 500),
    "missing_privileges": bh.KNOWN_PRIVILEGES,
    "changeset_fault_status": bh.CHANGESET_FAULT_STATUSES,
    "changeset_throttle_code": bh.THROTTLE_CODES,
    "gateway_after_apply_status": bh.GATEWAY_STATUSES,
}
_HELP = {
    "batch_stop_on_failed_changeset": "a failed change set ends the $batch even with continue-on-error",
    "batch_require_crlf": "refuse $batch bodies with bare LF line endings",
    "content_id_scope": "where Content-IDs must be unique: per change set (OData 4.0) or per batch (4.01)",
    "max_batch_operations": "operations per $batch (1000 documented; 250 reported)",
    "sender_party_restricted": "a From party may only bind a systemuser or queue",
    "missing_privileges": "a privilege the application user lacks (repeat the flag)",
    "messageid_duplicates": "a second email with a known messageid: allowed, or 500 0x80040333",
    "messageid_indexed": "serve messageid lookups from an index (else they scan the table)",
    "max_upload_file_size": "organization.maxuploadfilesize in bytes of Base64 text",
    "attachments_on_closed_email": "attachments on a completed or canceled email",
    "seed_inactive_rows": "seed inactive contacts/accounts and disqualified leads",
    "max_url_length": "longest request URL (twice this inside $batch)",
    "description_filter": "$filter on email.description",
    "length_unit": "what string lengths count",
    "duplicate_key_status": "HTTP status of a create with an existing primary key",
    "duplicate_key_message": "wording of that answer",
    "changeset_throttle_fraction": "share of $batch change sets answered with a 429 part",
    "changeset_5xx_fraction": "share of $batch change sets answered with a 500/503 part",
    "changeset_fault_nth": "the Nth change set of every $batch fails (0: off)",
    "changeset_fault_match": "change sets mentioning this text fail (repeat the flag)",
    "changeset_fault_times": "... this many times each",
    "changeset_fault_status": "the status of those failures",
    "changeset_throttle_code": "the service-protection code of a 429 part",
    "gateway_after_apply_every": "every Nth write is applied, then answered by the gateway (0: off)",
    "gateway_after_apply_status": "the gateway's answer: 502, 504 or 0 (drop the connection)",
}
_PREFIXED_FAULTS = {"throttle_fraction", "error_5xx_fraction", "latency_s", "expire_tokens_every_s", "seed"}


def _flag(name: str, prefix: str = "") -> str:
    return "--" + prefix + name.replace("_", "-")


def _add_fields(group: argparse._ArgumentGroup, kind: type, dest_prefix: str) -> None:
    defaults = kind()
    for item in dataclasses.fields(kind):
        default = getattr(defaults, item.name)
        flag_prefix = "dataverse-" if kind is bh.DataverseFaults and item.name in _PREFIXED_FAULTS else ""
        options: dict[str, Any] = {"dest": dest_prefix + item.name, "default": None}
        help_text = _HELP.get(item.name, item.name.replace("_", " "))
        if isinstance(default, bool):
            options["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, tuple):
            options["action"] = "append"
            options["metavar"] = "VALUE"
        elif default is None or isinstance(default, float):
            options.update(type=float, metavar="X")
        else:
            options.update(type=type(default), metavar="N" if isinstance(default, int) else "VALUE")
        if item.name in _CHOICES:
            options["choices"] = _CHOICES[item.name]
            if item.name == "missing_privileges":
                options["metavar"] = "PRIVILEGE"
                help_text += " (prvCreateActivity, prvReadContact, prvAppendToAccount, ...)"
            else:
                options.pop("metavar", None)
        group.add_argument(
            _flag(item.name, flag_prefix), help=f"{help_text} (default: {default!r})", **options
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    limits = parser.add_argument_group("Dataverse service protection")
    limits.add_argument("--cost-profile", choices=sorted(COST_PROFILES), default=None, help="default: fast")
    limits.add_argument("--ratelimit-header-format", choices=RATELIMIT_HEADER_FORMATS, default=None)
    limits.add_argument("--dop-hint-header", action=argparse.BooleanOptionalAction, default=None)
    limits.add_argument("--dop-hint", type=int, default=None, help="x-ms-dop-hint value (default: derived)")
    limits.add_argument("--retry-after-growth", type=float, default=None, help="default: 0.1 per 429")
    _add_fields(parser.add_argument_group("Dataverse open behaviours"), bh.DataverseBehaviour, "dv_")
    _add_fields(parser.add_argument_group("Dataverse faults"), bh.DataverseFaults, "dvf_")
    entra = parser.add_argument_group("Entra ID")
    entra.add_argument(
        "--entra-validate-resource",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="issue tokens only for the sandbox's own Dataverse URL (AADSTS500011 otherwise)",
    )


def from_args(args: argparse.Namespace) -> tuple[bh.DataverseBehaviour, bh.DataverseFaults, dict[str, Any]]:
    """(behaviour, faults, ServiceProtectionLimits keyword arguments) from parsed ``serve`` flags."""

    def picked(prefix: str, kind: type) -> dict[str, Any]:
        values = {}
        for item in dataclasses.fields(kind):
            value = getattr(args, prefix + item.name, None)
            if value is not None:
                values[item.name] = value
        return values

    behaviour = bh.changed(bh.DataverseBehaviour(), picked("dv_", bh.DataverseBehaviour))
    faults = bh.changed(bh.DataverseFaults(), picked("dvf_", bh.DataverseFaults))
    limits = {
        name: getattr(args, name)
        for name in (
            "cost_profile",
            "ratelimit_header_format",
            "dop_hint_header",
            "dop_hint",
            "retry_after_growth",
        )
        if getattr(args, name, None) is not None
    }
    return behaviour, faults, limits
