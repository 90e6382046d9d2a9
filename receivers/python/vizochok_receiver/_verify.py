"""Verifying one signed request (docs/webhooks.md §2) with no web framework in sight.

The checks run cheapest first (headers, their form, the clock) so a stale or garbled request
costs no HMAC.  The MAC itself comes from :mod:`vizochok_receiver._signing`, the code the
dispatcher signs with too, so the two sides cannot drift apart.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ._errors import (
    MalformedHeader,
    MissingHeader,
    SignatureMismatch,
    TimestampExpired,
    TimestampInFuture,
)
from ._signing import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_PREFIX,
    TIMESTAMP_HEADER,
    signature_matches,
)

DEFAULT_TOLERANCE_SECONDS: Final = 300

# Canonical form only: the signer writes ``str(int(t))``, so "+5", " 5", "05" or non-ASCII
# digits (all accepted by ``int()``) would MAC a different string than the header says.
_TIMESTAMP = re.compile(r"0|[1-9][0-9]{0,14}")
_SIGNATURE = re.compile(re.escape(SIGNATURE_PREFIX) + r"[0-9a-f]{64}")

Secrets = str | Sequence[str]


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """What a verified request proved, plus the unsigned delivery metadata it carried."""

    #: The signed Unix timestamp.
    timestamp: int
    #: Which of the given secrets matched: 0 is the first (current) one; a higher index
    #: means the sender still signs with an older secret, so it cannot be retired yet.
    secret_index: int
    #: ``X-VIZOCHOK-Delivery``; not covered by the signature (docs/webhooks.md §2).
    delivery_id: str | None
    #: ``X-VIZOCHOK-Attempt`` as a number, when it is one; not covered by the signature.
    attempt: int | None


def verify_request(
    headers: Mapping[str, str],
    body: bytes,
    secret: Secrets,
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> VerifiedRequest:
    """Prove a webhook request came from VIZOCHOK, or raise a :class:`VerificationError`.

    ``body`` must be the raw bytes as received: JSON parsed and written again rarely has the
    same bytes, so it would never verify.  ``secret`` may be a list (current secret first)
    so a tenant can roll its secret without downtime.  ``now`` defaults to the wall clock.
    Header names are matched case-insensitively; a signing header sent twice is refused.
    """
    candidates = checked_arguments(body, secret, tolerance)

    raw_timestamp = _single_header(headers, TIMESTAMP_HEADER)
    raw_signature = _single_header(headers, SIGNATURE_HEADER)
    if raw_timestamp is None:
        raise MissingHeader(TIMESTAMP_HEADER)
    if raw_signature is None:
        raise MissingHeader(SIGNATURE_HEADER)
    if not _TIMESTAMP.fullmatch(raw_timestamp):
        raise MalformedHeader(TIMESTAMP_HEADER, "must be Unix time in whole seconds (digits only)")
    if not raw_signature.startswith(SIGNATURE_PREFIX):
        raise MalformedHeader(SIGNATURE_HEADER, f"must start with {SIGNATURE_PREFIX!r}")
    if not _SIGNATURE.fullmatch(raw_signature):
        raise MalformedHeader(
            SIGNATURE_HEADER, f"must be {SIGNATURE_PREFIX!r} and 64 lowercase hex digits"
        )

    timestamp = int(raw_timestamp)
    check_window(timestamp, tolerance, now)

    payload = bytes(body)
    # Every secret is checked, matched or not, so timing does not tell which one matched.
    matches = [signature_matches(s, timestamp, payload, raw_signature) for s in candidates]
    if not any(matches):
        raise SignatureMismatch(secrets_tried=len(candidates))

    raw_attempt = _single_header(headers, ATTEMPT_HEADER, strict=False)
    return VerifiedRequest(
        timestamp=timestamp,
        secret_index=matches.index(True),
        delivery_id=_single_header(headers, DELIVERY_HEADER, strict=False),
        attempt=int(raw_attempt) if raw_attempt and _TIMESTAMP.fullmatch(raw_attempt) else None,
    )


def checked_arguments(body: object, secret: Secrets, tolerance: object) -> tuple[str, ...]:
    """The secrets to try, once the caller's arguments are checked (misuse raises)."""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("body must be the raw request bytes, not a parsed or decoded value")
    candidates = normalise_secrets(secret)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):
        raise TypeError("tolerance must be a number of seconds")
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError("tolerance must be a finite number of seconds, at least 0")
    return candidates


def check_window(timestamp: int, tolerance: float, now: float | None) -> None:
    """Refuse a signed time more than ``tolerance`` seconds from ``now`` (the wall clock)."""
    current = time.time() if now is None else now
    skew = current - timestamp
    if skew > tolerance:
        raise TimestampExpired(timestamp=timestamp, now=current, tolerance=tolerance)
    if -skew > tolerance:
        raise TimestampInFuture(timestamp=timestamp, now=current, tolerance=tolerance)


def normalise_secrets(secret: Secrets) -> tuple[str, ...]:
    """The secrets to try, as a tuple; misuse raises (without echoing any secret)."""
    candidates: tuple[object, ...] = (secret,) if isinstance(secret, str) else tuple(secret)
    if not candidates:
        raise ValueError("at least one secret is needed")
    for index, candidate in enumerate(candidates):
        if not isinstance(candidate, str) or not candidate:
            raise TypeError(f"secret #{index} must be a non-empty string")
    return tuple(str(c) for c in candidates)


def _single_header(headers: Mapping[str, str], name: str, *, strict: bool = True) -> str | None:
    """The one value of ``name`` (any case); with ``strict``, a repeated header is refused."""
    wanted = name.lower()
    values = [value for key, value in headers.items() if key.lower() == wanted]
    if not values:
        return None
    if len(values) > 1:
        if strict:
            raise MalformedHeader(name, "must be sent once, not repeated")
        return None
    return values[0]
