"""vizochok-receiver: verify VIZOCHOK's webhook requests with the standard library only.

``verify_request(headers, raw_body, secret_or_list, tolerance=300, now=None)`` proves a
request came from VIZOCHOK (docs/webhooks.md §2) in any framework, or raises a
:class:`VerificationError` (answer 401 with its ``code``).  ``signature_headers`` signs a body
the way the dispatcher does, for your own tests.  The whole receiver app (Starlette, typed
requests, cart idempotency, events) is ``vizochok_dispatch.receiver`` in the main package,
which uses this verifier.
"""

from __future__ import annotations

from ._errors import (
    MalformedHeader,
    MissingHeader,
    SignatureMismatch,
    TimestampExpired,
    TimestampInFuture,
    TimestampOutOfRange,
    VerificationError,
)
from ._signing import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
    signature_headers,
)
from ._verify import DEFAULT_TOLERANCE_SECONDS, VerifiedRequest, verify_request

__version__ = "0.1.0"

__all__ = [
    "ATTEMPT_HEADER",
    "DEFAULT_TOLERANCE_SECONDS",
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "MalformedHeader",
    "MissingHeader",
    "SignatureMismatch",
    "TimestampExpired",
    "TimestampInFuture",
    "TimestampOutOfRange",
    "VerificationError",
    "VerifiedRequest",
    "compute_signature",
    "signature_headers",
    "verify_request",
]
