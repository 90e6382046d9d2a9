"""HMAC-SHA256 request signing (docs/webhooks.md §2): the one implementation both sides use.

Pure functions: no clock, no I/O.  The caller passes the timestamp, so the same code signs
requests (the dispatcher, ``vizochok_dispatch.contract._signing`` re-exports it), verifies
them, and checks ``signature-vectors.json``.
"""

from __future__ import annotations

import hmac

SIGNATURE_HEADER = "X-VIZOCHOK-Signature"
TIMESTAMP_HEADER = "X-VIZOCHOK-Timestamp"
DELIVERY_HEADER = "X-VIZOCHOK-Delivery"
ATTEMPT_HEADER = "X-VIZOCHOK-Attempt"
SIGNATURE_PREFIX = "sha256="


def signed_payload(timestamp: int, body: bytes) -> bytes:
    """The exact bytes that are MACed: ``"{timestamp}."`` then the body as sent."""
    return str(int(timestamp)).encode("ascii") + b"." + body


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-VIZOCHOK-Signature`` value for one attempt."""
    digest = hmac.digest(secret.encode("utf-8"), signed_payload(timestamp, body), "sha256")
    return SIGNATURE_PREFIX + digest.hex()


def signature_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Timestamp and signature headers, ready to merge into a request."""
    return {
        TIMESTAMP_HEADER: str(int(timestamp)),
        SIGNATURE_HEADER: compute_signature(secret, timestamp, body),
    }


def signature_matches(secret: str, timestamp: int, body: bytes, signature: str) -> bool:
    """Constant-time check of one signature header value against one secret."""
    expected = compute_signature(secret, timestamp, body)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))
