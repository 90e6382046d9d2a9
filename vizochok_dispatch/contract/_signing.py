"""HMAC-SHA256 request signing (docs/webhooks.md §2), and the event webhooks' two schemes (§8).

Pure functions: no clock, no I/O.  The caller passes the timestamp, so the same code signs
requests, verifies them, and checks ``signature-vectors.json``.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from typing import Final, Literal

# The synchronous signature is the receiver distribution's (receivers/python): one
# implementation signs and verifies.
from vizochok_receiver._signing import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_PREFIX,
    TIMESTAMP_HEADER,
    compute_signature,
    signature_headers,
    signature_matches,
    signed_payload,
)

#: The re-exported signer (mypy needs it named); every name defined below is public too.
__all__ = [
    "ATTEMPT_HEADER",
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_PREFIX",
    "TIMESTAMP_HEADER",
    "compute_signature",
    "signature_headers",
    "signature_matches",
    "signed_payload",
]

# ---------------------------------------------------------------------------------------------
# Event webhooks (docs/webhooks.md §8): two signature schemes over the same body bytes.
#
# While a rolled secret waits for its promotion (docs/webhooks.md §7), a standard-webhooks
# request carries both signatures, space-separated as that specification has it
# (``v1,<current> v1,<pending>``); a vizochok request carries the current secret's only.

#: The event type, on every event request (both schemes).
EVENT_HEADER: Final = "X-VIZOCHOK-Event"
#: The Standard Webhooks headers (https://www.standardwebhooks.com/).
WEBHOOK_ID_HEADER: Final = "webhook-id"
WEBHOOK_TIMESTAMP_HEADER: Final = "webhook-timestamp"
WEBHOOK_SIGNATURE_HEADER: Final = "webhook-signature"
#: A Standard Webhooks secret is this prefix then the key in standard base64.
STANDARD_SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - a prefix, not a secret
#: Key sizes a Standard Webhooks secret may carry (the spec's 24 to 64 bytes).
MIN_STANDARD_KEY_BYTES: Final = 24
MAX_STANDARD_KEY_BYTES: Final = 64

SignatureScheme = Literal["vizochok", "standard-webhooks"]
#: The schemes an event endpoint may use; ``vizochok`` (the default) is the synchronous
#: calls' own, so a tenant needs one verifier for everything.
SIGNATURE_SCHEMES: Final[tuple[SignatureScheme, ...]] = ("vizochok", "standard-webhooks")
# Header values are sent as they are: no CR, LF or anything outside printable ASCII.
_HEADER_SAFE: Final = re.compile(r"[\x21-\x7e]{1,256}")


def generate_event_secret() -> str:
    """A fresh secret that serves both schemes: ``whsec_`` and 32 random bytes in standard
    base64 (the OS's random source).

    The synchronous webhooks' ``generate_secret`` writes URL-safe base64, which a Standard
    Webhooks verifier would decode to a different key; event endpoints use this one.
    """
    return STANDARD_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def standard_webhooks_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64-decoded part after ``whsec_``.

    Raises ``ValueError`` (without the secret) when it has no prefix, is not standard base64
    or carries fewer than 24 or more than 64 bytes.
    """
    problem = event_secret_problem("standard-webhooks", secret)
    if problem is not None:
        raise ValueError(f"secret {problem}")
    return base64.b64decode(secret.removeprefix(STANDARD_SECRET_PREFIX), validate=True)


def event_secret_problem(scheme: str, secret: object) -> str | None:
    """Why ``secret`` cannot sign under ``scheme``, or ``None``; never quotes the secret.

    ``vizochok`` signs with the secret's UTF-8 bytes, so any non-empty text serves (the
    endpoint store sets its own length rules); ``standard-webhooks`` needs
    ``whsec_<standard base64 of 24 to 64 bytes>``.
    """
    if scheme not in SIGNATURE_SCHEMES:
        return f"cannot serve the unknown scheme {scheme!r:.40}"
    if not isinstance(secret, str) or not secret:
        return "must be a non-empty string"
    if scheme == "vizochok":
        return None
    if not secret.startswith(STANDARD_SECRET_PREFIX):
        return f"must start with {STANDARD_SECRET_PREFIX} for the standard-webhooks scheme"
    encoded = secret.removeprefix(STANDARD_SECRET_PREFIX)
    # Decoded only when short enough to be in range; a longer one is refused by its size.
    if len(encoded) > 4 * MAX_STANDARD_KEY_BYTES // 3 + 4:
        return (
            f"must carry {MIN_STANDARD_KEY_BYTES} to {MAX_STANDARD_KEY_BYTES} bytes "
            f"after {STANDARD_SECRET_PREFIX}"
        )
    try:
        key = base64.b64decode(encoded, validate=True)
    except ValueError:  # binascii.Error is a ValueError
        return f"must be {STANDARD_SECRET_PREFIX} then standard base64 (A-Z a-z 0-9 + / =)"
    if not MIN_STANDARD_KEY_BYTES <= len(key) <= MAX_STANDARD_KEY_BYTES:
        return (
            f"must carry {MIN_STANDARD_KEY_BYTES} to {MAX_STANDARD_KEY_BYTES} bytes "
            f"after {STANDARD_SECRET_PREFIX}"
        )
    return None


def standard_webhooks_signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` then base64 of HMAC-SHA256 over
    ``"{id}.{timestamp}." + body`` keyed with :func:`standard_webhooks_key`."""
    signed = f"{event_id}.{int(timestamp)}.".encode("ascii") + body
    digest = hmac.digest(standard_webhooks_key(secret), signed, "sha256")
    return "v1," + base64.b64encode(digest).decode("ascii")


def event_headers(
    scheme: str,
    secret: str,
    *,
    event_id: str,
    event_type: str,
    attempt: int,
    timestamp: int,
    body: bytes,
    pending_secret: str | None = None,
) -> dict[str, str]:
    """The headers that sign and label one attempt of one event delivery.

    ``timestamp`` is the attempt's Unix time in seconds (fresh on every attempt); ``event_id``
    stays the same on every attempt, so a receiver drops duplicates by it; ``attempt`` counts
    from 1.

    * ``vizochok``: ``X-VIZOCHOK-Timestamp``, ``X-VIZOCHOK-Signature: sha256=<hex>`` over
      ``"{timestamp}." + body`` (as the synchronous calls), ``X-VIZOCHOK-Event``,
      ``X-VIZOCHOK-Delivery`` (the event id) and ``X-VIZOCHOK-Attempt``.
    * ``standard-webhooks``: ``webhook-id`` (the event id), ``webhook-timestamp``,
      ``webhook-signature: v1,<base64>`` over ``"{id}.{timestamp}." + body``, plus
      ``X-VIZOCHOK-Event`` and ``X-VIZOCHOK-Attempt`` (unsigned labels, as in the other scheme).
      With ``pending_secret`` (a rolled secret not promoted yet), ``webhook-signature`` holds
      the current secret's signature, a space, then the pending secret's.

    Raises ``ValueError`` for an unknown scheme, a secret the scheme cannot use, an id or type
    that is not 1-256 printable ASCII characters, an attempt below 1, or a ``pending_secret``
    with the ``vizochok`` scheme (its one signature is the current secret's until promotion).
    """
    if scheme not in SIGNATURE_SCHEMES:
        raise ValueError(
            f"unknown signature scheme {scheme!r:.40}; known: {', '.join(SIGNATURE_SCHEMES)}"
        )
    for name, value in (("event_id", event_id), ("event_type", event_type)):
        if not isinstance(value, str) or not _HEADER_SAFE.fullmatch(value):
            raise ValueError(f"{name} must be 1 to 256 printable ASCII characters")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError("attempt must be an integer from 1")
    if (problem := event_secret_problem(scheme, secret)) is not None:
        raise ValueError(f"secret {problem}")
    if pending_secret is not None:
        if scheme == "vizochok":
            raise ValueError("the vizochok scheme signs with one secret: no pending_secret")
        if (problem := event_secret_problem(scheme, pending_secret)) is not None:
            raise ValueError(f"pending_secret {problem}")
    labels = {EVENT_HEADER: event_type, ATTEMPT_HEADER: str(attempt)}
    if scheme == "vizochok":
        return {
            **signature_headers(secret, timestamp, body),
            DELIVERY_HEADER: event_id,
            **labels,
        }
    signing = [secret] if pending_secret is None else [secret, pending_secret]
    return {
        WEBHOOK_ID_HEADER: event_id,
        WEBHOOK_TIMESTAMP_HEADER: str(int(timestamp)),
        WEBHOOK_SIGNATURE_HEADER: " ".join(
            standard_webhooks_signature(key, event_id, timestamp, body) for key in signing
        ),
        **labels,
    }
