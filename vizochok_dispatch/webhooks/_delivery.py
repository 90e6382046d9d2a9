"""HTTP and retries: the one place that sends a webhook request (docs/webhooks.md §2 and §3).

Every attempt is signed afresh and bounded by one deadline that covers connecting, sending
and reading the whole body (``asyncio.timeout`` around all of it, so a server that drips a
byte a second cannot stretch it).  The body is read raw, in chunks, under a size cap.  A 5xx
is retried once after the policy's delay, with the same delivery id, when the caller's
overall deadline leaves room for it.  The URL goes out as :func:`wire_url` gives it (the
configured bytes), and the delivery record keeps that URL.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, NamedTuple

import httpx
import structlog

from .._version import __version__
from ..contract._signing import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
)
from ..http._wire import BlockedDestination, Sender, wire_url
from ._diagnostics import connect_failure_reason, error_body_cap, read_error_body
from ._results import (
    BLOCKED_DESTINATION,
    CONNECT_ERROR,
    HTTP_STATUS,
    INVALID_RESPONSE,
    TIMEOUT,
    Attempt,
    Delivery,
    ErrorBody,
)

USER_AGENT: Final = f"vizochok-dispatch/{__version__}"
_MAX_CACHED_URLS: Final = 10_000

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Clock:
    """Where time comes from: wall time signs requests, monotonic time bounds them."""

    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic


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


class _TooLarge(Exception):
    """The body passed the response cap."""


class _Outcome(NamedTuple):
    attempt: Attempt
    body: bytes | None
    error_body: ErrorBody | None = None


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
    ) -> None:
        self._send = send
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
    ) -> Delivery:
        """Make the call; never raises for anything the network or the tenant does.

        The returned :class:`Delivery`'s ``url`` is the URL as sent (see :func:`wire_url`).
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
            )
            attempt = outcome.attempt
            attempts.append(attempt)
            log.info(
                "webhook.attempt",
                delivery_id=delivery_id,
                attempt=number,
                status=attempt.status,
                elapsed_ms=attempt.elapsed_ms,
                outcome="ok" if attempt.detail is None else "failure",
                detail=attempt.detail,
            )
            remaining = None if deadline_at is None else deadline_at - self._clock.monotonic()
            delay = self._retry.delay_before(number + 1, attempt.status, remaining)
            if delay is None:
                break
            await self._sleep(delay)
            number += 1
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
    ) -> _Outcome:
        started = self._clock.monotonic()
        if budget <= 0:
            return _Outcome(Attempt(number, None, 0.0, TIMEOUT), None)
        timestamp = int(self._clock.wall())
        headers = self._post_headers.copy() if method == "POST" else self._get_headers.copy()
        headers[DELIVERY_HEADER] = delivery_id
        headers[ATTEMPT_HEADER] = str(number)
        headers[TIMESTAMP_HEADER] = str(timestamp)
        headers[SIGNATURE_HEADER] = compute_signature(secret, timestamp, body)
        status: int | None = None
        detail: str | None
        reason: str | None = None
        error_body: ErrorBody | None = None
        try:
            async with asyncio.timeout(budget):
                response = await self._send(method, url, headers, body)
                status = response.status
                try:
                    payload = await response.read(self._cap) if status == 200 else None
                    if status != 200 and (keep := error_body_cap()):
                        error_body = ErrorBody(None, False, response.content_length)
                        error_body = await read_error_body(response, keep)
                    if status == 200 and payload is None:
                        raise _TooLarge
                finally:
                    await response.aclose()
        except BlockedDestination:
            detail = BLOCKED_DESTINATION
        except (TimeoutError, httpx.TimeoutException):
            # Out of time while keeping an error body: the status had arrived.
            detail = TIMEOUT if error_body is None else HTTP_STATUS
        except _TooLarge:
            detail = INVALID_RESPONSE
        except (httpx.TransportError, httpx.InvalidURL, OSError) as exc:
            detail, reason = CONNECT_ERROR, connect_failure_reason(exc)
        else:
            detail = None if status == 200 else HTTP_STATUS
            elapsed = _ms(self._clock.monotonic() - started)
            return _Outcome(Attempt(number, status, elapsed, detail), payload, error_body)
        elapsed = _ms(self._clock.monotonic() - started)
        return _Outcome(Attempt(number, status, elapsed, detail, reason), None, error_body)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)
