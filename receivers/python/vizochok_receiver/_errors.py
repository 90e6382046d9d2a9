"""Why a request was refused, as exceptions a tenant can catch one by one or all at once.

::

    VerificationError (ValueError)        not provably from VIZOCHOK: answer 401
    ├── MissingHeader                     a signing header is absent             (header)
    ├── MalformedHeader                   present, but not in the contract's form (header, problem)
    ├── TimestampOutOfRange               further than ``tolerance`` from our clock
    │   ├── TimestampExpired              too old: a replay, or a clock running slow
    │   └── TimestampInFuture             too new: a clock running fast
    │                                     (timestamp, now, tolerance, skew_seconds)
    └── SignatureMismatch                 no configured secret yields the signature (secrets_tried)

Each error carries what a log needs to tell the cases apart, and a stable ``code`` for JSON
bodies and metrics.  None of them ever holds a secret, the expected signature or the body:
an error message is exactly where a secret leaks from.
"""

from __future__ import annotations

from typing import ClassVar


class VerificationError(ValueError):
    """The request is not provably from VIZOCHOK; refuse it (401) and do not act on it."""

    #: Stable machine-readable reason, used in 401 bodies and logs.
    code: ClassVar[str] = "verification_failed"


class MissingHeader(VerificationError):
    """A signing header is absent."""

    code: ClassVar[str] = "missing_header"

    def __init__(self, header: str) -> None:
        self.header = header
        super().__init__(f"missing header {header}")


class MalformedHeader(VerificationError):
    """A signing header is present but not in the form the contract defines."""

    code: ClassVar[str] = "malformed_header"

    def __init__(self, header: str, problem: str) -> None:
        self.header = header
        self.problem = problem
        super().__init__(f"header {header} {problem}")


class TimestampOutOfRange(VerificationError):
    """The signed timestamp is further than ``tolerance`` seconds from the receiver's clock."""

    code: ClassVar[str] = "timestamp_out_of_range"
    _direction: ClassVar[str] = "away from"

    def __init__(self, *, timestamp: int, now: float, tolerance: float) -> None:
        self.timestamp = timestamp
        self.now = now
        self.tolerance = tolerance
        #: Positive when the timestamp is in the past, negative when in the future.
        self.skew_seconds = now - timestamp
        super().__init__(
            f"timestamp {timestamp} is {abs(self.skew_seconds):.0f} s {self._direction} "
            f"the receiver's clock (tolerance {tolerance:g} s)"
        )


class TimestampExpired(TimestampOutOfRange):
    """The timestamp is too old: a replayed request, or a sender clock running slow."""

    code: ClassVar[str] = "timestamp_expired"
    _direction: ClassVar[str] = "older than"


class TimestampInFuture(TimestampOutOfRange):
    """The timestamp is too far ahead: a sender (or receiver) clock is wrong."""

    code: ClassVar[str] = "timestamp_in_future"
    _direction: ClassVar[str] = "ahead of"


class SignatureMismatch(VerificationError):
    """No configured secret produces the request's signature over its raw body."""

    code: ClassVar[str] = "signature_mismatch"

    def __init__(self, *, secrets_tried: int) -> None:
        self.secrets_tried = secrets_tried
        noun = "secret" if secrets_tried == 1 else "secrets"
        super().__init__(
            f"signature does not match the raw body (checked against {secrets_tried} {noun})"
        )
