"""docs/webhooks.md §3, row by row, with respx standing in for the tenant and time injected."""

from __future__ import annotations

import httpx
import pytest
import respx

from tests.dispatch.conftest import CART_URL, PRODUCTS_URL, SECRET
from tests.support.fakes import FakeTime
from vizochok_dispatch import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ConfigRules,
    Dispatcher,
    DispatchSettings,
    InMemoryConfigStore,
    compute_signature,
)

OK_PRODUCTS = {"products": [{"sku": "a", "price": 1.5, "in_stock": True}]}


def sequence(router: respx.Router, url: str, *responses: httpx.Response) -> respx.Route:
    return router.post(url).mock(side_effect=list(responses))


async def test_200_with_valid_body_is_success(dispatcher, router, fake_time):
    """HTTP 200 with a valid body: success on the first attempt, no sleep."""
    sequence(router, PRODUCTS_URL, httpx.Response(200, json=OK_PRODUCTS))
    result = await dispatcher.check_products("t1", skus=["a"], store_id="s")
    assert result.failure is None
    assert [o.sku for o in result.available] == ["a"]
    assert fake_time.sleeps == []


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
async def test_5xx_then_200_retries_once_after_one_second(dispatcher, router, fake_time, status):
    """A 5xx is retried once after exactly 1 s, and the retry's success is the result."""
    route = sequence(
        router, PRODUCTS_URL, httpx.Response(status), httpx.Response(200, json=OK_PRODUCTS)
    )
    result, delivery = await dispatcher.check_products_with_delivery("t1", skus=["a"], store_id="s")
    assert result.failure is None
    assert fake_time.sleeps == [1.0]
    assert route.call_count == 2
    assert delivery is not None
    assert [a.status for a in delivery.attempts] == [status, 200]


async def test_retry_keeps_delivery_id_and_signs_afresh(dispatcher, router, fake_time):
    """The retry has the same delivery id, attempt 2, a fresh timestamp and its own signature."""
    route = sequence(
        router, PRODUCTS_URL, httpx.Response(503), httpx.Response(200, json=OK_PRODUCTS)
    )
    await dispatcher.check_products("t1", skus=["a"], store_id="s")
    first, second = (call.request for call in route.calls)
    assert first.headers[DELIVERY_HEADER] == second.headers[DELIVERY_HEADER]
    assert (first.headers[ATTEMPT_HEADER], second.headers[ATTEMPT_HEADER]) == ("1", "2")
    assert int(second.headers[TIMESTAMP_HEADER]) == int(first.headers[TIMESTAMP_HEADER]) + 1
    for request in (first, second):
        timestamp = int(request.headers[TIMESTAMP_HEADER])
        expected = compute_signature(SECRET, timestamp, request.content)
        assert request.headers[SIGNATURE_HEADER] == expected
    assert first.headers[SIGNATURE_HEADER] != second.headers[SIGNATURE_HEADER]


async def test_two_5xx_in_a_row_is_final_failure(dispatcher, router, fake_time):
    """A second 5xx is final: two attempts, http_status, every SKU unavailable."""
    route = sequence(router, PRODUCTS_URL, httpx.Response(503), httpx.Response(500))
    result = await dispatcher.check_products("t1", skus=["a", "b"], store_id="s")
    assert route.call_count == 2
    assert result.failure == "http_status"
    assert result.unavailable == ("a", "b") and result.available == ()


async def test_delivery_ids_differ_between_logical_calls(dispatcher, router):
    """Two logical calls never share a delivery id."""
    route = sequence(
        router,
        PRODUCTS_URL,
        httpx.Response(200, json=OK_PRODUCTS),
        httpx.Response(200, json=OK_PRODUCTS),
    )
    await dispatcher.check_products("t1", skus=["a"], store_id="s")
    await dispatcher.check_products("t1", skus=["a"], store_id="s")
    ids = {call.request.headers[DELIVERY_HEADER] for call in route.calls}
    assert len(ids) == 2


@pytest.mark.parametrize(
    "status", [101, 201, 202, 204, 301, 302, 303, 307, 308, 400, 401, 403, 404, 409, 429]
)
async def test_other_statuses_fail_without_retry(dispatcher, router, fake_time, status):
    """Any status but 200 and 5xx is a failure with no retry; redirects are not followed."""
    headers = {"Location": "https://elsewhere.example/"} if 300 <= status < 400 else {}
    route = sequence(router, PRODUCTS_URL, httpx.Response(status, headers=headers))
    elsewhere = router.route(host="elsewhere.example").mock(return_value=httpx.Response(200))
    result = await dispatcher.check_products("t1", skus=["a"], store_id="s")
    assert result.failure == "http_status"
    assert route.call_count == 1
    assert elsewhere.call_count == 0
    assert fake_time.sleeps == []


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        (httpx.ConnectError("refused"), "connect_error"),
        (httpx.ReadError("reset"), "connect_error"),
        (httpx.RemoteProtocolError("closed"), "connect_error"),
        (httpx.ConnectTimeout("slow"), "timeout"),
        (httpx.ReadTimeout("slow"), "timeout"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else v,
)
async def test_transport_errors_fail_without_retry(dispatcher, router, fake_time, error, detail):
    """Refused, reset, DNS/TLS and timeouts are failures with their detail and no retry."""
    route = router.post(PRODUCTS_URL).mock(side_effect=error)
    result = await dispatcher.check_products("t1", skus=["a"], store_id="s")
    assert result.failure == detail
    assert route.call_count == 1
    assert fake_time.sleeps == []


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"items": []}', b'{"products": {}}', b"\xff\xfe\x00garbage"],
)
async def test_bad_bodies_are_invalid_response(dispatcher, router, body):
    """A 200 whose body is not JSON or not the documented shape is invalid_response."""
    sequence(router, PRODUCTS_URL, httpx.Response(200, content=body))
    result = await dispatcher.check_products("t1", skus=["a"], store_id="s")
    assert result.failure == "invalid_response"
    assert result.unavailable == ("a",)


