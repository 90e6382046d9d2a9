"""A hostile reply inside the response cap costs bounded work (event-loop time).

Products: a reply larger than 64 KiB + 8 KiB per requested SKU is not decoded; at most
2 x len(skus) + 100 entries are examined; at most 50 problem lines are kept.  Cart GET: a
reply of more than 1000 lines is not a cart.  The work is counted through what the result
says (entries examined, lines kept), not timed, except for one generous upper bound.
"""

from __future__ import annotations

import gc
import json
import time

import httpx
import pytest

from tests.dispatch.conftest import CART_GET_URL, PRODUCTS_URL, LoopbackFactory
from tests.support.loopback import Received, Reply, serve
from vizochok_dispatch.webhooks import _cart, _products

MIB = 1024 * 1024
#: Problem lines kept per reply (``_text.MAX_PROBLEM_LINES``), as documented.
MAX_PROBLEM_LINES = 50


def filled(key: str, item: bytes, size: int = MIB) -> bytes:
    """``{"<key>": [item, item, ...]}`` of about ``size`` bytes (never more)."""
    head, tail = f'{{"{key}":['.encode(), b"]}"
    count = (size - len(head) - len(tail) + 1) // (len(item) + 1)
    return head + b",".join([item] * count) + tail


def entry(sku: str, price: int = 10) -> dict[str, object]:
    return {"sku": sku, "price": price, "in_stock": True}


def test_the_products_cap_is_64_kib_plus_8_kib_per_sku() -> None:
    """A reply for 2 SKUs is read up to 80 KiB (space-padded JSON); one byte more is refused."""
    document = json.dumps({"products": [entry("a")]}).encode()
    at_cap = document + b" " * (80 * 1024 - len(document))
    assert [o.sku for o in _products.parse_reply(["a", "b"], at_cap).available] == ["a"]
    assert _products.parse_reply(["a", "b"], at_cap + b" ").failure == "invalid_response"
    assert _products.parse_reply(["a", *"bcdefghijklmnopqrstuvwxyz"], at_cap + b" ").ok


async def test_a_1_mib_reply_for_two_skus_is_not_decoded(dispatcher, router) -> None:
    """1 MiB of {} entries for 2 SKUs (cap 80 KiB): invalid_response, its size in the line."""
    body = filled("products", b"{}")
    router.post(PRODUCTS_URL).mock(return_value=httpx.Response(200, content=body))
    result = await dispatcher.check_products("t1", skus=["milk", "bread"], store_id="s")
    assert (result.failure, result.unavailable) == ("invalid_response", ("milk", "bread"))
    assert result.problems == (
        f"body is {len(body)} bytes; a reply for 2 SKUs is read up to {80 * 1024}",
    )


async def test_the_cap_holds_over_a_real_connection(loopback_dispatcher: LoopbackFactory) -> None:
    """The same over 127.0.0.1: a 1 MiB {} reply for 2 SKUs is invalid_response."""
    body = filled("products", b"{}")

    async def answer(_request: Received, reply: Reply) -> None:
        await reply.send(200, body)

    async with serve(answer) as server:
        d = await loopback_dispatcher(products_url=server.url("/p"))
        result = await d.check_products("t1", skus=["milk", "bread"], store_id="s")
    assert result.failure == "invalid_response"
    assert result.problems[0].startswith(f"body is {len(body)} bytes")


async def test_entries_past_two_per_sku_plus_100_are_not_examined(dispatcher, router) -> None:
    """A requested SKU after 2 x 1 + 100 junk entries is not reached: the work stops there."""
    reply: dict[str, list[object]] = {"products": [{}] * 5000 + [entry("a")]}
    router.post(PRODUCTS_URL).mock(return_value=httpx.Response(200, json=reply))
    result = await dispatcher.check_products("t1", skus=["a"], store_id="s")
    assert result.ok and result.unavailable == ("a",)
    assert result.problems == (
        *(f"products[{i}]: sku is missing or not a string" for i in range(MAX_PROBLEM_LINES)),
        f"... {102 - MAX_PROBLEM_LINES} more problems not shown",
        "products[102:]: 4899 more entries ignored (a reply for 1 SKUs is read up to 102 entries)",
    )


