"""Observability: Prometheus metrics and OpenTelemetry spans for every outgoing call.

It imports nothing else of the package: the dispatcher (``webhooks``), the event deliverer
(``events``) and the admin API feed it and read it.  ``Metrics`` holds its own
``CollectorRegistry`` (never the ``prometheus_client`` global one, unless the host passes it);
spans go through the ``opentelemetry-api`` global tracer provider and cost next to nothing
while the host has installed no SDK.
"""

from __future__ import annotations

from ._metrics import (
    CONTENT_TYPE,
    LATENCY_BUCKETS,
    Backlog,
    CacheStats,
    CallLogStats,
    Metrics,
    WebhookSeries,
    detail_label,
)
from ._tracing import (
    CLIENT,
    INTERNAL,
    NO_SPAN,
    Tracing,
    end_call,
    end_request,
    inject_traceparent,
    url_without_query,
)

__all__ = [
    "CLIENT",
    "CONTENT_TYPE",
    "INTERNAL",
    "LATENCY_BUCKETS",
    "NO_SPAN",
    "Backlog",
    "CacheStats",
    "CallLogStats",
    "Metrics",
    "Tracing",
    "WebhookSeries",
    "detail_label",
    "end_call",
    "end_request",
    "inject_traceparent",
    "url_without_query",
]
