"""X-Nylas-Signature: hex HMAC-SHA256 over the raw body bytes, compared in constant time."""

from __future__ import annotations

import gzip
import hashlib
import hmac

import pytest

from nylas_dataverse.realtime.signature import compute_signature, verify_signature

VECTOR_SECRET = "mock-webhook-secret"
VECTOR_BODY = b'{"specversion":"1.0","type":"message.created","id":"evt-1"}'
VECTOR_SIGNATURE = "95726496ea58cdd2d8b0d0e3c650c40a0f0a97ad9e43adc4b4dc8d610de1d21c"


def test_the_nylas_test_vector() -> None:
    assert compute_signature(VECTOR_SECRET, VECTOR_BODY) == VECTOR_SIGNATURE
    assert verify_signature(VECTOR_SECRET, VECTOR_BODY, VECTOR_SIGNATURE)


def test_a_body_changed_by_one_byte_is_rejected() -> None:
    for index in (0, len(VECTOR_BODY) // 2, len(VECTOR_BODY) - 1):
        changed = bytearray(VECTOR_BODY)
        changed[index] ^= 0x01
        assert not verify_signature(VECTOR_SECRET, bytes(changed), VECTOR_SIGNATURE)


def test_a_missing_or_foreign_signature_is_rejected() -> None:
    assert not verify_signature(VECTOR_SECRET, VECTOR_BODY, None)
    assert not verify_signature(VECTOR_SECRET, VECTOR_BODY, "")
    assert not verify_signature("another-secret", VECTOR_BODY, VECTOR_SIGNATURE)
    assert not verify_signature(VECTOR_SECRET, VECTOR_BODY, VECTOR_SIGNATURE[:-2])
    assert not verify_signature(VECTOR_SECRET, VECTOR_BODY, "ü" * 64)


def test_header_case_and_surrounding_space_do_not_matter() -> None:
    assert verify_signature(VECTOR_SECRET, VECTOR_BODY, f" {VECTOR_SIGNATURE.upper()} ")


def test_gzip_delivery_is_signed_over_the_compressed_bytes() -> None:
    compressed = gzip.compress(VECTOR_BODY)
    over_compressed = hmac.new(VECTOR_SECRET.encode(), compressed, hashlib.sha256).hexdigest()

    assert verify_signature(VECTOR_SECRET, compressed, over_compressed)
    assert not verify_signature(VECTOR_SECRET, compressed, VECTOR_SIGNATURE)


def test_an_empty_or_blank_secret_is_refused_rather_than_used() -> None:
    with pytest.raises(ValueError, match="blank"):
        verify_signature("", VECTOR_BODY, VECTOR_SIGNATURE)
    with pytest.raises(ValueError, match="blank"):
        verify_signature(" \t\n", VECTOR_BODY, VECTOR_SIGNATURE)
