"""The default HTTP engine: aiohttp's connection pool behind httpx's transport interface.

Why: with hundreds of slow calls in flight, httpx's stock pool collapsed on this machine
(~75 calls/s, p99 ~14 s) where aiohttp held ~2,000 calls/s; see the core issue's numbers.
Callers keep httpx's types and exceptions, and tests swap this for respx or any
``httpx.AsyncBaseTransport``.

The transport never follows redirects, never decompresses, keeps no cookies and reads no
proxy settings from the environment.  It always guards where it connects (SECURITY.md): a
host written as an address is checked before connecting, and every address DNS returns for a
name is checked by :class:`GuardedResolver` at connect time; only globally routable addresses
pass, plus the ``allowed_networks`` it was built with.  There is no switch that turns this
off.  Time limits are not its job: the delivery layer wraps each whole attempt in one
deadline, and a cancelled read closes its connection instead of returning it to the pool
half-read.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Final, NamedTuple

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver
from yarl import URL

from ._destinations import (
    BlockedAddressError,
    DestinationPolicy,
    GuardedResolver,
    IPNetwork,
    parse_networks,
)
from ._wire import BlockedDestination, WireResponse, read_capped, wire_url

_CHUNK: Final = 64 * 1024
_MAX_CACHED_URLS: Final = 10_000
#: Headers aiohttp computes itself from the URL and the body.
_DROPPED_HEADERS: Final = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class _Target(NamedTuple):
    """A URL parsed once: what aiohttp is handed, and why the guard refuses its host."""

    url: URL
    problem: str | None


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` that sends through one ``aiohttp.ClientSession``.

    The session is created lazily inside the running event loop and closed by ``aclose``.
    Connections go only to globally routable addresses and to ``allowed_networks`` (CIDRs,
    e.g. ``"127.0.0.0/8,::1/128"`` for local work; the dispatcher passes
    ``VIZOCHOK_ALLOWED_NETWORKS``); anything else fails with :class:`BlockedDestination` (an
    ``httpx.ConnectError``) before a byte is sent.  ``resolver`` looks host names up (aiohttp's
    threaded ``getaddrinfo`` by default); its answers are always checked.  A bad network
    raises ``ValueError``.
    """

    def __init__(
        self,
        *,
        max_connections: int = 512,
        keepalive_seconds: float = 15.0,
        allowed_networks: str | Iterable[str | IPNetwork] = (),
        resolver: AbstractResolver | None = None,
        dns_cache_seconds: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_seconds = keepalive_seconds
        self._policy = DestinationPolicy(allowed_networks=_networks(allowed_networks))
        self._resolver = GuardedResolver(self._policy, resolver)
        self._dns_cache_seconds = dns_cache_seconds
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None
        self._targets: dict[str, _Target] = {}

    @property
    def allowed_networks(self) -> tuple[IPNetwork, ...]:
        """The non-public networks this transport may connect to (besides public addresses)."""
        return self._policy.allowed_networks

    def _target(self, url: str) -> _Target:
        """``url`` parsed as already encoded (sent byte for byte), checked once, cached."""
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= _MAX_CACHED_URLS:
                self._targets.clear()
            parsed = URL(wire_url(url), encoded=True)
            # aiohttp skips the resolver for a host written as an address: check it here.
            problem = None if parsed.host is None else self._policy.host_problem(parsed.host)
            target = self._targets[url] = _Target(parsed, problem)
        return target

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=self._keepalive_seconds,
                resolver=self._resolver,
                use_dns_cache=self._dns_cache_seconds > 0,
                ttl_dns_cache=int(self._dns_cache_seconds) or None,
                ssl=self._ssl,
                enable_cleanup_closed=False,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("User-Agent", "Content-Type", "Accept-Encoding"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; the returned response streams its body from the socket."""
        target = self._target(str(request.url))
        if target.problem is not None:
            raise BlockedDestination(_blocked(target), request=request)
        session = self._get_session()
        headers = [
            (name, value)
            for name, value in request.headers.multi_items()
            if name.lower() not in _DROPPED_HEADERS
        ]
        body = await request.aread()
        try:
            response = await session.request(
                request.method,
                target.url,
                headers=headers,
                data=body or None,
                allow_redirects=False,
                compress=None,
            )
        except aiohttp.ClientError as exc:
            raise _as_httpx_error(exc, request) from exc
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_AiohttpStream(response, request),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )

    async def send_wire(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> WireResponse:
        """The dispatcher's fast path: no httpx objects, same exceptions as above."""
        target = self._target(url)
        if target.problem is not None:
            raise BlockedDestination(_blocked(target))
        session = self._get_session()
        try:
            # ``_request`` is what ``request`` wraps in a context-manager object; calling it
            # directly measured ~3 % of the hot path. aiohttp is pinned below 4 for this.
            response = await session._request(
                method,
                target.url,
                headers=headers,
                data=body or None,
                allow_redirects=False,
                compress=None,
            )
        except aiohttp.ClientError as exc:
            raise _as_httpx_error(exc, None) from exc
        return _AiohttpWire(response)

    async def aclose(self) -> None:
        """Close the session and every pooled connection."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _networks(value: str | Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    if isinstance(value, str):
        return parse_networks(value)
    return tuple(
        ipaddress.ip_network(item, strict=False) if isinstance(item, str) else item
        for item in value
    )


def _blocked(target: _Target) -> str:
    return f"{target.url.host} {target.problem}"


def _as_httpx_error(exc: aiohttp.ClientError, request: httpx.Request | None) -> httpx.HTTPError:
    """aiohttp's failure as the httpx exception a caller of any httpx transport expects."""
    message = str(exc)
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(
        exc.os_error, BlockedAddressError
    ):
        return BlockedDestination(str(exc.os_error), request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return httpx.ReadError(message, request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message, request=request)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(message, request=request)
    return httpx.RemoteProtocolError(message, request=request)


async def _chunks(
    response: aiohttp.ClientResponse, request: httpx.Request | None
) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.content.iter_chunked(_CHUNK):
            yield chunk
    except aiohttp.ClientError as exc:
        raise _as_httpx_error(exc, request) from exc


def _release(response: aiohttp.ClientResponse) -> None:
    """Return a fully read connection to the pool; drop one read only in part."""
    if response.content.at_eof():
        response.release()
    else:
        response.close()


class _AiohttpWire:
    __slots__ = ("_response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def content_length(self) -> int | None:
        return self._response.content_length

    def header(self, name: str) -> str | None:
        return self._response.headers.get(name)

    async def read_prefix(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        try:
            while size < limit:
                chunk = await self._response.content.read(limit - size)
                if not chunk:
                    break
                parts.append(chunk)
                size += len(chunk)
        except aiohttp.ClientError as exc:
            raise _as_httpx_error(exc, None) from exc
        return b"".join(parts)

    async def read(self, cap: int) -> bytes | None:
        declared = self._response.content_length
        if declared is not None and declared <= cap:
            # aiohttp stops at the declared length, so the cap already holds: one read.
            try:
                return await self._response.read()
            except aiohttp.ClientError as exc:
                raise _as_httpx_error(exc, None) from exc
        return await read_capped(_chunks(self._response, None), declared, cap)

    async def aclose(self) -> None:
        _release(self._response)


class _AiohttpStream(httpx.AsyncByteStream):
    """A response body read straight from aiohttp, raw (never decompressed)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in _chunks(self._response, self._request):
            yield chunk

    async def aclose(self) -> None:
        """Return a fully read connection to the pool; drop one read only in part."""
        _release(self._response)
