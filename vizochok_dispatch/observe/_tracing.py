"""OpenTelemetry spans of outgoing calls, through ``opentelemetry-api`` only.

Spans go to the host's tracer provider (``opentelemetry.trace.set_tracer_provider``, or the
one passed to :class:`Tracing`).  While none is installed, :meth:`Tracing.tracer` says so
with one check and the call path makes no span at all (an API no-op span still costs a few
microseconds).  The attempt spans follow the HTTP client semantic conventions (span name =
method, ``http.request.method``, ``server.address``, ``server.port``, ``url.full`` without
query or user info, ``http.response.status_code``, ``error.type``,
``http.request.resend_count``), and the request carries the W3C ``traceparent`` of the
attempt span (the API's global propagator), so a tenant's own tracing can join the trace.

Attribute values are fixed words, numbers, ids the dispatcher made (tenant, delivery, event,
endpoint ids) and the URL without its query: never a header, secret, signature or body.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, MutableMapping
from contextlib import nullcontext
from typing import Final
from urllib.parse import urlsplit

from opentelemetry import propagate, trace
from opentelemetry.trace import (
    NoOpTracerProvider,
    ProxyTracerProvider,
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
)
from opentelemetry.util.types import AttributeValue

from .._version import __version__

#: The instrumentation scope of every span.
SCOPE: Final = "vizochok_dispatch"
_MAX_CACHED_URLS: Final = 10_000
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
#: What ``with`` uses when no span is made: reusable, so the untraced path allocates nothing.
NO_SPAN: Final = nullcontext()
CLIENT: Final = SpanKind.CLIENT
INTERNAL: Final = SpanKind.INTERNAL


def url_without_query(url: str) -> str:
    """``url`` without its query, fragment and user info: what ``url.full`` may show."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path}"


class Tracing:
    """Where spans go: ``provider`` (default: the global one, so a provider the host installs
    later is used, from at most ``recheck_seconds`` after); ``enabled=False`` makes none."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        provider: TracerProvider | None = None,
        recheck_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self._provider = provider
        self._tracer: Tracer | None = None
        self._recheck_seconds = recheck_seconds
        self._clock = clock
        #: While no SDK is installed: when to look at the global provider again (looking
        #: costs a few environment reads, too much for every call).
        self._next_look = float("-inf")
        self._urls: dict[str, dict[str, AttributeValue]] = {}

    def tracer(self) -> Tracer | None:
        """The tracer to use now, or ``None`` when spans would go nowhere (no SDK installed,
        or tracing off): then the caller makes none."""
        if self._tracer is not None or not self.enabled:
            return self._tracer if self.enabled else None
        now = self._clock()
        if now < self._next_look:
            return None
        provider = self._provider if self._provider is not None else trace.get_tracer_provider()
        if isinstance(provider, ProxyTracerProvider | NoOpTracerProvider):
            self._next_look = now + self._recheck_seconds
            return None
        # A real provider stays: the API lets the global one be set only once.
        self._tracer = provider.get_tracer(SCOPE, __version__)
        return self._tracer

    def request_attributes(self, method: str, url: str, attempt: int) -> dict[str, AttributeValue]:
        """The HTTP client attributes known before a request is sent."""
        attributes = dict(self._url_attributes(url))
        attributes["http.request.method"] = method
        attributes["vizochok.attempt"] = attempt
        if attempt > 1:
            attributes["http.request.resend_count"] = attempt - 1
        return attributes

    def _url_attributes(self, url: str) -> Mapping[str, AttributeValue]:
        cached = self._urls.get(url)
        if cached is None:
            cached = {"url.full": url_without_query(url)}
            try:
                parts = urlsplit(url)
                if parts.hostname:
                    cached["server.address"] = parts.hostname
                port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
                if port is not None:
                    cached["server.port"] = port
            except ValueError:
                pass
            if len(self._urls) >= _MAX_CACHED_URLS:
                self._urls.clear()
            self._urls[url] = cached
        return cached


def inject_traceparent(headers: MutableMapping[str, str]) -> None:
    """Add the current span's W3C trace context (``traceparent``) through the API's global
    propagator."""
    propagate.inject(headers)


def end_request(span: Span, status: int | None, detail: str | None, reason: str | None) -> None:
    """What came of a request: its status, and the failure detail when it failed."""
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if detail is not None:
        # error.type: the status code for an answer that is a failure, else the detail
        span.set_attribute(
            "error.type", str(status) if detail == "http_status" and status else detail
        )
        span.set_attribute("vizochok.failure_detail", detail)
        if reason is not None:
            span.set_attribute("vizochok.failure_reason", reason)
        span.set_status(Status(StatusCode.ERROR, detail))


def end_call(span: Span, detail: str | None) -> None:
    """What came of a whole call (or delivery): its failure detail, if it failed."""
    if detail is not None:
        span.set_attribute("error.type", detail)
        span.set_attribute("vizochok.failure_detail", detail)
        span.set_status(Status(StatusCode.ERROR, detail))
