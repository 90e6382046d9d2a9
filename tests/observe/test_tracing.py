"""OpenTelemetry spans (issue 13): a call span around its attempt spans, HTTP semantic
convention attributes, the W3C ``traceparent`` the tenant receives, event attempt spans,
nothing secret in any attribute, and no span at all while no SDK is installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.events.support import example
from vizochok_dispatch.observe import Tracing, url_without_query

from .support import QUERY_CANARY, SECRET, observed

pytestmark = pytest.mark.loopback


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Tracing:
    """Spans to an SDK provider of the test's own (the global one is left alone)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider=provider)


def traceparent_of(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def everything_in(spans: tuple[ReadableSpan, ...]) -> str:
    return repr([(s.name, dict(s.attributes or {}), s.status.description) for s in spans])


async def test_a_call_span_holds_its_attempt_spans_and_the_tenant_gets_traceparent(
    tmp_path: Path, exporter: InMemorySpanExporter, tracing: Tracing
):
    """A 500 retried once: one call span, two client attempt spans under it with the HTTP
    attributes, and each request carried its own attempt span's traceparent."""
    async with observed(tmp_path, own_tracing=tracing) as o:
        await o.configure("t-down", o.server.url(f"/down?token={QUERY_CANARY}"))
        assert await o.products("t-down") == "http_status"
        received = list(o.server.received)
        port = o.server.port
    spans = exporter.get_finished_spans()
    calls = [s for s in spans if s.name == "webhook products"]
    attempts = sorted((s for s in spans if s.name == "POST"), key=lambda s: s.start_time or 0)
    assert len(calls) == 1 and len(attempts) == 2
    call = calls[0]
    assert call.kind is SpanKind.INTERNAL
    assert call.attributes is not None
    assert call.attributes["vizochok.webhook"] == "products"
    assert call.attributes["vizochok.tenant_id"] == "t-down"
    assert call.attributes["vizochok.failure_detail"] == "http_status"
    assert call.attributes["vizochok.attempts"] == 2
    assert call.status.status_code is StatusCode.ERROR
    for number, span in enumerate(attempts, start=1):
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None and span.parent.span_id == call.context.span_id
        attributes = dict(span.attributes or {})
        assert attributes["http.request.method"] == "POST"
        assert attributes["server.address"] == "127.0.0.1"
        assert attributes["server.port"] == port
        assert attributes["url.full"] == f"http://127.0.0.1:{port}/down"
        assert attributes["http.response.status_code"] == 500
        assert attributes["error.type"] == "500"
        assert attributes["vizochok.failure_detail"] == "http_status"
        assert attributes["vizochok.attempt"] == number
        assert span.status.status_code is StatusCode.ERROR
    assert "http.request.resend_count" not in dict(attempts[0].attributes or {})
    assert dict(attempts[1].attributes or {})["http.request.resend_count"] == 1
    assert [r.headers["traceparent"] for r in received] == [traceparent_of(s) for s in attempts]
    text = everything_in(spans)
    assert QUERY_CANARY not in text
    assert SECRET not in text
    assert "signature" not in text.lower()
    assert '"skus"' not in text, "no request body"


async def test_a_successful_call_has_ok_spans_and_a_refused_connection_its_detail(
    tmp_path: Path, exporter: InMemorySpanExporter, tracing: Tracing
):
    """Success: status 200 and no error; a refused connection: error.type connect_error and
    no status code."""
    async with observed(tmp_path, own_tracing=tracing) as o:
        await o.configure("t-ok", o.server.url("/ok"))
        await o.configure("t-refused", "http://127.0.0.1:1/nothing-listens")
        assert await o.products("t-ok") is None
        assert await o.products("t-refused") == "connect_error"
    by_tenant = {}
    for span in exporter.get_finished_spans():
        if span.name == "webhook products":
            by_tenant[(span.attributes or {})["vizochok.tenant_id"]] = span
    ok, refused = by_tenant["t-ok"], by_tenant["t-refused"]
    assert ok.status.status_code is StatusCode.UNSET
    assert "vizochok.failure_detail" not in (ok.attributes or {})
    children = {s.parent.span_id: s for s in exporter.get_finished_spans() if s.parent is not None}
    ok_attempt = dict(children[ok.context.span_id].attributes or {})
    assert ok_attempt["http.response.status_code"] == 200
    assert "error.type" not in ok_attempt
    refused_attempt = dict(children[refused.context.span_id].attributes or {})
    assert refused_attempt["error.type"] == "connect_error"
    assert "http.response.status_code" not in refused_attempt
    assert refused_attempt["server.port"] == 1


async def test_event_attempts_get_a_client_span_and_send_traceparent(
    tmp_path: Path, exporter: InMemorySpanExporter, tracing: Tracing
):
    """An event delivery attempt is a client span with the event's ids, and the endpoint
    receives its traceparent."""
    async with observed(tmp_path, own_tracing=tracing) as o:
        endpoint = await o.dispatcher.events.create_endpoint(
            "t-events", url=o.server.url(f"/ok?token={QUERY_CANARY}"), event_types=["order.*"]
        )
        event = await o.dispatcher.events.publish("t-events", "order.created", data=example())
        await o.dispatcher.events.drain(timeout=10)
        received = list(o.server.received)
    spans = [s for s in exporter.get_finished_spans() if s.name == "POST"]
    assert len(spans) == 1
    attributes = dict(spans[0].attributes or {})
    assert attributes["vizochok.event_id"] == event.id
    assert attributes["vizochok.event_type"] == "order.created"
    assert attributes["vizochok.endpoint_id"] == endpoint.id
    assert attributes["vizochok.tenant_id"] == "t-events"
    assert attributes["http.response.status_code"] == 200
    assert attributes["url.full"] == f"http://127.0.0.1:{o.server.port}/ok"
    assert received[0].headers["traceparent"] == traceparent_of(spans[0])
    text = everything_in(tuple(spans))
    assert QUERY_CANARY not in text
    assert endpoint.secret is not None and endpoint.secret not in text


async def test_without_an_sdk_no_span_is_made_and_no_traceparent_sent(tmp_path: Path):
    """The global provider is the API's no-op proxy: nothing is traced, nothing added."""
    tracing = Tracing()
    assert tracing.tracer() is None
    async with observed(tmp_path, own_tracing=tracing) as o:
        await o.configure("t-ok", o.server.url("/ok"))
        assert await o.products("t-ok") is None
        received = list(o.server.received)
    assert "traceparent" not in received[0].headers


async def test_tracing_off_makes_no_span_even_with_a_provider(
    tmp_path: Path, exporter: InMemorySpanExporter
):
    """VIZOCHOK_TRACING=false (Tracing(enabled=False)): no span, no traceparent."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with observed(tmp_path, own_tracing=Tracing(enabled=False, provider=provider)) as o:
        await o.configure("t-ok", o.server.url("/ok"))
        await o.products("t-ok")
        received = list(o.server.received)
    assert exporter.get_finished_spans() == ()
    assert "traceparent" not in received[0].headers


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://shop.example/hook?token=abc#frag", "https://shop.example/hook"),
        ("https://user:pass@shop.example:8443/a/b?x=1", "https://shop.example:8443/a/b"),
        ("http://[::1]:8080/p", "http://[::1]:8080/p"),
    ],
)
def test_url_full_drops_query_fragment_and_user_info(url: str, shown: str):
    """url.full never carries a query, a fragment or credentials."""
    assert url_without_query(url) == shown
