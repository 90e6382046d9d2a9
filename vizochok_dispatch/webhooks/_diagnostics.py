"""What the delivery layer keeps for a developer's diagnosis (test-fire reports, call log).

- Why a connection failed: ``http._attempt.connect_failure_reason``, shared with events.
- What a non-200 answer said.  Inside :func:`keeping_error_bodies` (the test-fire), the
  delivery layer keeps up to ``cap`` bytes of it (:func:`read_error_body`), so a receiver's
  ``signature_mismatch`` can be shown.  With the call log on, production keeps its first
  4 KiB (:func:`read_error_prefix`), read within a short bound and with the secret and any
  signature cut out, since the log is stored.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

import httpx

from ..http._wire import WireResponse
from ._results import ErrorBody

#: Bytes of a non-200 answer's body to keep; 0 (production) reads none.  A context variable,
#: set only around a diagnostic call, so the dispatcher's signatures and its 200 path stay
#: as they are.
_ERROR_BODY_CAP: ContextVar[int] = ContextVar("vizochok_error_body_cap", default=0)


def error_body_cap() -> int:
    """The cap :func:`keeping_error_bodies` set for this context, or 0."""
    return _ERROR_BODY_CAP.get()


@contextmanager
def keeping_error_bodies(cap: int) -> Iterator[None]:
    """Within this block (this task and what it awaits), keep non-200 bodies up to ``cap``.

    The read happens inside the attempt's time limit; if it fails or time runs out, the
    attempt's outcome is still ``http_status``, as it would have been without the read.
    """
    token = _ERROR_BODY_CAP.set(cap)
    try:
        yield
    finally:
        _ERROR_BODY_CAP.reset(token)


async def read_error_body(response: WireResponse, cap: int) -> ErrorBody:
    """The body of a non-200 answer, for a report; a failed read is only noted."""
    declared = response.content_length
    try:
        data = await response.read(cap)
    except (httpx.TransportError, OSError):
        return ErrorBody(None, False, declared)
    return ErrorBody(data, data is None, declared)


#: A signature a receiver may echo back (``sha256=`` and hex; a cut one included).
_SIGNATURE: Final = re.compile(rb"sha256=[0-9A-Fa-f]+")
_REDACTED: Final = b"[redacted]"
#: A tail this long that starts the secret is cut too (a secret split by the 4 KiB limit).
_MIN_SECRET_TAIL: Final = 6


async def read_error_prefix(
    response: WireResponse, limit: int, *, seconds: float, secret: str
) -> ErrorBody:
    """The first ``limit`` bytes of a non-200 answer, read within ``seconds``, with
    ``secret`` and every ``sha256=`` signature replaced by ``[redacted]``; a read that
    fails or runs out of time is only noted (``data`` ``None``), never the attempt's failure.

    ``over_cap`` says the answer was longer than what is kept (as far as known).
    """
    declared = response.content_length
    try:
        async with asyncio.timeout(seconds):
            data = await response.read_prefix(limit)
    except (TimeoutError, httpx.TransportError, OSError):
        return ErrorBody(None, False, declared)
    over = len(data) >= limit and (declared is None or declared > limit)
    return ErrorBody(redacted(data, secret), over, declared)


def redacted(data: bytes, secret: str) -> bytes:
    """``data`` without ``secret`` (whole, or started at its end) or any signature."""
    data = _SIGNATURE.sub(b"sha256=" + _REDACTED, data)
    if not secret:
        return data
    key = secret.encode("utf-8")
    data = data.replace(key, _REDACTED)
    for size in range(min(len(key) - 1, len(data)), _MIN_SECRET_TAIL - 1, -1):
        if data.endswith(key[:size]):
            return data[:-size] + _REDACTED
    return data
