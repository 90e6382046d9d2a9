"""HTTP and retries: the one place that sends a webhook request (docs/webhooks.md §2 and §3).

Every attempt is signed afresh and bounded by one deadline that covers connecting, sending
and reading the whole body (``http._attempt.exchange``, which event deliveries share: one
``asyncio.timeout`` around all of it, so a server that drips a byte a second cannot stretch
it).  The body is read raw, in chunks, under a size cap.  A 5xx
is retried once after the policy's delay, with the same delivery id, when the caller's
overall deadline leaves room for it.  The URL goes out as :func:`wire_url` gives it (the
configured bytes), and the delivery record keeps that URL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final, NamedTuple

import structlog

from ..contract._signing import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
)
from ..http._attempt import TIMEOUT, exchange
from ..http._attempt import USER_AGENT as USER_AGENT  # noqa: PLC0414 - still importable from here
from ..http._attempt import Clock as Clock  # noqa: PLC0414 - still importable from here
from ..http._attempt import Sleep as Sleep  # noqa: PLC0414 - still importable from here
from ..http._wire import Sender, WireResponse, wire_url
from ..observe import CLIENT, NO_SPAN, Tracing, WebhookSeries, end_request, inject_traceparent
from ._diagnostics import error_body_cap, read_error_body, read_error_prefix
from ._results import HTTP_STATUS, INVALID_RESPONSE, Attempt, Delivery, ErrorBody

_MAX_CACHED_URLS: Final = 10_000
#: The longest a non-200 answer's first bytes are waited for (the call log's excerpt).
ERROR_PREFIX_SECONDS: Final = 0.5


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """docs/webhooks.md §3: a 5xx gets one retry after one second; nothing else is retried."""

    max_attempts: int = 2
    delay_seconds: float = 1.0
    #: A retry that would have less time than this before the caller's deadline is skipped.
    min_attempt_seconds: float = 0.1

    def delay_before(
        self, attempt: int, last_status: int | None, remaining_seconds: float | None
    ) -> float | None:
        """Seconds to wait before attempt number ``attempt``, or ``None``: do not make it.

        Only a complete 5xx response earns a retry, only up to ``max_attempts``, and only
        when the caller's deadline leaves the delay plus a useful attempt.
        """
        if attempt > self.max_attempts or last_status is None or not 500 <= last_status <= 599:
            return None
        if (
            remaining_seconds is not None
            and remaining_seconds - self.delay_seconds < self.min_attempt_seconds
        ):
            return None
        return self.delay_seconds


class _Outcome(NamedTuple):
    attempt: Attempt
    body: bytes | None
    error_body: ErrorBody | None
    seconds: float


class Deliverer:
    """Sends one logical webhook call: signing, deadline, size cap, retry, attempt logs."""

    def __init__(
        self,
        *,
        send: Sender,
        clock: Clock,
        sleep: Sleep,
        max_response_bytes: int,
        retry: RetryPolicy,
        error_prefix_bytes: int = 0,
        tracing: Tracing | None = None,
    ) -> None:
        self._send = send
        #: Bytes of a non-200 answer to keep (the call log's excerpt); 0 reads none.
        self._error_prefix = error_prefix_bytes
        self._tracing = tracing or Tracing(enabled=False)
        self._clock = clock
        self._sleep = sleep
        self._cap = max_response_bytes
        self._retry = retry
        self._get_headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Accept-Encoding": "identity",
        }
        self._post_headers = {**self._get_headers, "Content-Type": "application/json"}
        self._wire_urls: dict[str, str] = {}

    def _wire_url(self, url: str) -> str:
        sent = self._wire_urls.get(url)
        if sent is None:
            if len(self._wire_urls) >= _MAX_CACHED_URLS:
                self._wire_urls.clear()
            sent = self._wire_urls[url] = wire_url(url)
        return sent

    async def deliver(
        self,
        *,
        method: str,
        url: str,
        body: bytes,
        secret: str,
        timeout_seconds: float,
        deadline_at: float | None,
        log: structlog.typing.FilteringBoundLogger,
        series: WebhookSeries | None = None,
        traced: bool = False,
    ) -> Delivery:
        """Make the call; never raises for anything the network or the tenant does.

        The returned :class:`Delivery`'s ``url`` is the URL as sent (see :func:`wire_url`).
        ``series`` counts each attempt and retry; ``traced``: each attempt gets a client span
        (a child of the current one) and sends its ``traceparent``.
        """
        url = self._wire_url(url)
        delivery_id = os.urandom(16).hex()
        started = self._clock.monotonic()
        attempts: list[Attempt] = []
        number = 1
        while True:
            budget = timeout_seconds
            if deadline_at is not None:
                budget = min(budget, deadline_at - self._clock.monotonic())
            outcome = await self._attempt(
                number=number,
                method=method,
                url=url,
                body=body,
                secret=secret,
                delivery_id=delivery_id,
                budget=budget,
                traced=traced,
            )
            attempt = outcome.attempt
            if series is not None:
                series.attempt(attempt.detail, outcome.seconds)
            attempts.append(attempt)
            log.info(
                "webhook.attempt",
                delivery_id=delivery_id,
                attempt=number,
                status=attempt.status,
                elapsed_ms=attempt.elapsed_ms,
                outcome="ok" if attempt.detail is None else "failed",
                detail=attempt.detail,
            )
            remaining = None if deadline_at is None else deadline_at - self._clock.monotonic()
            delay = self._retry.delay_before(number + 1, attempt.status, remaining)
            if delay is None:
                break
            await self._sleep(delay)
            number += 1
            if series is not None:
                series.retried()
        return Delivery(
            delivery_id=delivery_id,
            url=url,
            attempts=tuple(attempts),
            status=attempt.status,
            body=outcome.body,
            error_body=outcome.error_body,
            failure=attempt.detail,
            elapsed_ms=_ms(self._clock.monotonic() - started),
        )

    async def _attempt(
        self,
        *,
        number: int,
        method: str,
        url: str,
        body: bytes,
        secret: str,
        delivery_id: str,
        budget: float,
        traced: bool,
    ) -> _Outcome:
        timestamp = int(self._clock.wall())
        headers = self._post_headers.copy() if method == "POST" else self._get_headers.copy()
        headers[DELIVERY_HEADER] = delivery_id
        headers[ATTEMPT_HEADER] = str(number)
        headers[TIMESTAMP_HEADER] = str(timestamp)
        headers[SIGNATURE_HEADER] = compute_signature(secret, timestamp, body)
        payload: bytes | None = None
        too_large = False
        error_body: ErrorBody | None = None

        async def read(response: WireResponse) -> None:
            nonlocal payload, too_large, error_body
            if response.status == 200:
                payload = await response.read(self._cap)
                too_large = payload is None
            elif keep := error_body_cap():
                error_body = ErrorBody(None, False, response.content_length)
                error_body = await read_error_body(response, keep)
            elif self._error_prefix:
                error_body = ErrorBody(None, False, response.content_length)
                error_body = await read_error_prefix(
                    response, self._error_prefix, seconds=ERROR_PREFIX_SECONDS, secret=secret
                )

        tracer = self._tracing.tracer() if traced else None
        with (
            NO_SPAN
            if tracer is None
            else tracer.start_as_current_span(
                method,
                kind=CLIENT,
                attributes=self._tracing.request_attributes(method, url, number),
                record_exception=False,
                set_status_on_exception=False,
            )
        ) as span:
            if span is not None:
                inject_traceparent(headers)  # the current span is this attempt's
            sent = await exchange(
                self._send,
                method=method,
                url=url,
                headers=headers,
                body=body,
                budget=budget,
                monotonic=self._clock.monotonic,
                read=read,
            )
            if sent.failure == TIMEOUT and error_body is not None:
                detail: str | None = HTTP_STATUS  # out of time keeping an error body: it came
            elif sent.failure is not None:
                detail = sent.failure
            elif too_large:
                detail = INVALID_RESPONSE
            else:
                detail = None if sent.status == 200 else HTTP_STATUS
            if span is not None:
                end_request(span, sent.status, detail, sent.reason)
        elapsed = _ms(sent.elapsed_seconds)
        kept = payload if detail is None else None
        return _Outcome(
            Attempt(number, sent.status, elapsed, detail, sent.reason),
            kept,
            error_body,
            sent.elapsed_seconds,
        )


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)
