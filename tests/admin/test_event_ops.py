"""The admin API's event operations (docs/webhooks.md §9): POST …/event-endpoints/{id}/test,
POST …/deliveries/{id}/retry and POST …/event-endpoints/{id}/recover; each serves the key's
tenant only.  Event requests go to respx (the dispatcher's transport); the worker is off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx

from vizochok_dispatch import DispatchSettings
from vizochok_dispatch.receiver import verify_request

from .support import SHOP_A, Admin, admin_settings_for, bearer

HOOK = f"{SHOP_A}/events"
ADMIN = "/api/v1/admin"


@pytest.fixture
def admin_settings(database_url: str) -> DispatchSettings:
    return admin_settings_for(
        database_url,
        event_worker="off",
        event_retry_schedule="none",
        admin_test_fires_per_minute=2,
    )


def _test(endpoint_id: str) -> str:
    return f"{ADMIN}/event-endpoints/{endpoint_id}/test"


def _recover(endpoint_id: str) -> str:
    return f"{ADMIN}/event-endpoints/{endpoint_id}/recover"


def _retry(delivery_id: str) -> str:
    return f"{ADMIN}/deliveries/{delivery_id}/retry"


async def _tenants(admin: Admin) -> tuple[str, str, str]:
    """Tenant A with an endpoint at HOOK, and tenant B: (A's key, B's key, A's endpoint id)."""
    _, key_a = await admin.tenant("shop-a")
    _, key_b = await admin.tenant("shop-b")
    endpoint = await admin.dispatcher.events.create_endpoint(
        "shop-a", url=HOOK, event_types=["order.*"]
    )
    return key_a.key, key_b.key, endpoint.id


async def _failed_delivery(admin: Admin, router: respx.Router) -> str:
    """One of shop-a's deliveries, failed (HTTP 500, one attempt)."""
    router.post(HOOK).mock(return_value=httpx.Response(500))
    event = await admin.dispatcher.events.publish(
        "shop-a", "order.created", data=_example("order.created")
    )
    await admin.dispatcher.events.drain(timeout=1)
    return event.deliveries[0].id


def _example(event_type: str) -> dict[str, object]:
    from vizochok_dispatch import EVENT_TYPES  # noqa: PLC0415

    return dict(EVENT_TYPES[event_type].example)


# -- test ----------------------------------------------------------------------------------------


async def test_the_test_route_sends_a_signed_example_and_reports_it(
    admin: Admin, router: respx.Router
) -> None:
    """Test route: the example goes out signed with the endpoint's secret; 200 with the report."""
    key_a, _, endpoint_id = await _tenants(admin)
    route = router.post(HOOK).mock(return_value=httpx.Response(202, text="queued"))
    response = await admin.client.post(
        _test(endpoint_id), headers=bearer(key_a), json={"event_type": "order.cancelled"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["ok"], report["status"], report["detail"], report["hint"]) == (
        True,
        202,
        None,
        None,
    )
    assert (report["event_type"], report["url"], report["subscribed"]) == (
        "order.cancelled",
        HOOK,
        True,
    )
    assert report["response_body"] == "queued"
    assert [a["trigger"] for a in report["attempts"]] == ["test"]
    sent = route.calls.last.request
    (endpoint,) = await admin.dispatcher.events.endpoints("shop-a")
    headers = {k.lower(): v for k, v in sent.headers.items()}
    verify_request(headers, sent.content, endpoint.secret, now=admin.time.now)
    delivery = await admin.dispatcher.events.delivery("shop-a", report["delivery_id"])
    assert delivery is not None and delivery.test


async def test_a_test_delivery_reads_back_through_the_delivery_log(
    admin: Admin, router: respx.Router
) -> None:
    """Delivery log: a test delivery's detail answers 200 with its attempt's trigger "test"."""
    key_a, _, endpoint_id = await _tenants(admin)
    router.post(HOOK).mock(return_value=httpx.Response(204))
    report = (
        await admin.client.post(
            _test(endpoint_id), headers=bearer(key_a), json={"event_type": "order.created"}
        )
    ).json()
    response = await admin.client.get(
        f"{ADMIN}/deliveries/{report['delivery_id']}", headers=bearer(key_a)
    )
    assert response.status_code == 200, response.text
    assert [a["trigger"] for a in response.json()["attempts"]] == ["test"]


async def test_a_test_the_receiver_refuses_names_the_signature(
    admin: Admin, router: respx.Router
) -> None:
    """Test route: a 401 answer is reported with its body and the signature hint."""
    key_a, _, endpoint_id = await _tenants(admin)
    router.post(HOOK).mock(return_value=httpx.Response(401, json={"error": "signature_mismatch"}))
    response = await admin.client.post(
        _test(endpoint_id), headers=bearer(key_a), json={"event_type": "order.created"}
    )
    report = response.json()
    assert (response.status_code, report["ok"], report["status"]) == (200, False, 401)
    assert report["hint"].startswith("your receiver rejected the signature")
    assert "the receiver answered signature_mismatch" in report["problems"]
    assert report["response_body"] == '{"error":"signature_mismatch"}'


@pytest.mark.parametrize(
    ("status", "code", "hint"),
    [
        (400, "signature_mismatch", "your receiver rejected the signature: is it using this "),
        (422, "verification_failed", "your receiver rejected the signature: is it using this "),
        (401, "timestamp_expired", "the receiver's clock is ahead of VIZOCHOK's"),
        (401, "missing_header", "a signature header did not reach the receiver"),
    ],
)
async def test_a_refusal_code_gives_its_own_hint_whatever_the_status(
    admin: Admin, router: respx.Router, status: int, code: str, hint: str
) -> None:
    """Test route: the receiver's refusal code names the fix (the secret after a rotation, the
    clock, a proxy), not a guess from the status."""
    key_a, _, endpoint_id = await _tenants(admin)
    router.post(HOOK).mock(return_value=httpx.Response(status, json={"error": code}))
    response = await admin.client.post(
        _test(endpoint_id), headers=bearer(key_a), json={"event_type": "order.created"}
    )
    report = response.json()
    assert (response.status_code, report["ok"], report["status"]) == (200, False, status)
    assert report["hint"].startswith(hint), report["hint"]
    assert f"the receiver answered {code}" in report["problems"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"event_type": "order.shipped"}, "is not an event type; known: order.created, "),
        ({}, "is required"),
        ({"event_type": None}, "must not be null"),
    ],
)
async def test_the_test_route_refuses_an_unknown_event_type(
    admin: Admin, router: respx.Router, body: dict[str, object], message: str
) -> None:
    """Test route: an unknown, missing or null event_type is a 422 naming event_type."""
    key_a, _, endpoint_id = await _tenants(admin)
    route = router.post(HOOK).mock(return_value=httpx.Response(200))
    response = await admin.client.post(_test(endpoint_id), headers=bearer(key_a), json=body)
    assert response.status_code == 422
    (field,) = response.json()["error"]["fields"]
    assert field["field"] == "event_type" and field["message"].startswith(message)
    assert not route.called


