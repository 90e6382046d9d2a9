"""Operating event endpoints: auto-disable, retention, and what an endpoint test reports.

- **Auto-disable** (:class:`AutoDisable`): an endpoint whose every attempt has failed for
  ``VIZOCHOK_EVENT_DISABLE_AFTER`` (default 5 days, counted from the first failed attempt
  after the last delivered one) or that has ``VIZOCHOK_EVENT_DISABLE_AFTER_FAILURES`` failed
  deliveries in a row (default 1000, each one failed after its whole retry schedule) is
  disabled at the failure that crosses the line.  One delivered attempt resets both counts;
  endpoint tests never count.  Its deliveries stay ``failed`` and can be recovered once it is
  enabled again.
- **Retention** (:class:`Retention`): delivered deliveries and their attempts are purged
  ``VIZOCHOK_EVENT_RETAIN_DELIVERED`` (30 days) after they settled, failed ones
  ``VIZOCHOK_EVENT_RETAIN_FAILED`` (90 days) after they failed, and an event once it has no
  delivery left and is older than the delivered retention; pending deliveries never.
- **Endpoint test reports** (:func:`test_problems`): what was wrong with a test delivery, in
  words, and the likely fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from ..http._attempt import BLOCKED_DESTINATION, CONNECT_ERROR, DNS, REFUSED, TIMEOUT, TLS
from ._values import DisableCause

DAY: Final = 86_400.0
DEFAULT_DISABLE_AFTER_SECONDS: Final = 5 * DAY
DEFAULT_DISABLE_AFTER_FAILURES: Final = 1000
MAX_DISABLE_AFTER_SECONDS: Final = 365 * DAY
DEFAULT_RETAIN_DELIVERED_SECONDS: Final = 30 * DAY
DEFAULT_RETAIN_FAILED_SECONDS: Final = 90 * DAY
#: At least a day: an idempotency key names its event for 24 h.
MIN_RETAIN_SECONDS: Final = DAY
MAX_RETAIN_SECONDS: Final = 3650 * DAY
#: Rows one purge or recovery transaction touches at most (short transactions: no long locks).
BATCH_SIZE: Final = 500
#: Deliveries one recovery call re-queues at most.
MAX_RECOVERED: Final = 10_000
#: How often the embedded worker purges what retention lets go.
PURGE_INTERVAL_SECONDS: Final = 3600.0


def _days(seconds: float) -> str:
    days = seconds / DAY
    return f"{days:g} days" if days >= 1 else f"{seconds / 3600:g} hours"


@dataclass(frozen=True, slots=True)
class AutoDisable:
    """When failing deliveries disable their endpoint (module docstring); 0 turns a rule off."""

    after_seconds: float = DEFAULT_DISABLE_AFTER_SECONDS
    after_failures: int = DEFAULT_DISABLE_AFTER_FAILURES

    def reason(
        self, *, failed_deliveries: int, failing_since: datetime | None, now: datetime
    ) -> tuple[DisableCause, str] | None:
        """``(cause, reason in words)`` when an endpoint in this state is to be disabled."""
        if self.after_failures and failed_deliveries >= self.after_failures:
            return (
                "too_many_failures",
                f"{failed_deliveries} deliveries failed in a row "
                f"(VIZOCHOK_EVENT_DISABLE_AFTER_FAILURES={self.after_failures})",
            )
        if (
            self.after_seconds
            and failing_since is not None
            and now - failing_since >= timedelta(seconds=self.after_seconds)
        ):
            return (
                "failing_too_long",
                f"every attempt failed for {_days(self.after_seconds)} or more (since "
                f"{failing_since:%Y-%m-%dT%H:%M:%SZ}; VIZOCHOK_EVENT_DISABLE_AFTER)",
            )
        return None


@dataclass(frozen=True, slots=True)
class Retention:
    """How long settled deliveries are kept (module docstring)."""

    delivered_seconds: float = DEFAULT_RETAIN_DELIVERED_SECONDS
    failed_seconds: float = DEFAULT_RETAIN_FAILED_SECONDS


# -- endpoint test reports ---------------------------------------------------------------------

_REDIRECT: Final = range(300, 400)


def test_problems(
    *,
    status: int | None,
    detail: str | None,
    reason: str | None,
    timeout_seconds: float,
    response: bytes | None,
    location: str | None,
    scheme: str,
) -> tuple[list[str], str | None]:
    """What was wrong with a test attempt, in words, and the likely fix (``None`` when it was
    delivered)."""
    if detail is None:
        return [], None
    problems: list[str]
    if detail == TIMEOUT:
        problems = [
            f"timeout: no answer within the endpoint's timeout_seconds ({timeout_seconds:g} s); "
            "connecting, sending and the status line all count"
        ]
        hint = (
            "answer 2xx as soon as the event is verified and stored, and do the work after "
            "(a queue), or raise timeout_seconds (at most 30)"
        )
    elif detail == CONNECT_ERROR:
        problems = [f"connect_error: {reason}" if reason else "connect_error: could not connect"]
        hint = _connect_hint(reason or "")
    elif detail == BLOCKED_DESTINATION:
        problems = ["blocked_destination: the URL's host is not a public address; nothing was sent"]
        hint = (
            "VIZOCHOK calls public addresses only; for local development list the networks "
            "it may call in VIZOCHOK_ALLOWED_NETWORKS (and VIZOCHOK_ALLOW_HTTP=true for http://)"
        )
    else:
        problems = [f"http_status: HTTP {status} (only a 2xx delivers)"]
        hint = _status_hint(status, location, scheme)
    code = refusal_code(response)
    if code is not None:
        problems.append(f"the receiver answered {code}")
        # The receiver's own reason beats a guess from the status (a 401 may be a clock).
        hint = _refusal_hint(code, scheme) or hint
    return problems, hint


def _signature_hint(scheme: str) -> str:
    return (
        "your receiver rejected the signature: is it using this endpoint's current secret "
        f"(the {scheme} scheme; after a rotation, the new one or both), and verifying the raw "
        "body bytes as received?"
    )


def _refusal_hint(code: str, scheme: str) -> str | None:
    """The fix for a receiver kit's refusal code (Python, Node and Go kits share them)."""
    if code in ("signature_mismatch", "verification_failed"):
        return _signature_hint(scheme)
    if code == "timestamp_expired":
        return (
            "the receiver's clock is ahead of VIZOCHOK's by more than its tolerance "
            "(300 s by default): synchronise it (NTP)"
        )
    if code == "timestamp_in_future":
        return (
            "the receiver's clock is behind VIZOCHOK's by more than its tolerance "
            "(300 s by default): synchronise it (NTP)"
        )
    if code in ("missing_header", "malformed_header"):
        return (
            "a signature header did not reach the receiver as sent: a proxy in front of it "
            f"may drop or rewrite them (the {scheme} scheme's headers)"
        )
    return None


