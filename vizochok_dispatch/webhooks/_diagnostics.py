"""What the delivery layer keeps for a developer's diagnosis (test-fire reports).

- Why a connection failed: every connection failure is one machine-readable
  ``connect_error`` (docs/webhooks.md §3); :func:`connect_failure_reason` keeps what kind it was,
  read from the exception chain of either transport (aiohttp's, or any httpx transport):
  refused, reset, DNS, TLS (with the certificate problem when there is one), or an answer
  that is not HTTP.  Only the failure path calls it.
- What a non-200 answer said: production never reads that body.  Inside
  :func:`keeping_error_bodies` (the test-fire), the delivery layer keeps up to ``cap`` bytes
  of it (:func:`read_error_body`), so a receiver's ``signature_mismatch`` can be shown.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

import aiohttp
import httpx

from ..http._wire import WireResponse
from ._results import ErrorBody

REFUSED: Final = "connection refused (nothing accepts connections on that host and port)"
RESET: Final = "connection reset or closed before a complete HTTP answer"
DNS: Final = "the host name did not resolve (DNS)"
TLS: Final = "the TLS handshake failed"
NOT_HTTP: Final = "the answer was not valid HTTP"
INVALID_URL: Final = "the URL cannot be requested"
OTHER: Final = "the connection failed"

_MAX_CHAIN: Final = 12


def connect_failure_reason(exc: BaseException) -> str:
    """One of the phrases above for a failure the delivery layer calls ``connect_error``."""
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"{TLS}: {cause.verify_message}" if cause.verify_message else TLS
        if isinstance(cause, aiohttp.ClientConnectorCertificateError):
            certificate = cause.certificate_error
            if isinstance(certificate, ssl.SSLCertVerificationError) and certificate.verify_message:
                return f"{TLS}: {certificate.verify_message}"
            return TLS
        if isinstance(cause, ssl.SSLError | aiohttp.ClientSSLError):
            return TLS
        if isinstance(cause, socket.gaierror | aiohttp.ClientConnectorDNSError):
            return DNS
        if isinstance(cause, ConnectionRefusedError):
            return REFUSED
        if isinstance(
            cause, ConnectionResetError | BrokenPipeError | aiohttp.ServerDisconnectedError
        ):
            return RESET
    for cause in _chain(exc):  # the generic kinds, once no specific cause was found
        if isinstance(cause, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return INVALID_URL
        if isinstance(cause, httpx.RemoteProtocolError | aiohttp.ClientPayloadError):
            return NOT_HTTP
        if isinstance(cause, httpx.ReadError | httpx.WriteError):
            return RESET
    return OTHER


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and aiohttp's wrapped OS errors; bounded."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending and len(seen) < _MAX_CHAIN:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, aiohttp.ClientConnectorError):
            pending.append(current.os_error)
        pending.extend(
            linked for linked in (current.__cause__, current.__context__) if linked is not None
        )


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
