"""What the delivery layer keeps for a developer's diagnosis (test-fire reports).

- Why a connection failed: ``http._attempt.connect_failure_reason``, shared with events.
- What a non-200 answer said: production never reads that body.  Inside
  :func:`keeping_error_bodies` (the test-fire), the delivery layer keeps up to ``cap`` bytes
  of it (:func:`read_error_body`), so a receiver's ``signature_mismatch`` can be shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

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
