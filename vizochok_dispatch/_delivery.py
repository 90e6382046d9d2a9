"""HTTP and retries: the one place that sends a webhook request (CONTRACT §2 and §3).

Every attempt is signed afresh and bounded by one deadline that covers connecting, sending
and reading the whole body (``asyncio.timeout`` around all of it, so a server that drips a
byte a second cannot stretch it).  The body is read raw, in chunks, under a size cap.  A 5xx
is retried once after the policy's delay, with the same delivery id, when the caller's
overall deadline leaves room for it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import httpx
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, wait_fixed

from ._results import CONNECT_ERROR, HTTP_STATUS, INVALID_RESPONSE, TIMEOUT, Attempt, Delivery
from ._signing import ATTEMPT_HEADER, DELIVERY_HEADER, signature_headers
from ._version import __version__

USER_AGENT: Final = f"vizochok-dispatch/{__version__}"

Send = Callable[[httpx.Request], Awaitable[httpx.Response]]
Sleep = Callable[[float], Awaitable[None]]

_log = structlog.get_logger("vizochok_dispatch")


@dataclass(frozen=True, slots=True)
class Clock:
    """Where time comes from: wall time signs requests, monotonic time bounds them."""

    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """CONTRACT §3: a 5xx gets one retry after one second; nothing else is retried."""

    max_attempts: int = 2
    delay_seconds: float = 1.0
    #: A retry that would have less time than this before the caller's deadline is skipped.
    min_attempt_seconds: float = 0.1

    def should_retry(self, status: int | None) -> bool:
        """Only a complete 5xx response earns a retry."""
        return status is not None and 500 <= status <= 599

    def fits(self, remaining_seconds: float | None) -> bool:
        """Whether a retry (delay plus a useful attempt) fits in what the deadline leaves."""
        if remaining_seconds is None:
            return True
        return remaining_seconds - self.delay_seconds >= self.min_attempt_seconds


class _TooLarge(Exception):
    """The body passed the response cap."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    attempt: Attempt
    body: bytes | None


class Deliverer:
    """Sends one logical webhook call: signing, deadline, size cap, retry, attempt logs."""

    def __init__(
        self,
        *,
        send: Send,
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
        """Make the call; never raises for anything the network or the tenant does."""
        delivery_id = uuid.uuid4().hex
        started = self._clock.monotonic()
        attempts: list[Attempt] = []

        async def one_attempt() -> _Outcome:
            number = len(attempts) + 1
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
            attempts.append(outcome.attempt)
            log.info(
                "webhook.attempt",
                delivery_id=delivery_id,
                attempt=number,
                status=outcome.attempt.status,
                elapsed_ms=outcome.attempt.elapsed_ms,
                outcome="ok" if outcome.attempt.detail is None else "failure",
                detail=outcome.attempt.detail,
            )
            return outcome

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self._retry.max_attempts:
                return True
            remaining = None if deadline_at is None else deadline_at - self._clock.monotonic()
            return not self._retry.fits(remaining)

        def retryable(outcome: _Outcome) -> bool:
            return self._retry.should_retry(outcome.attempt.status)

        retrying = AsyncRetrying(
            stop=stop,
            wait=wait_fixed(self._retry.delay_seconds),
            retry=retry_if_result(retryable),
            sleep=self._sleep,
            retry_error_callback=_last_result,
        )
        final: _Outcome = await retrying(one_attempt)
        return Delivery(
            delivery_id=delivery_id,
            url=url,
            attempts=tuple(attempts),
            status=final.attempt.status,
            body=final.body,
            failure=final.attempt.detail,
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
        headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            DELIVERY_HEADER: delivery_id,
            ATTEMPT_HEADER: str(number),
            **signature_headers(secret, int(self._clock.wall()), body),
        }
        if method == "POST":
            headers["Content-Type"] = "application/json"
        status: int | None = None
        try:
            request = httpx.Request(method, url, headers=headers, content=body or None)
            async with asyncio.timeout(budget):
                response = await self._send(request)
                status = response.status_code
                try:
                    payload = await self._read_body(response) if status == 200 else None
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            detail: str | None = TIMEOUT
        except _TooLarge:
            detail = INVALID_RESPONSE
        except (httpx.TransportError, httpx.InvalidURL, OSError):
            detail = CONNECT_ERROR
        else:
            detail = None if status == 200 else HTTP_STATUS
            elapsed = _ms(self._clock.monotonic() - started)
            return _Outcome(Attempt(number, status, elapsed, detail), payload)
        elapsed = _ms(self._clock.monotonic() - started)
        return _Outcome(Attempt(number, status, elapsed, detail), None)

    async def _read_body(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._cap:
            raise _TooLarge
        try:
            already = response.content  # transports that hand over a read body (mocks)
        except httpx.ResponseNotRead:
            pass
        else:
            if len(already) > self._cap:
                raise _TooLarge
            return already
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > self._cap:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)


def _last_result(state: RetryCallState) -> _Outcome:
    """When retries stop, the last attempt's outcome is the answer (never a RetryError)."""
    assert state.outcome is not None  # noqa: S101 - tenacity sets it before stopping
    result: _Outcome = state.outcome.result()
    return result


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)
