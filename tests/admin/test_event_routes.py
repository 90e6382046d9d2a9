"""The admin API's event routes: endpoints (create shows the secret once, PATCH, status,
DELETE), the event catalog, the delivery log with filters and cursors, a delivery's detail;
each route serves the key's tenant only (another tenant's ids are 404 like unknown ones)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from vizochok_dispatch import EVENT_TYPES, DispatchSettings
from vizochok_dispatch.events._catalog import validate_event_data
from vizochok_dispatch.events._store import MANUAL_DISABLE_REASON

from .support import Admin, absent, admin_settings_for, bearer

ENDPOINTS = "/api/v1/admin/event-endpoints"
TYPES = "/api/v1/admin/event-types"
DELIVERIES = "/api/v1/admin/deliveries"
HOOK = "https://shop-a.example/events"
FAILING = "https://shop-a.example/failing"


@pytest.fixture
def admin_settings(database_url: str) -> DispatchSettings:
    return admin_settings_for(database_url, event_worker="off", event_retry_schedule="none")


async def _key(admin: Admin, tenant_id: str) -> str:
    _, issued = await admin.tenant(tenant_id)
    return issued.key


async def _create(admin: Admin, key: str, **body: Any) -> dict[str, Any]:
    response = await admin.client.post(
        ENDPOINTS, headers=bearer(key), json={"url": HOOK, "event_types": ["order.*"], **body}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _example(event_type: str = "order.created") -> dict[str, Any]:
    return EVENT_TYPES[event_type].example


async def test_creation_shows_the_secret_once_then_it_is_masked(admin: Admin) -> None:
    """POST event-endpoints: 201 with the full secret; GET (one, list) masks it afterwards."""
    key = await _key(admin, "shop-a")
    created = await _create(admin, key, description="ERP")
    secret = created["secret"]
    assert secret.startswith("whsec_") and created["secret_masked"] == f"whsec_…{secret[-4:]}"
    assert (created["status"], created["enabled"], created["disabled_reason"]) == (
        "active",
        True,
        None,
    )
    assert created["signature_scheme"] == "vizochok" and created["timeout_seconds"] == 15.0
    one = await admin.client.get(f"{ENDPOINTS}/{created['id']}", headers=bearer(key))
    listed = await admin.client.get(ENDPOINTS, headers=bearer(key))
    assert one.status_code == listed.status_code == 200
    assert one.json() == {**created, "secret": None}
    assert listed.json() == {"endpoints": [{**created, "secret": None}]}
    assert absent(secret, one.text, listed.text)


async def test_creation_follows_the_endpoint_rules(admin: Admin) -> None:
    """POST event-endpoints: unknown types listed with the known ones, the DNS check, bounds."""
    key = await _key(admin, "shop-a")
    admin.resolver.answers["inside.example"] = ["10.0.0.7"]
    response = await admin.client.post(
        ENDPOINTS,
        headers=bearer(key),
        json={"url": "https://inside.example/hooks", "event_types": ["order.*", "refund.created"]},
    )
    assert response.status_code == 422, response.text
    fields = {f["field"]: f["message"] for f in response.json()["error"]["fields"]}
    assert set(fields) == {"url", "event_types[1]"}
    assert fields["url"] == "resolves to a non-public address"
    assert "known: order.created" in fields["event_types[1]"]
    response = await admin.client.post(
        ENDPOINTS,
        headers=bearer(key),
        json={"url": HOOK, "event_types": ["*"], "timeout_seconds": 31, "signature_scheme": "x"},
    )
    assert response.status_code == 422
    assert {f["field"] for f in response.json()["error"]["fields"]} == {
        "timeout_seconds",
        "signature_scheme",
    }
    assert (await admin.client.get(ENDPOINTS, headers=bearer(key))).json() == {"endpoints": []}


async def test_a_list_entry_is_named_with_its_index_in_brackets(admin: Admin) -> None:
    """Field paths: a list entry is event_types[1] whether the shape or the rule refuses it."""
    key = await _key(admin, "shop-a")
    response = await admin.client.post(
        ENDPOINTS, headers=bearer(key), json={"url": HOOK, "event_types": ["order.*", 5]}
    )
    assert response.status_code == 422, response.text
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["event_types[1]"]


async def test_patch_changes_fields_and_status(admin: Admin) -> None:
    """PATCH event-endpoints/{id}: only what is sent changes; enabled false/true sets the status."""
    key = await _key(admin, "shop-a")
    created = await _create(admin, key)
    path = f"{ENDPOINTS}/{created['id']}"
    response = await admin.client.patch(
        path, headers=bearer(key), json={"event_types": ["*"], "enabled": False}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["event_types"], body["url"], body["status"]) == (["*"], HOOK, "disabled")
    assert body["disabled_reason"] == MANUAL_DISABLE_REASON and body["disabled_at"] is not None
    assert body["secret"] is None
    response = await admin.client.patch(path, headers=bearer(key), json={"enabled": True})
    assert (response.json()["status"], response.json()["disabled_at"]) == ("active", None)
    response = await admin.client.patch(path, headers=bearer(key), json={"url": None})
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == [{"field": "url", "message": "must not be null"}]
    response = await admin.client.patch(path, headers=bearer(key), json={"event_types": ["nope.*"]})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "event_types[0]"


async def test_delete_removes_the_endpoint(admin: Admin) -> None:
    """DELETE event-endpoints/{id}: 200, then the endpoint is 404 and gone from the list."""
    key = await _key(admin, "shop-a")
    created = await _create(admin, key)
    path = f"{ENDPOINTS}/{created['id']}"
    response = await admin.client.delete(path, headers=bearer(key))
    assert response.json() == {"id": created["id"], "deleted": True}
    assert (await admin.client.get(path, headers=bearer(key))).status_code == 404
    assert (await admin.client.delete(path, headers=bearer(key))).status_code == 404
    assert (await admin.client.get(ENDPOINTS, headers=bearer(key))).json() == {"endpoints": []}


async def test_the_catalog_lists_every_type_with_schema_and_example(admin: Admin) -> None:
    """GET event-types: every catalog type, its description, JSON Schema and a valid example."""
    key = await _key(admin, "shop-a")
    response = await admin.client.get(TYPES, headers=bearer(key))
    assert response.status_code == 200
    listed = json.loads(response.content, parse_float=Decimal)["event_types"]
    assert [entry["name"] for entry in listed] == list(EVENT_TYPES)
    for entry in listed:
        catalog = EVENT_TYPES[entry["name"]]
        assert entry["description"] == catalog.description
        assert entry["schema"] == catalog.json_schema()
        assert entry["schema"]["$schema"].startswith("https://json-schema.org/")
        assert validate_event_data(entry["name"], entry["example"]) == catalog.example


async def _log_of_two_endpoints(
    admin: Admin, router: respx.Router, key: str, tenant_id: str = "shop-a"
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    router.post(HOOK).respond(204)
    router.post(FAILING).respond(503, text="down for maintenance")
    good = await _create(admin, key)
    bad = await _create(admin, key, url=FAILING, event_types=["*"])
    events = []
    for _ in range(3):
        published = await admin.dispatcher.events.publish(
            tenant_id, "order.created", data=_example()
        )
        events.append(published.id)
        admin.time.now += 1
    chat = await admin.dispatcher.events.publish(
        tenant_id, "chat.session.created", data=_example("chat.session.created")
    )
    events.append(chat.id)
    await admin.dispatcher.events.drain(timeout=1)
    return good, bad, events


async def test_the_delivery_log_filters_and_pages(admin: Admin, router: respx.Router) -> None:
    """GET deliveries: newest first, every filter, next_cursor pages through each delivery once."""
    key = await _key(admin, "shop-a")
    good, bad, events = await _log_of_two_endpoints(admin, router, key)

    async def listing(**params: Any) -> dict[str, Any]:
        response = await admin.client.get(DELIVERIES, headers=bearer(key), params=params)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    everything = (await listing())["deliveries"]
    assert len(everything) == 7
    assert everything[0]["event_id"] == events[-1], "newest first"
    order = [(d["created_at"], d["id"]) for d in everything]
    assert order == sorted(order, reverse=True)
    assert {d["id"] for d in (await listing(status="failed"))["deliveries"]} == {
        d["id"] for d in everything if d["endpoint_id"] == bad["id"]
    }
    failed = (await listing(status="failed"))["deliveries"][0]
    assert (failed["attempt_count"], failed["last_status"], failed["detail"]) == (
        1,
        503,
        "http_status",
    )
    assert len((await listing(endpoint_id=good["id"]))["deliveries"]) == 3
    assert len((await listing(event_type="chat.session.created"))["deliveries"]) == 1
    assert len((await listing(event_id=events[0]))["deliveries"]) == 2
    start = datetime.fromisoformat(everything[-1]["created_at"])
    window = {
        "since": (start + timedelta(seconds=1)).isoformat(),
        "until": (start + timedelta(seconds=2)).isoformat(),
    }
    assert {d["event_id"] for d in (await listing(**window))["deliveries"]} == {events[1]}
    seen: list[str] = []
    page = await listing(limit=3)
    while True:
        assert len(page["deliveries"]) <= 3
        seen.extend(d["id"] for d in page["deliveries"])
        if page["next_cursor"] is None:
            break
        page = await listing(limit=3, cursor=page["next_cursor"])
    assert seen == [d["id"] for d in everything]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"status": "lost"}, "status"),
        ({"event_type": "order.nope"}, "event_type"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-01-01T00:00:00"}, "until"),
    ],
)
async def test_a_bad_query_names_its_parameter(
    admin: Admin, params: dict[str, Any], field: str
) -> None:
    """GET deliveries: a bad cursor, limit, status, type or time is a 422 naming the parameter."""
    key = await _key(admin, "shop-a")
    response = await admin.client.get(DELIVERIES, headers=bearer(key), params=params)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [f["field"] for f in error["fields"]] == [field]


async def test_a_delivery_shows_the_body_as_sent_and_every_attempt(
    admin: Admin, router: respx.Router
) -> None:
    """GET deliveries/{id}: the event body byte for byte, each attempt with its answer."""
    key = await _key(admin, "shop-a")
    _, bad, events = await _log_of_two_endpoints(admin, router, key)
    (delivery,) = (
        await admin.client.get(
            DELIVERIES,
            headers=bearer(key),
            params={"event_id": events[0], "endpoint_id": bad["id"]},
        )
    ).json()["deliveries"]
    response = await admin.client.get(f"{DELIVERIES}/{delivery['id']}", headers=bearer(key))
    assert response.status_code == 200, response.text
    detail = response.json()
    sent = await admin.dispatcher.events.delivery("shop-a", delivery["id"])
    assert sent is not None and sent.body is not None
    assert detail["body"].encode() == sent.body
    assert detail["status"] == "failed"
    (attempt,) = detail["attempts"]
    assert (attempt["number"], attempt["status"], attempt["response_body"]) == (
        1,
        503,
        "down for maintenance",
    )
    assert attempt["trigger"] == "scheduled"


# -- one tenant's key never reaches another tenant's endpoints or deliveries ---------------------


async def _two_tenants(admin: Admin, router: respx.Router) -> dict[str, Any]:
    key_a = await _key(admin, "shop-a")
    key_b = await _key(admin, "shop-b")
    good, _, events = await _log_of_two_endpoints(admin, router, key_a)
    (delivery,) = (
        await admin.client.get(
            DELIVERIES,
            headers=bearer(key_a),
            params={"event_id": events[0], "endpoint_id": good["id"]},
        )
    ).json()["deliveries"]
    return {"a": key_a, "b": key_b, "endpoint": good, "delivery": delivery, "event": events[0]}


def _same_as_unknown(theirs: httpx.Response, unknown: httpx.Response) -> None:
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json() == unknown.json(), "no existence leak"
    assert theirs.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_another_tenants_endpoint_is_not_found(
    admin: Admin, router: respx.Router, method: str
) -> None:
    """GET/PATCH/DELETE event-endpoints/{id}: another tenant's id is 404, as an unknown one."""
    t = await _two_tenants(admin, router)
    body = {"enabled": False} if method == "PATCH" else None
    theirs = await admin.client.request(
        method, f"{ENDPOINTS}/{t['endpoint']['id']}", headers=bearer(t["b"]), json=body
    )
    unknown = await admin.client.request(
        method, f"{ENDPOINTS}/ep_00000000000000000000000000", headers=bearer(t["b"]), json=body
    )
    _same_as_unknown(theirs, unknown)
    kept = await admin.client.get(f"{ENDPOINTS}/{t['endpoint']['id']}", headers=bearer(t["a"]))
    assert kept.json() == {**t["endpoint"], "secret": None}, "left as it was"


