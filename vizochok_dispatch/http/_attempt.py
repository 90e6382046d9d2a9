"""One HTTP attempt under one deadline: the core every outgoing call shares.

The synchronous webhooks (``webhooks._delivery``) and event deliveries (``events``) both send
through :func:`exchange`, so they share one rule for time and one for failures:

- One deadline covers connecting, sending and reading whatever the caller reads of the answer
  (``asyncio.timeout`` around all of it, so a server that drips a byte a second cannot stretch
  it).  The caller reads the body itself, through the :class:`WireResponse` it is handed, with
  a cap (``read(cap)``: the whole body or nothing) or a limit (``read_prefix``).
- A failure before an answer is one of the contract's details (docs/webhooks.md §3):
  ``blocked_destination`` (the SSRF guard refused the address), ``timeout`` or
  ``connect_error``; :func:`connect_failure_reason` keeps what kind of connection failure it
  was, read from the exception chain of either transport (aiohttp's, or any httpx
  transport): refused, reset, DNS, TLS (with the certificate problem when there is one), or
  an answer that is not HTTP.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp
import httpx

from .._version import __version__
from ._wire import BlockedDestination, Sender, WireResponse

USER_AGENT: Final = f"vizochok-dispatch/{__version__}"

# Failure details before an answer (docs/webhooks.md §3).
TIMEOUT: Final = "timeout"
CONNECT_ERROR: Final = "connect_error"
BLOCKED_DESTINATION: Final = "blocked_destination"

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Clock:
    """Where time comes from: wall time signs requests, monotonic time bounds them."""

    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic


#: Reads what the caller wants of an answer, inside the attempt's deadline.
ReadAnswer = Callable[[WireResponse], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Exchange:
    """How one attempt went, before the caller judges the answer."""

    #: The answer's status, when its head arrived (also when reading its body then failed).
    status: int | None
    #: ``None`` when the answer came and ``read`` finished; else ``timeout``,
    #: ``connect_error`` or ``blocked_destination``.
    failure: str | None
    #: For ``connect_error``: what kind of failure, in words.
    reason: str | None
    elapsed_seconds: float


async def exchange(
    send: Sender,
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    budget: float,
    monotonic: Callable[[], float],
    read: ReadAnswer | None = None,
) -> Exchange:
    """Send one request and hand the answer to ``read``, all within ``budget`` seconds.

    Never raises for anything the network or the server does; a ``budget`` already spent
    sends nothing (``timeout``).  The response is closed afterwards (a body not read to the
    end drops its connection).
    """
    started = monotonic()
    if budget <= 0:
        return Exchange(None, TIMEOUT, None, 0.0)
    status: int | None = None
    reason: str | None = None
    failure: str | None
    try:
        async with asyncio.timeout(budget):
            response = await send(method, url, headers, body)
            status = response.status
            try:
                if read is not None:
                    await read(response)
            finally:
                await response.aclose()
    except BlockedDestination:
        failure = BLOCKED_DESTINATION
    except (TimeoutError, httpx.TimeoutException):
        failure = TIMEOUT
    except (httpx.TransportError, httpx.InvalidURL, OSError) as exc:
        failure, reason = CONNECT_ERROR, connect_failure_reason(exc)
    else:
        failure = None
    return Exchange(status, failure, reason, monotonic() - started)


# -- why a connection failed ------------------------------------------------------------------

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
