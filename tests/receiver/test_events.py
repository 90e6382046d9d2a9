"""The receiver kit's event webhooks (docs/webhooks.md §8): ``verify_request`` accepts an event
request, ``parse_event`` gives the typed model, and ``create_receiver_app(on_event=...)`` calls
the tenant once per event id, answering a duplicate 200 again."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from vizochok_dispatch.contract._events import event_body
from vizochok_dispatch.contract._signing import event_headers
from vizochok_dispatch.events._catalog import EVENT_TYPES
from vizochok_dispatch.receiver import (
    DEFAULT_EVENTS_PATH,
    AnalyticsDailyEvent,
    Event,
    InMemoryIdempotencyStore,
    OrderCreated,
    OrderCreatedEvent,
    ProductViewedEvent,
    RetryLater,
    SignatureMismatch,
    UnknownEvent,
    create_receiver_app,
    parse_event,
    receiver_routes,
    verify_request,
)
from vizochok_dispatch.receiver._parse import InvalidRequest
from vizochok_dispatch.receiver.testing import serve_on_loopback

from ._support import NOW, REPO_ROOT, SECRET
from .test_packages import _run, _tool

EVENTS_PATH = "/api/vizochok/events"
WHEN = datetime(2026, 1, 31, 10, 30, 1, 234000, tzinfo=UTC)


def _body(event_type: str = "order.created", event_id: str = "evt_0001", **data: Any) -> bytes:
    return event_body(event_id, event_type, WHEN, {**EVENT_TYPES[event_type].example, **data})


def _headers(
    body: bytes,
    *,
    event_id: str = "evt_0001",
    event_type: str = "order.created",
    attempt: int = 1,
    timestamp: int = NOW,
    secret: str = SECRET,
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        **event_headers(
            "vizochok",
            secret,
            event_id=event_id,
            event_type=event_type,
            attempt=attempt,
            timestamp=timestamp,
            body=body,
        ),
    }


class EventTenant:
    """A tenant that records each event it handled; ``fail`` scripts the first calls."""

    def __init__(self, fail: list[BaseException] | None = None) -> None:
        self.events: list[Event | UnknownEvent] = []
        self.fail = list(fail or [])

    async def on_event(self, event: Event | UnknownEvent) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.events.append(event)

    def app(self, **kwargs: Any) -> Any:
        return create_receiver_app(
            secret=SECRET,
            check_products=None,
            cart_operation=None,
            load_cart=None,
            on_event=self.on_event,
            clock=lambda: float(NOW),
            **kwargs,
        )


@pytest.fixture
def tenant() -> EventTenant:
    return EventTenant()


@pytest.fixture
async def client(tenant: EventTenant) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=tenant.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://tenant.test") as client:
        yield client


def test_the_default_events_path():
    """The events endpoint sits beside the others under /api/vizochok/."""
    assert DEFAULT_EVENTS_PATH == EVENTS_PATH


def test_verify_request_accepts_an_event_request():
    """An event request signed with the vizochok scheme verifies with the synchronous
    verifier; the delivery id is the event id and the attempt is read."""
    body = _body()
    verified = verify_request(_headers(body, attempt=2), body, SECRET, now=NOW)
    assert verified.delivery_id == "evt_0001"
    assert verified.attempt == 2
    assert verified.timestamp == NOW
    with pytest.raises(SignatureMismatch):
        verify_request(_headers(body), body.replace(b"Rahim", b"Rahiz"), SECRET, now=NOW)


@pytest.mark.parametrize("event_type", list(EVENT_TYPES))
def test_parse_event_gives_each_type_its_model(event_type):
    """Each catalog example parses into its own typed model with the same data."""
    event = parse_event(_body(event_type))
    entry = EVENT_TYPES[event_type]
    assert event.event == event_type
    assert type(event).__name__ == entry.model.__name__ + "Event"
    assert isinstance(event.data, entry.model)
    assert event.data.model_dump() == entry.example
    assert event.id == "evt_0001"
    assert event.timestamp == WHEN


def test_parse_event_reads_amounts_exactly():
    """Amounts arrive as exact Decimals, times as aware UTC datetimes."""
    event = parse_event(_body(subtotal=Decimal("1950.1234")))
    assert isinstance(event, OrderCreatedEvent)
    assert event.data.subtotal == Decimal("1950.1234")
    assert event.data.items[1].unit_price == Decimal(350)
    assert event.data.created_at == datetime(2026, 1, 31, 10, 30, tzinfo=UTC)


def test_parse_event_ignores_unknown_fields():
    """A field a newer platform adds is ignored, in the envelope and in data."""
    document = json.loads(_body("product.viewed"))
    document["new_envelope_field"] = 1
    document["data"]["new_field"] = {"x": 1}
    event = parse_event(json.dumps(document).encode())
    assert isinstance(event, ProductViewedEvent)
    assert "new_field" not in event.data.model_dump()


def test_an_unknown_event_type_arrives_as_unknown_event():
    """A type this version does not know is passed on with its data as plain JSON."""
    body = b'{"id":"evt_9","event":"invoice.paid","timestamp":"2026-01-31T10:30:00.000Z",'
    body += b'"data":{"amount":12.5}}'
    event = parse_event(body)
    assert isinstance(event, UnknownEvent)
    assert (event.event, event.data) == ("invoice.paid", {"amount": 12.5})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[1]", "body"),
        (b'{"id":"evt_1","event":"order.created","timestamp":"x","data":{}}', "timestamp"),
        (_body(event_id="1234"), "id"),
        (_body(subtotal=Decimal("1.00001")), "data.subtotal"),
        (
            _body(items=[{"sku": "a", "name": "A", "quantity": 1, "unit_price": -1}]),
            "data.items[0]",
        ),
        (_body(status="shipped"), "data.status"),
    ],
)
def test_parse_event_names_the_broken_field(body, field):
    """A body that breaks the wire format is refused naming the field."""
    with pytest.raises(InvalidRequest) as caught:
        parse_event(body)
    assert any(error.field.startswith(field) for error in caught.value.errors), caught.value


async def test_on_event_gets_the_typed_event(client, tenant):
    """A verified event reaches on_event typed; the answer is 200 with the event id."""
    body = _body()
    response = await client.post(EVENTS_PATH, content=body, headers=_headers(body))
    assert response.status_code == 200
    assert response.json() == {"received": "evt_0001"}
    [event] = tenant.events
    assert isinstance(event, OrderCreatedEvent)
    assert isinstance(event.data, OrderCreated)
    assert event.data.items[0].sku == "HP-BT-100"


async def test_a_duplicate_is_answered_without_calling_on_event(client, tenant):
    """The same event again (a later attempt, fresh signature) gets 200 and is not handled
    twice."""
    body = _body()
    first = await client.post(EVENTS_PATH, content=body, headers=_headers(body))
    again = await client.post(
        EVENTS_PATH, content=body, headers=_headers(body, attempt=2, timestamp=NOW - 60)
    )
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replay"] == "true"
    assert len(tenant.events) == 1


async def test_another_event_is_handled(client, tenant):
    """Different event ids are different events."""
    for event_id in ("evt_a", "evt_b"):
        body = _body(event_id=event_id)
        response = await client.post(
            EVENTS_PATH, content=body, headers=_headers(body, event_id=event_id)
        )
        assert response.status_code == 200
    assert [event.id for event in tenant.events] == ["evt_a", "evt_b"]


async def test_the_same_id_with_another_body_is_refused(client, tenant):
    """An event id reused for a different body is a 409, not handled."""
    body = _body()
    await client.post(EVENTS_PATH, content=body, headers=_headers(body))
    other = _body(subtotal=1)
    response = await client.post(EVENTS_PATH, content=other, headers=_headers(other))
    assert response.status_code == 409
    assert response.json()["error"] == "event_id_reused"
    assert len(tenant.events) == 1


@pytest.mark.parametrize(
    ("failure", "status"), [(RetryLater("busy"), 503), (RuntimeError("bug"), 500)]
)
async def test_a_failed_handler_lets_the_retry_run(failure, status):
    """RetryLater answers 503 and a crash 500; the claim is released, so the platform's next
    attempt is handled."""
    tenant = EventTenant(fail=[failure])
    transport = httpx.ASGITransport(app=tenant.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t.test") as client:
        body = _body()
        first = await client.post(EVENTS_PATH, content=body, headers=_headers(body))
        second = await client.post(EVENTS_PATH, content=body, headers=_headers(body, attempt=2))
    assert first.status_code == status
    assert second.status_code == 200
    assert "Idempotent-Replay" not in second.headers
    assert len(tenant.events) == 1


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"secret": "whsec_another_secret_entirely_00"}, 401, "signature_mismatch"),
        ({"timestamp": NOW - 301}, 401, "timestamp_expired"),
        ({"event_id": "evt_other"}, 400, "delivery_id_mismatch"),
    ],
)
async def test_a_refused_event_is_not_handled(client, tenant, change, status, code):
    """A bad signature, a stale timestamp or a delivery id other than the body's id is
    refused and on_event is not called."""
    body = _body()
    response = await client.post(EVENTS_PATH, content=body, headers=_headers(body, **change))
    assert response.status_code == status
    assert response.json()["error"] == code
    assert tenant.events == []


async def test_invalid_event_data_is_a_422_naming_the_field(client, tenant):
    """Verified data that breaks its type's model is a 422 listing the fields."""
    body = _body(subtotal=-5, customer_phone="x" * 40)
    response = await client.post(EVENTS_PATH, content=body, headers=_headers(body))
    assert response.status_code == 422
    fields = {item["field"] for item in response.json()["fields"]}
    assert fields == {"data.subtotal", "data.customer_phone"}
    assert tenant.events == []


