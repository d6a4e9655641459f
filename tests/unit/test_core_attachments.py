"""The attachment rules: policy, deterministic ids, parsing, the grants-file keys and the batch planner."""

from __future__ import annotations

import uuid

import pytest

from nylas_dataverse.core.attachments import (
    BATCH_MAX_OPERATIONS,
    MAX_FILES_PER_EMAIL,
    MIB,
    AttachmentEntry,
    AttachmentOutcome,
    AttachmentPlan,
    AttachmentPolicy,
    attachment_row_id,
    base64_length,
    plan_attachments,
    plan_batches,
    summarize,
)
from nylas_dataverse.core.config import parse_config
from nylas_dataverse.core.messages import NylasAttachment, parse_message

EMAIL_ID = "0b6f3c1e-7f43-5c55-a1f8-2a4d7f2f9e10"
ORG_LIMIT = 5_242_880


def _file(name: str = "a.pdf", size: int = 1000, **fields: object) -> NylasAttachment:
    values: dict[str, object] = {
        "id": f"att-{name}",
        "filename": name,
        "content_type": "application/pdf",
        "size": size,
    }
    values.update(fields)
    return NylasAttachment(**values)  # type: ignore[arg-type]


def _skips(files: list[NylasAttachment], policy: AttachmentPolicy | None = None) -> list[str | None]:
    return [plan.skip for plan in plan_attachments(EMAIL_ID, files, policy or AttachmentPolicy(), ORG_LIMIT)]


def test_base64_length_is_four_characters_per_started_three_bytes() -> None:
    assert [base64_length(n) for n in (0, 1, 2, 3, 4, 3_932_160)] == [0, 4, 4, 4, 8, 5_242_880]


def test_row_ids_are_stable_per_email_position_and_name_and_differ_otherwise() -> None:
    first = attachment_row_id(EMAIL_ID, 0, "scan.pdf")
    assert first == attachment_row_id(EMAIL_ID.upper(), 0, "SCAN.pdf")
    assert uuid.UUID(first).version == 5
    others = {
        attachment_row_id(EMAIL_ID, 1, "scan.pdf"),
        attachment_row_id(EMAIL_ID, 0, "other.pdf"),
        attachment_row_id("1d6f3c1e-7f43-5c55-a1f8-2a4d7f2f9e10", 0, "scan.pdf"),
    }
    assert first not in others
    assert len(others) == 3


def test_two_files_with_one_name_get_two_rows() -> None:
    plans = plan_attachments(EMAIL_ID, [_file("scan.pdf"), _file("scan.pdf")], AttachmentPolicy(), ORG_LIMIT)
    assert plans[0].row_id != plans[1].row_id
    assert [plan.position for plan in plans] == [0, 1]


def test_default_policy_keeps_ordinary_files_and_skips_inline_parts_and_executables() -> None:
    files = [
        _file("a.pdf"),
        _file("logo.png", content_type="image/png", is_inline=True, content_id="<logo@x>"),
        _file("tool.EXE", content_type="application/octet-stream"),
    ]
    assert _skips(files) == [None, "inline", "blocked_type: .exe"]


def test_inline_parts_are_kept_when_asked_with_their_content_id_unbracketed() -> None:
    inline = _file("logo.png", is_inline=True, content_id=" <logo@x> ")
    (plan,) = plan_attachments(EMAIL_ID, [inline], AttachmentPolicy(keep_inline=True), ORG_LIMIT)
    assert plan.upload
    assert plan.content_id == "logo@x"


def test_blocked_types_match_extensions_and_content_types_without_parameters() -> None:
    policy = AttachmentPolicy(blocked_types=(".zip", "text/calendar"))
    files = [
        _file("a.ZIP"),
        _file("invite.ics", content_type='TEXT/Calendar; method="REQUEST"'),
        _file("zip.pdf"),
    ]
    assert _skips(files, policy) == ["blocked_type: .zip", "blocked_type: text/calendar", None]


def test_the_grant_limit_and_the_org_limit_on_base64_size_skip_with_the_numbers() -> None:
    files = [_file("big.mp4", 4 * MIB + 1), _file("fits.pdf", 3_932_160), _file("over.pdf", 3_932_161)]
    skips = _skips(files, AttachmentPolicy(max_attachment_mb=4))
    assert skips[0] == f"over_grant_limit: {4 * MIB + 1} bytes > 4 MiB"
    assert skips[1] is None
    assert skips[2] == "over_org_limit: 5242884 Base64 bytes > maxuploadfilesize 5242880"


def test_attachments_off_skips_every_file_and_invalid_entries_are_named() -> None:
    assert _skips([_file(), _file("b.pdf")], AttachmentPolicy(enabled=False)) == ["attachments_off"] * 2
    broken = NylasAttachment("", "x.pdf", "application/pdf", 10, problem="no id to download it by")
    assert _skips([broken]) == ["invalid_attachment: no id to download it by"]


def test_files_beyond_what_one_change_set_can_hold_are_skipped() -> None:
    files = [_file(f"f{n}.txt", 10) for n in range(MAX_FILES_PER_EMAIL + 2)]
    skips = _skips(files)
    assert skips.count(None) == MAX_FILES_PER_EMAIL
    assert skips[-1] == f"too_many_files: more than {MAX_FILES_PER_EMAIL} files on one email"


