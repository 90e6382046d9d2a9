"""docs/webhooks.md §4: the products request, and the rules for reading the reply."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from tests.dispatch.conftest import PRODUCTS_URL
from vizochok_dispatch import InvalidCall, ProductOffer


def entry(sku: str, **fields: object) -> dict[str, object]:
    return {"sku": sku, "price": 10, "in_stock": True, **fields}


async def ask(dispatcher, router, skus, products, *, raw: bytes | None = None):
    content = raw if raw is not None else json.dumps({"products": products}).encode()
    route = router.post(PRODUCTS_URL).mock(return_value=httpx.Response(200, content=content))
    result = await dispatcher.check_products("t1", skus=skus, store_id="store-1")
    return result, route


# (case, requested SKUs, reply entries, expected available SKUs, expected unavailable SKUs)
CASES = [
    ("all present", ["a", "b"], [entry("a"), entry("b")], ["a", "b"], []),
    ("missing SKU is unavailable", ["a", "b"], [entry("a")], ["a"], ["b"]),
    (
        "in_stock false is unavailable",
        ["a", "b"],
        [entry("a"), entry("b", in_stock=False)],
        ["a"],
        ["b"],
    ),
    (
        "request order, not reply order",
        ["a", "b", "c"],
        [entry("c"), entry("a"), entry("b")],
        ["a", "b", "c"],
        [],
    ),
    (
        "price as string breaks only its SKU",
        ["a", "b"],
        [entry("a", price="10"), entry("b")],
        ["b"],
        ["a"],
    ),
    ("negative price", ["a"], [entry("a", price=-1)], [], ["a"]),
    ("boolean price", ["a"], [entry("a", price=True)], [], ["a"]),
    ("null price", ["a"], [entry("a", price=None)], [], ["a"]),
    ("missing price", ["a"], [{"sku": "a", "in_stock": True}], [], ["a"]),
    ("in_stock as string", ["a"], [entry("a", in_stock="true")], [], ["a"]),
    ("in_stock as 1", ["a"], [entry("a", in_stock=1)], [], ["a"]),
    ("missing in_stock", ["a"], [{"sku": "a", "price": 1}], [], ["a"]),
    ("sku not a string", ["a"], [{"sku": 1, "price": 1, "in_stock": True}, entry("a")], ["a"], []),
    ("entry not an object", ["a"], ["a", entry("a")], ["a"], []),
    ("unrequested SKU is ignored", ["a"], [entry("zzz"), entry("a")], ["a"], []),
    (
        "first valid duplicate wins",
        ["a"],
        [entry("a", price="bad"), entry("a", price=3), entry("a", price=4)],
        ["a"],
        [],
    ),
    (
        "out-of-stock first entry wins over later duplicate",
        ["a"],
        [entry("a", in_stock=False), entry("a")],
        [],
        ["a"],
    ),
    ("zero price is allowed", ["a"], [entry("a", price=0)], ["a"], []),
]


@pytest.mark.parametrize(
    ("requested", "reply", "available", "unavailable"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_reply_rules(dispatcher, router, requested, reply, available, unavailable):
    """Each row of the products rules: what is available and what is not."""
    result, _ = await ask(dispatcher, router, requested, reply)
    assert result.failure is None
    assert [offer.sku for offer in result.available] == available
    assert list(result.unavailable) == unavailable


async def test_first_valid_duplicate_price_is_kept(dispatcher, router):
    """When a SKU repeats, the first valid entry's price is the one used."""
    reply = [entry("a", price="bad"), entry("a", price=3), entry("a", price=4)]
    result, _ = await ask(dispatcher, router, ["a"], reply)
    assert result.available[0].price == Decimal(3)


async def test_unrequested_sku_is_reported_as_a_problem(dispatcher, router):
    """An entry for a SKU nobody asked for is ignored and named in the problems."""
    result, _ = await ask(dispatcher, router, ["a"], [entry("zzz"), entry("a")])
    assert any("zzz" in p and "not requested" in p for p in result.problems)