async def test_an_events_only_receiver_serves_only_events(client):
    """With check_products and cart_operation None, only the events route exists."""
    response = await client.post("/api/vizochok/check-products", content=b"{}")
    assert response.status_code == 404


def test_a_receiver_needs_a_handler():
    """Routes with no callback at all are refused at start-up."""
    with pytest.raises(ValueError, match="at least one of"):
        receiver_routes(secret=SECRET, check_products=None, cart_operation=None, load_cart=None)


async def test_a_shared_store_deduplicates_across_apps():
    """Two workers sharing one idempotency store handle an event once between them."""
    store = InMemoryIdempotencyStore()
    tenant = EventTenant()
    body = _body()
    for attempt in (1, 2):
        transport = httpx.ASGITransport(app=tenant.app(idempotency=store))
        async with httpx.AsyncClient(transport=transport, base_url="http://t.test") as client:
            response = await client.post(
                EVENTS_PATH, content=body, headers=_headers(body, attempt=attempt)
            )
            assert response.status_code == 200
    assert len(tenant.events) == 1


@pytest.mark.loopback
async def test_an_event_over_loopback():
    """A signed event POSTed over 127.0.0.1 to the kit under uvicorn is handled once."""
    tenant = EventTenant()
    async with serve_on_loopback(tenant.app()) as base_url, httpx.AsyncClient() as client:
        body = _body("analytics.daily")
        headers = _headers(body, event_type="analytics.daily")
        first = await client.post(base_url + EVENTS_PATH, content=body, headers=headers)
        again = await client.post(base_url + EVENTS_PATH, content=body, headers=headers)
    assert (first.status_code, again.status_code) == (200, 200)
    [event] = tenant.events
    assert isinstance(event, AnalyticsDailyEvent)
    assert event.data.revenue == Decimal("58210.50")