def _connect_hint(reason: str) -> str:
    if reason.startswith(REFUSED.split(" (", 1)[0]):
        return "nothing accepts connections at that host and port: is your receiver running?"
    if reason.startswith(TLS):
        return (
            "the certificate must be valid for the URL's host and chain to a public CA "
            "(self-signed certificates are refused)"
        )
    if reason == DNS:
        return "the URL's host name does not resolve: check its spelling and your DNS records"
    return (
        "the connection broke before a complete HTTP answer: check that the URL's port "
        "serves HTTP(S) and that a proxy in front of your receiver lets the request through"
    )


def _status_hint(status: int | None, location: str | None, scheme: str) -> str:
    if status in (401, 403):
        return _signature_hint(scheme)
    if status == 410:
        return (
            "your endpoint answered 410 Gone: a real delivery would disable this endpoint "
            "(a test does not)"
        )
    if status is not None and status in _REDIRECT:
        where = f" ({location[:200]})" if location else ""
        return f"redirects are not followed: set the endpoint's URL to where it redirects{where}"
    if status == 404:
        return "nothing answers at this URL's path on your server: check the endpoint URL"
    if status in (429, 503):
        return (
            "your receiver is busy or rate-limiting; real deliveries are retried and honour "
            "Retry-After (up to 1 h)"
        )
    if status is not None and status >= 500:
        return "your receiver failed while handling the event: see its logs"
    return "your receiver refused the request: see its answer (response_body)"


def refusal_code(data: bytes | None) -> str | None:
    """The error code in a receiver's JSON answer (the receiver kit's ``{"error": "code"}``,
    ``{"error": {"code": ...}}`` or ``{"code": ...}``)."""
    if not data:
        return None
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    error = document.get("error")
    for candidate in (
        error,
        error.get("code") if isinstance(error, dict) else None,
        document.get("code"),
    ):
        if isinstance(candidate, str) and 0 < len(candidate) <= 64:
            return candidate
    return None