async def test_tests_are_rate_limited_per_tenant(admin: Admin, router: respx.Router) -> None:
    """Test route: like test-fire, N a minute per tenant, then 429 with Retry-After."""
    key_a, _, endpoint_id = await _tenants(admin)
    route = router.post(HOOK).mock(return_value=httpx.Response(200))
    body = {"event_type": "order.created"}
    for _ in range(2):
        response = await admin.client.post(_test(endpoint_id), headers=bearer(key_a), json=body)
        assert response.status_code == 200
    response = await admin.client.post(_test(endpoint_id), headers=bearer(key_a), json=body)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1
    assert route.call_count == 2
    admin.time.now += 60
    response = await admin.client.post(_test(endpoint_id), headers=bearer(key_a), json=body)
    assert response.status_code == 200


# -- retry ---------------------------------------------------------------------------------------


async def test_the_retry_route_attempts_now_and_answers_the_delivery(
    admin: Admin, router: respx.Router
) -> None:
    """Retry route: a failed delivery is attempted now; 200 with the delivery and its attempts."""
    key_a, _, _ = await _tenants(admin)
    delivery_id = await _failed_delivery(admin, router)
    route = router.post(HOOK).mock(return_value=httpx.Response(200))
    response = await admin.client.post(_retry(delivery_id), headers=bearer(key_a))
    assert response.status_code == 200, response.text
    delivery = response.json()
    assert (delivery["id"], delivery["status"], delivery["test"]) == (
        delivery_id,
        "delivered",
        False,
    )
    assert [(a["number"], a["status"], a["trigger"]) for a in delivery["attempts"]] == [
        (1, 500, "scheduled"),
        (2, 200, "manual"),
    ]
    assert route.calls.last.request.headers["X-VIZOCHOK-Delivery"] == delivery["event_id"]


async def test_retry_to_a_disabled_endpoint_is_a_conflict(
    admin: Admin, router: respx.Router
) -> None:
    """Retry route: a delivery whose endpoint is disabled (here by a 410) is a 409."""
    key_a, _, _ = await _tenants(admin)
    router.post(HOOK).mock(return_value=httpx.Response(410))
    event = await admin.dispatcher.events.publish(
        "shop-a", "order.created", data=_example("order.created")
    )
    await admin.dispatcher.events.drain(timeout=1)
    response = await admin.client.post(_retry(event.deliveries[0].id), headers=bearer(key_a))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "endpoint_disabled"