async def test_another_tenants_endpoints_are_not_listed(admin: Admin, router: respx.Router) -> None:
    """GET event-endpoints: lists the key's tenant's endpoints only."""
    t = await _two_tenants(admin, router)
    listed = await admin.client.get(ENDPOINTS, headers=bearer(t["b"]))
    assert listed.json() == {"endpoints": []}


async def test_a_created_endpoint_belongs_to_the_keys_tenant(
    admin: Admin, router: respx.Router
) -> None:
    """POST event-endpoints: the endpoint is the key's tenant's; the other's list is unchanged."""
    t = await _two_tenants(admin, router)
    before = (await admin.client.get(ENDPOINTS, headers=bearer(t["a"]))).json()
    created = await _create(admin, t["b"])
    assert [
        e["id"]
        for e in (await admin.client.get(ENDPOINTS, headers=bearer(t["b"]))).json()["endpoints"]
    ] == [created["id"]]
    assert (await admin.client.get(ENDPOINTS, headers=bearer(t["a"]))).json() == before
    assert await admin.dispatcher.events.endpoint("shop-b", created["id"]) is not None


async def test_the_catalog_is_the_same_for_every_tenant(admin: Admin, router: respx.Router) -> None:
    """GET event-types: no tenant data in it; every key gets the same catalog."""
    t = await _two_tenants(admin, router)
    a = await admin.client.get(TYPES, headers=bearer(t["a"]))
    b = await admin.client.get(TYPES, headers=bearer(t["b"]))
    assert a.status_code == b.status_code == 200 and a.json() == b.json()