async def test_a_real_reply_with_repeats_and_extras_is_read_whole(dispatcher, router) -> None:
    """Within the bound (one per SKU, a repeat each, 100 extras) every entry is examined."""
    skus = [f"s{i}" for i in range(20)]
    extras = [entry(f"other-{i}") for i in range(100)]
    reply = {"products": extras + [entry(s) for s in skus] + [entry(s, 99) for s in skus]}
    router.post(PRODUCTS_URL).mock(return_value=httpx.Response(200, json=reply))
    result = await dispatcher.check_products("t1", skus=skus, store_id="s")
    assert [o.sku for o in result.available] == skus
    assert all(o.price == 10 for o in result.available)
    assert not any("more entries ignored" in p for p in result.problems)


def test_a_1_mib_reply_within_the_cap_is_examined_up_to_the_bound() -> None:
    """For 128 SKUs (cap >= 1 MiB) 1 MiB of {} costs 356 entries and 52 lines, < 1 s."""
    skus = [f"sku-{i}" for i in range(128)]
    body = filled("products", b"{}")
    started = time.perf_counter()
    result = _products.parse_reply(skus, body)
    elapsed = time.perf_counter() - started
    examined = 2 * 128 + 100
    assert result.ok and len(result.unavailable) == 128
    assert len(result.problems) == MAX_PROBLEM_LINES + 2
    assert result.problems[-2] == f"... {examined - MAX_PROBLEM_LINES} more problems not shown"
    assert result.problems[-1].startswith(f"products[{examined}:]: ")
    assert elapsed < 1.0  # generous: decoding 1 MiB takes tens of ms


async def test_a_cart_of_more_than_1000_lines_is_not_loaded(dispatcher, router) -> None:
    """docs/webhooks.md §6 asks for a real cart: 1001 lines (or 1 MiB of {}) is invalid_response."""
    line = {"sku": "a", "name": "A", "price": 1, "quantity": 1}
    router.get(url__startswith=CART_GET_URL).mock(
        side_effect=[
            httpx.Response(200, json={"items": [line] * 1001}),
            httpx.Response(200, content=filled("items", b"{}")),
            httpx.Response(200, json={"items": [line] * 1000}),
        ]
    )
    over = await dispatcher.load_cart("t1", store_id="s", session_id="x")
    junk = await dispatcher.load_cart("t1", store_id="s", session_id="x")
    full = await dispatcher.load_cart("t1", store_id="s", session_id="x")
    assert (over.loaded, over.failure, over.problems) == (
        False,
        "invalid_response",
        ("items: 1001 lines; a cart has at most 1000",),
    )
    assert (junk.loaded, junk.failure) == (False, "invalid_response")
    assert full.loaded and len(full.items) == 1000


def test_cart_problem_lines_are_capped() -> None:
    """A cart of 1000 bad lines keeps 50 problem lines and counts the rest in one."""
    load = _cart.parse_load_reply(json.dumps({"items": [{}] * 1000}).encode())
    assert load.loaded and not load.items
    assert len(load.problems) == MAX_PROBLEM_LINES + 1
    assert load.problems[-1] == f"... {1000 - MAX_PROBLEM_LINES} more problems not shown"


@pytest.mark.parametrize("enabled", [True, False])
def test_decoding_leaves_the_garbage_collector_as_it_found_it(enabled: bool) -> None:
    """The collector is paused while a reply is decoded, and left as the host set it."""
    body = filled("products", b"[]", 64 * 1024)
    was = gc.isenabled()
    try:
        if not enabled:
            gc.disable()
        _products.parse_reply(["a"], body)
        _products.parse_reply(["a"], b"not json")
        assert gc.isenabled() is enabled
    finally:
        if was:
            gc.enable()