# -- the examples' event vector ------------------------------------------------------------

EXAMPLE_VECTORS = [
    REPO_ROOT / "receivers" / "node" / "test" / "event_vector.json",
    REPO_ROOT / "receivers" / "go" / "testdata" / "event_vector.json",
]


def _vector_headers(vector: dict[str, Any], scheme: str) -> dict[str, str]:
    body = vector["body_utf8"].encode()
    envelope = json.loads(body)
    return event_headers(
        scheme,
        vector["secret"],
        event_id=envelope["id"],
        event_type=envelope["event"],
        attempt=int(vector["headers"]["X-VIZOCHOK-Attempt"]),
        timestamp=vector["now"],
        body=body,
    )


@pytest.mark.parametrize("path", EXAMPLE_VECTORS, ids=["node", "go"])
def test_the_examples_event_vector_is_what_the_package_signs(path):
    """The Node and Go packages' event vector holds the package's own headers for its body,
    and the Python kit verifies and parses it."""
    vector = json.loads(path.read_text("utf-8"))
    assert vector["headers"] == _vector_headers(vector, "vizochok")
    assert vector["standard_webhooks_headers"] == _vector_headers(vector, "standard-webhooks")
    body = vector["body_utf8"].encode()
    verified = verify_request(vector["headers"], body, vector["secret"], now=vector["now"])
    assert verified.delivery_id == parse_event(body).id
    assert isinstance(parse_event(body), OrderCreatedEvent)
    assert path.read_text("utf-8") == EXAMPLE_VECTORS[0].read_text("utf-8")


def _fresh_vector(tmp_path: Path) -> Path:
    """Another event (another type, secret and time) signed now by the package."""
    secret = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
    body = _body("product.added", event_id="evt_fresh-01", name="Молоко 2,5 %")
    vector: dict[str, Any] = {"secret": secret, "now": NOW, "body_utf8": body.decode()}
    vector["headers"] = event_headers(
        "vizochok",
        secret,
        event_id="evt_fresh-01",
        event_type="product.added",
        attempt=3,
        timestamp=NOW,
        body=body,
    )
    vector["standard_webhooks_headers"] = _vector_headers(vector, "standard-webhooks")
    path = tmp_path / "event_vector.json"
    path.write_text(json.dumps(vector, ensure_ascii=False), "utf-8")
    return path


@pytest.mark.parametrize("which", ["committed", "fresh"])
def test_node_example_verifies_an_event(which, tmp_path):
    """receivers/node's event tests verify the event vector with both schemes and refuse
    changed ones."""
    node = _tool("node")
    env = {"VIZOCHOK_EVENT_VECTOR": str(_fresh_vector(tmp_path))} if which == "fresh" else {}
    output = _run([node, "--test", "test/events.test.js"], REPO_ROOT / "receivers" / "node", env)
    assert "# pass 9\n" in output and "# fail 0\n" in output, output


@pytest.mark.parametrize("which", ["committed", "fresh"])
def test_go_example_verifies_an_event(which, tmp_path):
    """receivers/go's event tests verify the event vector with both schemes (offline)."""
    go = _tool("go")
    env = {"GOPROXY": "off", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    if which == "fresh":
        env["VIZOCHOK_EVENT_VECTOR"] = str(_fresh_vector(tmp_path))
    if not any(os.environ.get(name) for name in ("GOCACHE", "XDG_CACHE_HOME", "HOME")):
        env["GOCACHE"] = str(tmp_path / "gocache")
    output = _run(
        [go, "test", "-count=1", "-v", "-run", "TestEventVector", "./..."],
        REPO_ROOT / "receivers" / "go",
        env,
    )
    assert output.count("--- PASS: TestEventVector") == 2
    assert "FAIL" not in output