# -- recover -------------------------------------------------------------------------------------


async def test_the_recover_route_requeues_and_counts(admin: Admin, router: respx.Router) -> None:
    """Recover route: failed deliveries of the range become pending; 200 with the count."""
    key_a, _, endpoint_id = await _tenants(admin)
    since = datetime.fromtimestamp(admin.time.now, UTC).isoformat()
    delivery_id = await _failed_delivery(admin, router)
    admin.time.now += 10
    response = await admin.client.post(
        _recover(endpoint_id), headers=bearer(key_a), json={"since": since}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "endpoint_id": endpoint_id,
        "recovered": 1,
        "more": False,
        "limit": 10_000,
        "since": since.replace("+00:00", "Z"),
        "until": None,
    }
    delivery = await admin.dispatcher.events.delivery("shop-a", delivery_id)
    assert delivery is not None and delivery.status == "pending"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"since": "2026-11-30T10:00:00Z", "until": "2026-11-30T09:00:00Z"}, "until", "must be"),
        ({"since": "2026-11-30T10:00:00"}, "since", "must be an RFC 3339 time with a time zone"),
        ({"until": "2026-11-30T10:00:00Z"}, "since", "is required"),
        ({"since": "yesterday"}, "since", "must be an RFC 3339 time with a time zone"),
    ],
)
async def test_the_recover_route_refuses_a_bad_range(
    admin: Admin, body: dict[str, object], field: str, message: str
) -> None:
    """Recover route: a range that is not one is a 422 naming since or until."""
    key_a, _, endpoint_id = await _tenants(admin)
    response = await admin.client.post(_recover(endpoint_id), headers=bearer(key_a), json=body)
    assert response.status_code == 422, response.text
    fields = response.json()["error"]["fields"]
    assert [f["field"] for f in fields] == [field]
    assert fields[0]["message"].startswith(message), fields


# -- every route: the key's tenant only ----------------------------------------------------------


async def test_no_route_touches_another_tenants_endpoint_or_delivery(
    admin: Admin, router: respx.Router
) -> None:
    """Isolation: B's key on A's endpoint or delivery is the 404 of an unknown id; nothing is
    sent, re-queued or recorded."""
    key_a, key_b, endpoint_id = await _tenants(admin)
    since = (datetime.fromtimestamp(admin.time.now, UTC) - timedelta(hours=1)).isoformat()
    delivery_id = await _failed_delivery(admin, router)
    route = router.post(HOOK).mock(return_value=httpx.Response(200))
    sent = route.call_count  # the route is the failing one's, answering 200 now
    calls = [
        (_test(endpoint_id), {"event_type": "order.created"}),
        (_retry(delivery_id), None),
        (_recover(endpoint_id), {"since": since}),
    ]
    for path, body in calls:
        theirs = await admin.client.post(path, headers=bearer(key_b), json=body)
        unknown = await admin.client.post(
            path.replace(endpoint_id, "ep_unknown").replace(delivery_id, "dlv_unknown"),
            headers=bearer(key_a),
            json=body,
        )
        assert theirs.status_code == unknown.status_code == 404, (path, theirs.text)
        assert theirs.json()["error"]["code"] == "not_found"
        assert theirs.json()["error"]["message"] == unknown.json()["error"]["message"]
    # The same words as the reads (GET of the endpoint and of the delivery).
    endpoint_read = await admin.client.get(
        f"/api/v1/admin/event-endpoints/{endpoint_id}", headers=bearer(key_b)
    )
    delivery_read = await admin.client.get(
        f"/api/v1/admin/deliveries/{delivery_id}", headers=bearer(key_b)
    )
    messages = [
        (await admin.client.post(path, headers=bearer(key_b), json=body)).json()["error"]["message"]
        for path, body in calls
    ]
    assert messages == [
        endpoint_read.json()["error"]["message"],
        delivery_read.json()["error"]["message"],
        endpoint_read.json()["error"]["message"],
    ]
    assert route.call_count == sent
    (delivery,) = await admin.dispatcher.events.deliveries("shop-a")
    assert (delivery.status, len(delivery.attempts)) == ("failed", 1)


@pytest.mark.parametrize(
    "path", [_test("ep_x"), _retry("dlv_x"), _recover("ep_x")], ids=["test", "retry", "recover"]
)
async def test_every_route_needs_a_key(admin: Admin, path: str) -> None:
    """Auth: without a valid key every route is the one 401, whatever the body."""
    response = await admin.client.post(path, json={"since": "nonsense"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
