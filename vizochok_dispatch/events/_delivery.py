"""One attempt of one event delivery, and what it makes of the delivery (docs/webhooks.md §8).

The attempt is the synchronous path's own machinery, not a copy: the dispatcher's sender (the
:class:`~vizochok_dispatch.AiohttpTransport` guards every address it connects to), the
per-attempt URL check (``tenants._config.url_problem`` and the ``DestinationPolicy``), one
deadline around the whole attempt and the failure details (``http._attempt.exchange``), a
capped read of the answer (``read_prefix``: its first 4 KiB), and the signing
(``contract._signing.event_headers``).  Redirects are never followed.

What an attempt makes of the delivery:

- any ``2xx`` (its status line within the endpoint's timeout): ``delivered``;
- ``410 Gone``: ``failed``, and the endpoint is disabled at once (reason and time kept);
- anything else (another status, a timeout, a connection failure, a blocked address): the
  next attempt is due after the retry schedule's delay, or ``failed`` when none is left.
  ``Retry-After`` on a 429 or 503 lengthens that delay up to :data:`RETRY_AFTER_CAP_SECONDS`
  (it never adds an attempt).

:meth:`EventDeliverer.deliver_due` is the whole step for one delivery id (claim, attempt,
settle): what a job queue's task calls.
"""

from __future__ import annotations

import inspect
import os
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Final, NamedTuple

import structlog

from ..contract._signing import event_headers
from ..http._attempt import (
    BLOCKED_DESTINATION,
    USER_AGENT,
    Clock,
    Exchange,
    ReadAnswer,
    exchange,
)
from ..http._wire import Sender, WireResponse
from ..observe import CLIENT, Metrics, Tracing, end_request, inject_traceparent
from ..observe._logs import log_time
from ..tenants._config import ConfigRules, url_problem
from ..tenants._rotation import promotion_due
from ._schedule import RandomSource, RetrySchedule
from ._store import ENDPOINT_DISABLED, Claim, EventStore, Settlement
from ._tables import DELIVERED, FAILED, PENDING
from ._values import EndpointDisabled, EventAttempt, Trigger

#: Bytes of each answer kept with its attempt.
EXCERPT_BYTES: Final = 4096
#: The longest ``Retry-After`` honoured (one hour); a longer one waits this long.
RETRY_AFTER_CAP_SECONDS: Final = 3600.0
#: The detail of an answer that is not a 2xx (the synchronous calls' own, §3).
HTTP_STATUS: Final = "http_status"
#: Why an endpoint that answered 410 was disabled.
GONE_REASON: Final = "the endpoint answered 410 Gone"
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
_MAX_RETRY_AFTER_CHARS: Final = 64

_log = structlog.get_logger("vizochok_dispatch")
#: The ``outcome`` label of what an attempt made of its delivery.
_OUTCOMES: Final = {DELIVERED: "delivered", PENDING: "retrying", FAILED: "failed"}


def _detail(status: int | None, failure: str | None) -> str | None:
    """A 2xx status line in time is delivered, even if its body is then cut short."""
    if status is not None and 200 <= status <= 299:
        return None
    return failure or HTTP_STATUS


class _Attempted(NamedTuple):
    attempt: EventAttempt
    retry_after: float | None
    location: str | None = None