async def test_body_over_the_cap_is_invalid_response(router, fake_time):
    """A body larger than max_response_bytes is invalid_response."""
    store = InMemoryConfigStore()
    await store.save_config("t1", products_url=PRODUCTS_URL, cart_url=CART_URL, secret=SECRET)
    big = b'{"products": [], "pad": "' + b"x" * 5000 + b'"}'
    sequence(router, PRODUCTS_URL, httpx.Response(200, content=big))
    async with Dispatcher(
        store,
        settings=DispatchSettings(max_response_bytes=4096),
        transport=httpx.MockTransport(router.async_handler),
    ) as d:
        result = await d.check_products("t1", skus=["a"], store_id="s")
    assert result.failure == "invalid_response"


async def test_unconfigured_tenant_sends_nothing(dispatcher, router):
    """An unknown tenant, or an unset cart_get_url, fails as not_configured with no request."""
    catch_all = router.route().mock(return_value=httpx.Response(200))
    products = await dispatcher.check_products("nobody", skus=["a"], store_id="s")
    cart = await dispatcher.cart_clear("nobody", store_id="s", session_id="x")
    await dispatcher.store.save_config("t1", cart_get_url=None)
    load = await dispatcher.load_cart("t1", store_id="s", session_id="x")
    assert products.failure == "not_configured" and products.unavailable == ("a",)
    assert cart.as_payload() == {"ok": False, "reason": "webhook_timeout"}
    assert cart.detail == "not_configured"
    assert (load.loaded, load.failure) == (False, "not_configured")
    assert catch_all.call_count == 0


async def test_retry_is_skipped_when_the_deadline_cannot_fit_it(dispatcher, router, fake_time):
    """With less than delay + a minimal attempt left, a 5xx is final and nobody sleeps."""
    route = sequence(
        router, PRODUCTS_URL, httpx.Response(503), httpx.Response(200, json=OK_PRODUCTS)
    )
    result = await dispatcher.check_products("t1", skus=["a"], store_id="s", deadline=1.05)
    assert result.failure == "http_status"
    assert route.call_count == 1
    assert fake_time.sleeps == []


async def test_retry_runs_when_the_deadline_fits_it(dispatcher, router, fake_time):
    """With room for the delay and an attempt, the retry runs."""
    route = sequence(
        router, PRODUCTS_URL, httpx.Response(503), httpx.Response(200, json=OK_PRODUCTS)
    )
    result = await dispatcher.check_products("t1", skus=["a"], store_id="s", deadline=1.5)
    assert result.failure is None
    assert route.call_count == 2


async def test_spent_deadline_sends_nothing(dispatcher, router):
    """A deadline already spent is a timeout with no request."""
    route = router.post(PRODUCTS_URL).mock(return_value=httpx.Response(200, json=OK_PRODUCTS))
    result = await dispatcher.check_products("t1", skus=["a"], store_id="s", deadline=0)
    assert result.failure == "timeout"
    assert route.call_count == 0


async def test_plain_http_url_is_blocked_when_the_deployment_forbids_it(router):
    """A stored http:// URL is not called by a dispatcher that does not allow http."""
    store = InMemoryConfigStore(rules=ConfigRules(allow_http=True))
    await store.save_config(
        "t1", products_url="http://tenant.example/p", cart_url="http://tenant.example/c"
    )
    route = router.route().mock(return_value=httpx.Response(200, json=OK_PRODUCTS))
    async with Dispatcher(store, transport=httpx.MockTransport(router.async_handler)) as d:
        result = await d.check_products("t1", skus=["a"], store_id="s")
    assert result.failure == "blocked_destination"
    assert route.call_count == 0


async def test_an_injected_httpx_client_is_used_and_left_open(router):
    """A caller's own AsyncClient sends the requests and stays open after the dispatcher."""
    store = InMemoryConfigStore()
    await store.save_config("t1", products_url=PRODUCTS_URL, cart_url=CART_URL, secret=SECRET)
    route = sequence(router, PRODUCTS_URL, httpx.Response(200, json=OK_PRODUCTS))
    async with httpx.AsyncClient(transport=httpx.MockTransport(router.async_handler)) as client:
        async with Dispatcher(store, client=client) as d:
            result = await d.check_products("t1", skus=["a"], store_id="s")
        assert not client.is_closed
    assert result.failure is None and route.call_count == 1


async def test_a_bug_in_the_transport_never_raises_into_the_chat(fake_time: FakeTime):
    """An unexpected exception becomes a failure value (internal_error), not a crash."""

    class Broken(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            raise RuntimeError("boom")

    store = InMemoryConfigStore()
    await store.save_config("t1", products_url=PRODUCTS_URL, cart_url=CART_URL, secret=SECRET)
    async with Dispatcher(store, transport=Broken(), sleep=fake_time.sleep) as d:
        result = await d.check_products("t1", skus=["a"], store_id="s")
        cart = await d.cart_clear("t1", store_id="s", session_id="x")
    assert result.failure == "internal_error"
    assert cart.as_payload() == {"ok": False, "reason": "webhook_timeout"}
