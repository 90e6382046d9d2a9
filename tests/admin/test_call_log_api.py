"""GET /api/v1/admin/webhooks/calls (issue 13): the key's tenant's call log only, filtered,
in cursor pages, in the one error shape."""

from __future__ import annotations

import httpx
import pytest
import respx

from .support import CALLS, SHOP_A, SHOP_B, Admin, bearer


async def failing_calls(admin: Admin, router: respx.Router, tenant: str, count: int) -> list[str]:
    """``count`` products calls of ``tenant`` answered 400, one second apart; their delivery
    ids, oldest first, written to the log."""
    ids = []
    for _ in range(count):
        _, delivery = await admin.dispatcher.check_products_with_delivery(
            tenant, skus=["a"], store_id="s"
        )
        assert delivery is not None
        ids.append(delivery.delivery_id)
        admin.time.now += 1
    await admin.dispatcher.call_log.flush()
    return ids


async def test_a_tenant_reads_its_own_calls_and_no_one_elses(
    admin: Admin, router: respx.Router
) -> None:
    """Call log API: each key lists its tenant's calls; another tenant's never appear."""
    router.post(f"{SHOP_A}/vizochok/products").mock(
        return_value=httpx.Response(400, text="bad request from shop a")
    )
    router.post(f"{SHOP_B}/vizochok/products").mock(return_value=httpx.Response(500))
    key_a, _ = await admin.configured("shop-a")
    key_b, _ = await admin.configured("shop-b", SHOP_B)
    _, key_c = await admin.tenant("shop-c")
    ours = await failing_calls(admin, router, "shop-a", 2)
    theirs = await failing_calls(admin, router, "shop-b", 1)

    page_a = await admin.client.get(CALLS, headers=bearer(key_a.key))
    page_b = await admin.client.get(CALLS, headers=bearer(key_b.key))
    page_c = await admin.client.get(CALLS, headers=bearer(key_c.key))
    assert page_a.status_code == page_b.status_code == page_c.status_code == 200
    assert [c["delivery_id"] for c in page_a.json()["calls"]] == ours[::-1]
    assert [c["delivery_id"] for c in page_b.json()["calls"]] == theirs
    assert page_c.json() == {"calls": [], "next_cursor": None}
    filtered = await admin.client.get(
        CALLS, headers=bearer(key_a.key), params={"delivery_id": theirs[0]}
    )
    assert filtered.json()["calls"] == []
    first = page_a.json()["calls"][0]
    assert first["webhook"] == "products"
    assert (first["outcome"], first["detail"], first["status"]) == ("failed", "http_status", 400)
    assert first["attempts"] == [
        {"number": 1, "status": 400, "latency_ms": 0.0, "detail": "http_status", "reason": None}
    ]
    assert first["response"] == "bad request from shop a"
    assert first["id"].startswith("call_")


async def test_filters_and_cursor_pages(admin: Admin, router: respx.Router) -> None:
    """Call log API: filters narrow the list; next_cursor walks it with no repeat or gap."""
    router.post(f"{SHOP_A}/vizochok/products").mock(return_value=httpx.Response(400))
    key, _ = await admin.configured("shop-a")
    ids = await failing_calls(admin, router, "shop-a", 3)
    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 2, "webhook": "products", "outcome": "failed"}
    for _ in range(3):
        response = await admin.client.get(CALLS, headers=bearer(key.key), params=params)
        assert response.status_code == 200
        body = response.json()
        seen += [call["delivery_id"] for call in body["calls"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert seen == ids[::-1]
    for where in ({"webhook": "cart"}, {"outcome": "ok"}, {"detail": "timeout"}):
        response = await admin.client.get(CALLS, headers=bearer(key.key), params=where)
        assert response.json()["calls"] == [], where


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "abc"}, "cursor"),
        ({"webhook": "orders"}, "webhook"),
        ({"outcome": "maybe"}, "outcome"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-11-30T10:00:00"}, "until"),  # no zone
        ({"detail": "x" * 65}, "detail"),
    ],
)
async def test_a_bad_filter_is_a_422_naming_it(
    admin: Admin, params: dict[str, str | int], field: str
) -> None:
    """Call log API: a filter, limit or cursor it cannot take is a 422 naming that field."""
    key, _ = await admin.configured("shop-a")
    response = await admin.client.get(CALLS, headers=bearer(key.key), params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert [f["field"] for f in response.json()["error"]["fields"]] == [field]


async def test_no_key_is_the_one_401(admin: Admin) -> None:
    """Call log API: without a valid key the answer is the one 401, whatever the filters."""
    response = await admin.client.get(CALLS, params={"webhook": "orders"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("path", [CALLS, "/api/v1/admin/deliveries"])
@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        (
            {"since": "2026-12-01"},
            "since",
            "must be an RFC 3339 time with a time zone, e.g. 2026-12-01T00:00:00Z",
        ),
        (
            {"until": "2026-12-01T10:00:00"},
            "until",
            "must be an RFC 3339 time with a time zone, e.g. 2026-12-01T00:00:00Z",
        ),
        ({"limit": "0"}, "limit", None),
    ],
)
async def test_a_read_with_bad_filters_says_what_is_accepted(
    admin: Admin, path: str, params: dict[str, str], field: str, message: str | None
) -> None:
    """Log reads: a bad filter is a 422 naming it and what it accepts; a read saves nothing, so
    its message does not say 'nothing was saved'."""
    key, _ = await admin.configured("shop-a")
    response = await admin.client.get(path, headers=bearer(key.key), params=params)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["message"] == "the request has invalid fields"
    assert [f["field"] for f in error["fields"]] == [field]
    if message is not None:
        assert error["fields"][0]["message"] == message
    assert (
        await admin.client.get(
            path, headers=bearer(key.key), params={"since": "2026-12-01T00:00:00Z"}
        )
    ).status_code == 200
