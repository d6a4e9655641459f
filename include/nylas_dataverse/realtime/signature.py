"""Nylas webhook signatures: ``X-Nylas-Signature`` is the hex HMAC-SHA256 of the raw request body.

The key is the webhook's secret (UTF-8) and the digest covers the bytes exactly as they arrived: with
compressed delivery that is the gzip stream, not the JSON inside it. Comparison is constant time, so
the answer's timing does not reveal how much of a forged signature was right.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Nylas-Signature"


def compute_signature(secret: str, body: bytes) -> str:
    """The lowercase hex digest Nylas sends for ``body``."""
    if not secret.strip():
        raise ValueError("the webhook secret is blank; a blank key would accept forged notifications")
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, signature: str | None) -> bool:
    """True only when ``signature`` is the HMAC of ``body`` under ``secret``; a missing one is False."""
    if not signature:
        return False
    expected = compute_signature(secret, body).encode()
    # Header values arrive as latin-1 text; anything outside hex simply fails the comparison.
    provided = signature.strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(expected, provided)