#: Told when delivery disables an endpoint (after it is recorded); may be a coroutine
#: function.  What it raises is logged and dropped.
DisabledHook = Callable[[EndpointDisabled], Awaitable[None] | None]


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` value (RFC 9110 §10.2.3: seconds, or an HTTP date) as seconds from
    ``now`` (Unix time); ``None`` when absent or unreadable."""
    if value is None or len(value) > _MAX_RETRY_AFTER_CHARS:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def new_token() -> str:
    """A claim token: which worker holds a lease."""
    return os.urandom(12).hex()


class EventDeliverer:
    """Makes one attempt of a claimed delivery and settles it; never raises for anything the
    endpoint or the network does."""

    def __init__(
        self,
        *,
        store: EventStore,
        send: Sender,
        clock: Clock,
        schedule: RetrySchedule,
        rules: ConfigRules,
        rand: RandomSource = random.random,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        on_disabled: DisabledHook | None = None,
    ) -> None:
        self._metrics = metrics
        self._tracing = tracing or Tracing(enabled=False)
        self._store = store
        self._on_disabled = on_disabled
        self._send = send
        self._clock = clock
        self._schedule = schedule
        self._rules = rules
        self._rand = rand

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.wall(), UTC)

    async def deliver_due(self, delivery_id: str) -> Settlement | None:
        """Claim delivery ``delivery_id`` if it is due and free, attempt it and settle it.

        ``None`` when it was not claimable (not due, held, done, or behind an earlier
        delivery of its ordered endpoint) or its outcome could not be recorded.
        """
        claim = await self._store.claim_one(delivery_id, now=self._now(), token=new_token())
        return None if claim is None else await self.deliver(claim)

    async def deliver(
        self, claim: Claim, *, on_settling: Callable[[], None] | None = None
    ) -> Settlement | None:
        """Attempt ``claim`` and record the outcome; ``None`` when nothing was recorded (the
        lease was lost, or the endpoint's secret is unreadable: the lease runs out and the
        delivery is tried again).  ``on_settling`` is called when the attempt is over and
        only its recording is left."""
        if claim.secret is None:
            return None
        if not claim.enabled and not claim.test:  # a test is sent to a disabled endpoint too
            settlement = Settlement(FAILED, None, ENDPOINT_DISABLED)
        else:
            attempted = await self._attempt(claim)
            settlement = self._judge(claim, attempted)
        if on_settling is not None:
            on_settling()
        settled = await self._store.settle(claim, settlement, now=self._now())
        if not settled.recorded:
            _log.warning("event.lease_lost", delivery_id=claim.delivery_id, attempt=claim.attempt)
            return None
        self._log(claim, settlement)
        if self._metrics is not None:
            attempt = settlement.attempt
            self._metrics.event_attempt(
                claim.tenant_id,
                _OUTCOMES.get(settlement.status, settlement.status),
                settlement.detail,
                None if attempt is None else attempt.latency_ms / 1000.0,
            )
        if settled.disabled is not None:
            await self._disabled(settled.disabled)
        return settlement

    async def _disabled(self, disabled: EndpointDisabled) -> None:
        """Say that delivery disabled an endpoint: the log event and the operator hook."""
        _log.warning(
            "event_endpoint.disabled",
            tenant_id=disabled.tenant_id,
            endpoint_id=disabled.endpoint_id,
            cause=disabled.cause,
            reason=disabled.reason,
            failed_deliveries=disabled.failed_deliveries,
            failing_since=log_time(disabled.failing_since),
        )
        if self._on_disabled is None:
            return
        try:
            outcome = self._on_disabled(disabled)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as exc:  # the operator's hook must not stop deliveries
            _log.exception(
                "event_endpoint.disabled_hook_failed",
                endpoint_id=disabled.endpoint_id,
                error_type=type(exc).__name__,
            )

    async def _attempt(self, claim: Claim) -> _Attempted:
        attempted_at = self._now()
        secret, pending = signing_secrets(claim, attempted_at)
        problem = url_problem(claim.url, allow_http=self._rules.allow_http)
        if problem is None:
            problem = self._rules.destinations.url_problem(claim.url)
        if problem is not None:
            blocked = EventAttempt(
                claim.attempt,
                None,
                0.0,
                BLOCKED_DESTINATION,
                attempted_at,
                trigger=_trigger(claim.trigger),
            )
            return _Attempted(blocked, None)
        headers = {
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
            "Accept-Encoding": "identity",
            **event_headers(
                claim.signature_scheme,
                secret,
                event_id=claim.event_id,
                event_type=claim.event_type,
                attempt=claim.attempt,
                timestamp=int(attempted_at.timestamp()),
                body=claim.body,
                pending_secret=pending,
            ),
        }
        excerpt: bytes | None = None
        retry_after: str | None = None
        location: str | None = None

        async def read(response: WireResponse) -> None:
            nonlocal excerpt, retry_after, location
            retry_after = response.header("Retry-After")
            location = response.header("Location")
            excerpt = await response.read_prefix(EXCERPT_BYTES)

        tracer = self._tracing.tracer()
        if tracer is None:
            sent = await self._exchange(claim, headers, read)
            detail = _detail(sent.status, sent.failure)
        else:
            attributes = self._tracing.request_attributes("POST", claim.url, claim.attempt)
            attributes.update(
                {
                    "vizochok.tenant_id": claim.tenant_id,
                    "vizochok.endpoint_id": claim.endpoint_id,
                    "vizochok.event_id": claim.event_id,
                    "vizochok.event_type": claim.event_type,
                    "vizochok.delivery_id": claim.delivery_id,
                }
            )
            with tracer.start_as_current_span(
                "POST",
                kind=CLIENT,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                inject_traceparent(headers)
                sent = await self._exchange(claim, headers, read)
                detail = _detail(sent.status, sent.failure)
                end_request(span, sent.status, detail, sent.reason)
        attempt = EventAttempt(
            number=claim.attempt,
            status=sent.status,
            latency_ms=round(sent.elapsed_seconds * 1000.0, 2),
            detail=detail,
            attempted_at=attempted_at,
            response=excerpt,
            reason=sent.reason,
            trigger=_trigger(claim.trigger),
        )
        wait = None
        if sent.status in _RETRY_AFTER_STATUSES:
            wait = retry_after_seconds(retry_after, attempted_at.timestamp())
        return _Attempted(attempt, wait, location)

    async def _exchange(self, claim: Claim, headers: dict[str, str], read: ReadAnswer) -> Exchange:
        return await exchange(
            self._send,
            method="POST",
            url=claim.url,
            headers=headers,
            body=claim.body,
            budget=claim.timeout_seconds,
            monotonic=self._clock.monotonic,
            read=read,
        )

    def _judge(self, claim: Claim, attempted: _Attempted) -> Settlement:
        attempt = attempted.attempt
        if attempt.detail is None:
            return Settlement(DELIVERED, None, None, attempt)
        if claim.test:  # one attempt; a 410 to a test disables nothing
            return Settlement(FAILED, None, attempt.detail, attempt, location=attempted.location)
        if attempt.status == 410:
            return Settlement(FAILED, None, attempt.detail, attempt, disable_reason=GONE_REASON)
        delay = self._schedule.delay_before(claim.attempt + 1, self._rand)
        if delay is None:
            return Settlement(FAILED, None, attempt.detail, attempt)
        if attempted.retry_after is not None:
            delay = max(delay, min(attempted.retry_after, RETRY_AFTER_CAP_SECONDS))
        due = self._now() + timedelta(seconds=delay)
        return Settlement(PENDING, due, attempt.detail, attempt)

    def _log(self, claim: Claim, settlement: Settlement) -> None:
        log = _log.bind(
            tenant_id=claim.tenant_id,
            endpoint_id=claim.endpoint_id,
            event_id=claim.event_id,
            delivery_id=claim.delivery_id,
        )
        if (attempt := settlement.attempt) is not None:
            log.info(
                "event.attempt",
                attempt=attempt.number,
                status=attempt.status,
                latency_ms=attempt.latency_ms,
                detail=attempt.detail,
                reason=attempt.reason,
                outcome=settlement.status,
                next_attempt_at=log_time(settlement.next_attempt_at),
            )
        if settlement.status == FAILED:
            log.warning("event.delivery_failed", detail=settlement.detail)


def signing_secrets(claim: Claim, now: datetime) -> tuple[str, str | None]:
    """The secret that signs an attempt at ``now`` and the pending one that signs beside it
    (docs/webhooks.md §7): a pending secret whose overlap ended signs alone; before that,
    ``standard-webhooks`` sends both signatures and ``vizochok`` the current one only."""
    assert claim.secret is not None  # noqa: S101 - unreadable claims are not attempted
    if claim.pending_secret is None:
        return claim.secret, None
    if promotion_due(claim.pending_promotes_at, now):
        return claim.pending_secret, None
    return claim.secret, claim.pending_secret if claim.signature_scheme != "vizochok" else None


def _trigger(value: str) -> Trigger:
    return "manual" if value == "manual" else "test" if value == "test" else "scheduled"
