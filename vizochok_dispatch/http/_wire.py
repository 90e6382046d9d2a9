"""The narrow interface the delivery layer sends through, and its httpx adapter.

Building an ``httpx.Request`` and ``httpx.Response`` per call cost a third of the dispatcher's
CPU on the hot path, so the default transport is driven through this interface directly
(:meth:`AiohttpTransport.send_wire`).  Any other ``httpx.AsyncBaseTransport`` (respx in the
tests) or an ``httpx.AsyncClient`` goes through :func:`httpx_sender`, which keeps httpx's
types and exceptions.  Both raise httpx's exceptions, so the delivery layer maps failures
in one place.

Both also send the same request target for a URL (:func:`wire_url`): the configured path and
query byte for byte, never decoded or re-encoded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Final, Protocol

import httpx

_MAX_CACHED_URLS: Final = 10_000


def wire_url(url: str) -> str:
    """``url`` exactly as it goes out: the one form both senders send unchanged.

    The path and query keep the configured bytes: percent-escapes (``%2F`` stays ``%2F``,
    in the case written), ``+``, ``'`` and every other character a URI allows are sent as
    written.  Only what a URI cannot carry is percent-encoded as UTF-8 (a space, ``"``,
    ``<``, ``>``, non-ASCII), the fragment is dropped (it is never sent), ``.`` and ``..``
    path segments are resolved (RFC 3986 §5.2.4, as every HTTP client does), an empty ``?``
    is dropped, and the host is lower-cased.  A URL saved now holds none of what is rewritten
    (``tenants._config.target_problems`` refuses it); one stored before that rule goes out
    in this normalised form.  httpx's URL parser does this; aiohttp is then handed the
    result as already encoded, so both send it as is.
    A URL httpx cannot parse is returned unchanged (its attempt fails as ``connect_error``).
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return url
    if parsed.fragment:
        parsed = parsed.copy_with(fragment=None)
    text = str(parsed)
    if text.endswith("#"):
        text = text[:-1]
    if not parsed.query and text.endswith("?"):
        text = text[:-1]
    return text


class BlockedDestination(httpx.ConnectError):
    """The SSRF guard refused every address the host resolved to; nothing was sent."""


class WireResponse(Protocol):
    """A response whose body has not been read yet."""

    @property
    def status(self) -> int:
        """The HTTP status code."""

    @property
    def content_length(self) -> int | None:
        """The declared body length, when the server declared one."""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""

    async def read(self, cap: int) -> bytes | None:
        """The whole raw body (never decompressed), or ``None`` as soon as it passes ``cap``."""

    async def read_prefix(self, limit: int) -> bytes:
        """The first ``limit`` bytes of the raw body (all of it when shorter); no more is read."""

    async def aclose(self) -> None:
        """Release the connection (or drop it, if the body was not read to the end)."""


#: ``send(method, url, headers, body)``: one HTTP exchange up to the response headers.
Sender = Callable[[str, str, Mapping[str, str], bytes], Awaitable[WireResponse]]


def declared_length(value: str | None) -> int | None:
    """A Content-Length header's value, or ``None`` when absent or malformed."""
    return int(value) if value is not None and value.isdigit() else None


async def read_capped(chunks: AsyncIterator[bytes], declared: int | None, cap: int) -> bytes | None:
    """Read chunks until the end, or stop (``None``) the moment the total passes ``cap``.

    A declared length over the cap stops before reading anything, so a 50 MiB answer costs
    no more memory than a small one.
    """
    if declared is not None and declared > cap:
        return None
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > cap:
            return None
        parts.append(chunk)
    return b"".join(parts)


async def read_first(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The first ``limit`` bytes of a body read in chunks; reading stops once they are in."""
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in chunks:
            parts.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
    return b"".join(parts)[:limit]


class _HttpxWire:
    __slots__ = ("_response",)

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def content_length(self) -> int | None:
        return declared_length(self._response.headers.get("content-length"))

    def header(self, name: str) -> str | None:
        value = self._response.headers.get(name)
        return None if value is None else str(value)

    async def read(self, cap: int) -> bytes | None:
        return await read_capped(self._chunks(), self.content_length, cap)

    async def read_prefix(self, limit: int) -> bytes:
        return await read_first(self._chunks(), limit)

    def _chunks(self) -> AsyncIterator[bytes]:
        # The raw stream: no decoding, and it serves both real and pre-read (mock) bodies.
        stream = self._response.stream
        assert isinstance(stream, httpx.AsyncByteStream)  # noqa: S101 - async transports only
        return aiter(stream)

    async def aclose(self) -> None:
        await self._response.aclose()


def httpx_sender(
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    client: httpx.AsyncClient | None = None,
) -> Sender:
    """Send through an httpx transport or client; redirects are never followed."""
    urls: dict[str, httpx.URL] = {}

    async def send(method: str, url: str, headers: Mapping[str, str], body: bytes) -> WireResponse:
        parsed = urls.get(url)
        if parsed is None:
            if len(urls) >= _MAX_CACHED_URLS:
                urls.clear()
            parsed = urls[url] = httpx.URL(wire_url(url))
        request = httpx.Request(method, parsed, headers=headers, content=body or None)
        if client is not None:
            response = await client.send(request, stream=True, follow_redirects=False)
        else:
            assert transport is not None  # noqa: S101 - one of the two is required
            response = await transport.handle_async_request(request)
        return _HttpxWire(response)

    if (transport is None) == (client is None):
        raise ValueError("httpx_sender needs exactly one of transport or client")
    return send