@pytest.mark.parametrize(
    ("promo", "expected_price", "expected_label"),
    [
        ({"promo_price": 8, "promo_label": "-20%"}, Decimal(8), "-20%"),
        ({"promo_price": 0, "promo_label": "free"}, Decimal(0), "free"),
        ({"promo_price": 10, "promo_label": "same"}, None, None),
        ({"promo_price": 12, "promo_label": "more"}, None, None),
        ({"promo_price": -1, "promo_label": "neg"}, None, None),
        ({"promo_price": "8", "promo_label": "str"}, None, None),
        ({"promo_price": True}, None, None),
        ({"promo_price": None, "promo_label": "2 for 1"}, None, "2 for 1"),
        ({"promo_price": 8, "promo_label": 5}, Decimal(8), None),
    ],
)
async def test_promotion_rules(dispatcher, router, promo, expected_price, expected_label):
    """promo_price must be >= 0 and below price, else the promotion is dropped, product kept."""
    result, _ = await ask(dispatcher, router, ["a"], [entry("a", **promo)])
    assert [o.sku for o in result.available] == ["a"]
    offer = result.available[0]
    assert (offer.promo_price, offer.promo_label) == (expected_price, expected_label)


async def test_money_is_decimal_exactly_as_sent(dispatcher, router):
    """Prices arrive as Decimal with the tenant's digits, never through float."""
    raw = b'{"products": [{"sku": "a", "price": 45.90, "in_stock": true, "promo_price": 0.1}]}'
    result, _ = await ask(dispatcher, router, ["a"], [], raw=raw)
    assert result.available == (
        ProductOffer(sku="a", price=Decimal("45.90"), promo_price=Decimal("0.1")),
    )
    assert isinstance(result.available[0].price, Decimal)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
async def test_non_finite_price_breaks_only_its_sku(dispatcher, router, literal):
    """NaN and Infinity are not prices; the other SKUs survive."""
    raw = (
        b'{"products": [{"sku": "a", "price": ' + literal + b', "in_stock": true},'
        b' {"sku": "b", "price": 1, "in_stock": true}]}'
    )
    result, _ = await ask(dispatcher, router, ["a", "b"], [], raw=raw)
    assert [o.sku for o in result.available] == ["b"]
    assert result.unavailable == ("a",)


async def test_duplicate_skus_are_sent_once_in_order(dispatcher, router):
    """The request lists each SKU once, first occurrence first."""
    _, route = await ask(dispatcher, router, ["b", "a", "b", "c", "a"], [])
    assert json.loads(route.calls[0].request.content) == {
        "skus": ["b", "a", "c"],
        "store_id": "store-1",
    }


async def test_empty_sku_list_sends_nothing(dispatcher, router):
    """No SKUs, no request, and an empty successful result."""
    route = router.route().mock(return_value=httpx.Response(200))
    result = await dispatcher.check_products("t1", skus=[], store_id="s")
    assert (result.available, result.unavailable, result.failure) == ((), (), None)
    assert route.call_count == 0


@pytest.mark.parametrize("skus", ["milk-001", [1, 2], ["ok", ""], [None]])
async def test_bad_sku_arguments_are_refused_before_sending(dispatcher, router, skus):
    """A caller's bad SKU list is an InvalidCall, not a request."""
    route = router.route().mock(return_value=httpx.Response(200))
    with pytest.raises(InvalidCall):
        await dispatcher.check_products("t1", skus=skus, store_id="s")
    assert route.call_count == 0


async def test_delivery_failure_makes_every_sku_unavailable(dispatcher, router):
    """On any delivery failure, every requested SKU is unavailable."""
    router.post(PRODUCTS_URL).mock(return_value=httpx.Response(404))
    result = await dispatcher.check_products("t1", skus=["a", "b", "a"], store_id="s")
    assert (result.available, result.unavailable) == ((), ("a", "b"))
    assert result.failure == "http_status" and not result.ok