def test_a_plan_round_trips_through_json_and_defaults_fill_missing_names() -> None:
    (plan,) = plan_attachments(EMAIL_ID, [NylasAttachment("id1", "", "", 5)], AttachmentPolicy(), ORG_LIMIT)
    assert plan.filename == "attachment-1"
    assert plan.content_type == "application/octet-stream"
    assert AttachmentPlan.from_json(plan.to_json()) == plan


def test_parsing_keeps_every_attachment_in_order_and_names_what_is_wrong() -> None:
    message = parse_message(
        {
            "id": "m1",
            "date": 1_762_000_000,
            "attachments": [
                {
                    "id": "a1",
                    "filename": "x.pdf",
                    "content_type": "application/pdf",
                    "size": 12,
                    "is_inline": False,
                },
                {"filename": "no-id.pdf", "size": 3},
                {"id": "a3", "size": "big"},
                "not an object",
                {"id": "a5", "is_inline": True, "content_id": "<c@d>"},
            ],
        }
    )
    first, no_id, bad_size, not_object, inline = message.attachments
    assert first == NylasAttachment("a1", "x.pdf", "application/pdf", 12)
    assert no_id.problem == "no id to download it by"
    assert bad_size.problem == "size is not a byte count ('big')"
    assert not_object.problem == "not an object (str)"
    assert inline.is_inline
    assert inline.size == 0
    assert parse_message({"id": "m2", "date": 1}).attachments == ()


def test_the_grants_file_takes_the_attachment_keys_with_defaults_and_overrides() -> None:
    text = """
defaults:
  attachments: off
  inline_attachments: keep
grants:
  - {key: a, grant_id: g1, start_date: 2026-11-02}
  - key: b
    grant_id: g2
    start_date: 2026-11-02
    attachments: on
    max_attachment_mb: 10
    blocked_attachment_types: [.EXE, Application/Zip]
"""
    result = parse_config(text, "grants.yaml")
    assert not result.errors
    a, b = result.grants
    assert a.attachment_policy == AttachmentPolicy(enabled=False, keep_inline=True)
    assert b.attachment_policy == AttachmentPolicy(
        enabled=True, max_attachment_mb=10, keep_inline=True, blocked_types=(".exe", "application/zip")
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("attachments", "maybe", "must be on or off"),
        ("max_attachment_mb", 0, "must be a whole number from 1 to 128"),
        ("inline_attachments", "drop", "must be one of skip, keep"),
        ("blocked_attachment_types", ["exe"], "entry 1: must be a file extension like .exe"),
    ],
)
def test_a_bad_attachment_key_is_an_error_naming_the_grant_and_key(
    key: str, value: object, message: str
) -> None:
    grant = {"key": "a", "grant_id": "g", "start_date": "2026-11-02", key: value}
    import yaml

    result = parse_config(yaml.safe_dump({"grants": [grant]}), "grants.yaml")
    (error,) = result.errors
    assert f"grant 'a': key '{key}'" in str(error)
    assert message in str(error)


def test_the_planner_respects_the_email_count_the_operation_limit_and_the_byte_budget() -> None:
    assert plan_batches([(2, 10)] * 5, max_emails=2, byte_budget=1000) == [
        range(0, 2),
        range(2, 4),
        range(4, 5),
    ]
    assert plan_batches([(600, 1), (600, 1)], max_emails=50, byte_budget=1000) == [range(0, 1), range(1, 2)]
    assert plan_batches([(2, 400), (2, 400), (2, 400)], max_emails=50, byte_budget=1000) == [
        range(0, 2),
        range(2, 3),
    ]
    # An email heavier than the budget on its own goes alone; nothing is lost or repeated.
    groups = plan_batches([(2, 10), (3, 5000), (2, 10)], max_emails=50, byte_budget=1000)
    assert groups == [range(0, 1), range(1, 2), range(2, 3)]
    assert plan_batches([], max_emails=5, byte_budget=10) == []
    with pytest.raises(ValueError, match="cannot fit"):
        plan_batches([(BATCH_MAX_OPERATIONS + 1, 1)], max_emails=5, byte_budget=10)


def test_the_summary_counts_outcomes_reasons_and_bytes() -> None:
    plan = plan_attachments(EMAIL_ID, [_file()], AttachmentPolicy(), ORG_LIMIT)[0]
    entries = [
        AttachmentEntry.of(plan, "m1", EMAIL_ID, AttachmentOutcome.CREATED, bytes_moved=1000),
        AttachmentEntry.of(plan, "m2", EMAIL_ID, AttachmentOutcome.SKIPPED, "inline"),
        AttachmentEntry.of(
            plan, "m3", EMAIL_ID, AttachmentOutcome.FAILED, "dataverse_400: 0x80044a02 too big"
        ),
    ]
    assert summarize(entries) == {
        "counts": {"created": 1, "already_present": 0, "skipped": 1, "failed": 1},
        "skipped_by_reason": {"inline": 1},
        "failed_by_reason": {"dataverse_400": 1},
        "bytes_moved": 1000,
    }
    assert AttachmentEntry.from_json(entries[2].to_json()) == entries[2]
    with pytest.raises(ValueError, match="needs a reason"):
        AttachmentEntry.of(plan, "m4", EMAIL_ID, AttachmentOutcome.SKIPPED)
