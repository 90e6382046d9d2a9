"""Verifying an event request signed with the ``standard-webhooks`` scheme (docs/webhooks.md §8,
https://www.standardwebhooks.com/): the same secret-list rule as :func:`verify_request`.

The MAC comes from :mod:`vizochok_dispatch.contract._signing`, the code the dispatcher signs
with, so the two sides cannot drift apart.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from typing import Final

from vizochok_receiver._verify import (
    _TIMESTAMP,
    _single_header,
    check_window,
    checked_arguments,
)

from ..contract._signing import (
    ATTEMPT_HEADER,
    WEBHOOK_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
    event_secret_problem,
    standard_webhooks_signature,
)
from ._errors import (
    MalformedHeader,
    MissingHeader,
    SignatureMismatch,
)
from ._verify import DEFAULT_TOLERANCE_SECONDS, Secrets, VerifiedRequest

_ID: Final = re.compile(r"[\x21-\x7e]{1,256}")
_V1: Final = re.compile(r"v1,[A-Za-z0-9+/]{43}=")
#: Signatures read from one header at most (the dispatcher sends one, or two while rolling).
_MAX_SIGNATURES: Final = 8


def verify_standard_webhook(
    headers: Mapping[str, str],
    body: bytes,
    secret: Secrets,
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> VerifiedRequest:
    """Prove a ``standard-webhooks`` event request came from VIZOCHOK, or raise a
    :class:`~vizochok_dispatch.receiver.VerificationError` (answer 401 with its ``code``).

    ``webhook-signature`` holds one or more space-separated ``v1,<base64>`` signatures over
    ``"{webhook-id}.{webhook-timestamp}." + body``; the request verifies when any of them is
    any given secret's (``whsec_...``; current first: ``secret_index`` says which matched, a
    secret that is not a ``whsec_`` one matches nothing).  ``delivery_id`` is ``webhook-id``
    (signed here), ``attempt`` the unsigned ``X-VIZOCHOK-Attempt``.  ``body`` must be the raw
    bytes as received; ``now`` defaults to the wall clock.
    """
    candidates = checked_arguments(body, secret, tolerance)
    raw_id = _single_header(headers, WEBHOOK_ID_HEADER)
    raw_timestamp = _single_header(headers, WEBHOOK_TIMESTAMP_HEADER)
    raw_signature = _single_header(headers, WEBHOOK_SIGNATURE_HEADER)
    if raw_id is None:
        raise MissingHeader(WEBHOOK_ID_HEADER)
    if raw_timestamp is None:
        raise MissingHeader(WEBHOOK_TIMESTAMP_HEADER)
    if raw_signature is None:
        raise MissingHeader(WEBHOOK_SIGNATURE_HEADER)
    if not _ID.fullmatch(raw_id):
        raise MalformedHeader(WEBHOOK_ID_HEADER, "must be 1 to 256 printable ASCII characters")
    if not _TIMESTAMP.fullmatch(raw_timestamp):
        raise MalformedHeader(
            WEBHOOK_TIMESTAMP_HEADER, "must be Unix time in whole seconds (digits only)"
        )
    offered = [part for part in raw_signature.split(" ") if _V1.fullmatch(part)]
    if not offered or len(offered) > _MAX_SIGNATURES:
        raise MalformedHeader(
            WEBHOOK_SIGNATURE_HEADER, "must hold 'v1,<base64 of 32 bytes>' entries, space-separated"
        )
    timestamp = int(raw_timestamp)
    check_window(timestamp, tolerance, now)
    payload = bytes(body)
    # Every secret against every signature, matched or not: timing tells nothing.
    matches = [_matches(s, raw_id, timestamp, payload, offered) for s in candidates]
    if not any(matches):
        raise SignatureMismatch(secrets_tried=len(candidates))
    raw_attempt = _single_header(headers, ATTEMPT_HEADER, strict=False)
    return VerifiedRequest(
        timestamp=timestamp,
        secret_index=matches.index(True),
        delivery_id=raw_id,
        attempt=int(raw_attempt) if raw_attempt and _TIMESTAMP.fullmatch(raw_attempt) else None,
    )


def _matches(secret: str, event_id: str, timestamp: int, body: bytes, offered: list[str]) -> bool:
    if event_secret_problem("standard-webhooks", secret) is not None:
        return False
    expected = standard_webhooks_signature(secret, event_id, timestamp, body).encode("ascii")
    found = False
    for signature in offered:
        found |= hmac.compare_digest(expected, signature.encode("ascii"))
    return found