@pytest.mark.parametrize("by", ["nothing", "endpoint_id", "event_id"])
async def test_another_tenants_deliveries_are_not_listed(
    admin: Admin, router: respx.Router, by: str
) -> None:
    """GET deliveries: another tenant's deliveries are never listed, even filtered by their ids."""
    t = await _two_tenants(admin, router)
    params = {"endpoint_id": t["endpoint"]["id"], "event_id": t["event"]}
    chosen = {} if by == "nothing" else {by: params[by]}
    response = await admin.client.get(DELIVERIES, headers=bearer(t["b"]), params=chosen)
    assert response.json() == {"deliveries": [], "next_cursor": None}
    # a cursor from the other tenant's log pages nothing of theirs either
    page = await admin.client.get(DELIVERIES, headers=bearer(t["a"]), params={"limit": 1})
    cursor = page.json()["next_cursor"]
    response = await admin.client.get(DELIVERIES, headers=bearer(t["b"]), params={"cursor": cursor})
    assert response.json() == {"deliveries": [], "next_cursor": None}


async def test_another_tenants_delivery_is_not_found(admin: Admin, router: respx.Router) -> None:
    """GET deliveries/{id}: another tenant's delivery is 404, as an unknown one."""
    t = await _two_tenants(admin, router)
    theirs = await admin.client.get(f"{DELIVERIES}/{t['delivery']['id']}", headers=bearer(t["b"]))
    unknown = await admin.client.get(
        f"{DELIVERIES}/dlv_00000000000000000000000000", headers=bearer(t["b"])
    )
    _same_as_unknown(theirs, unknown)
    mine = await admin.client.get(f"{DELIVERIES}/{t['delivery']['id']}", headers=bearer(t["a"]))
    assert mine.status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ENDPOINTS),
        ("POST", ENDPOINTS),
        ("GET", f"{ENDPOINTS}/ep_x"),
        ("PATCH", f"{ENDPOINTS}/ep_x"),
        ("DELETE", f"{ENDPOINTS}/ep_x"),
        ("GET", TYPES),
        ("GET", DELIVERIES),
        ("GET", f"{DELIVERIES}/dlv_x"),
    ],
)
async def test_every_event_route_needs_a_key(admin: Admin, method: str, path: str) -> None:
    """Event routes: no key or a wrong key is the one 401."""
    for headers in ({}, bearer("sk_wrong")):
        response = await admin.client.request(method, path, headers=headers, json={})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
