"""Numbers and strings from a tenant's reply or a caller stay within the documented limits.

Money: a finite Decimal, 0 <= value <= 10^9, at most 4 decimal places; quantity: 0 < value
<= 10^6, at most 3 places (trailing zeros do not count).  Text: valid Unicode (no lone
surrogate), bounded lengths, no control characters in a SKU.  Outside them a product is
unavailable with a problem line, a cart line is dropped, a refusal reason becomes
"rejected", and a caller's argument is an ``InvalidCall`` naming the field.  Each tenant
case runs over respx and over a real server on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, fields, is_dataclass
from decimal import Decimal

import httpx
import pytest
import respx

from tests.dispatch.conftest import CART_GET_URL, CART_URL, LoopbackFactory
from tests.support.loopback import Received, Reply, serve
from vizochok_dispatch import Dispatcher, InvalidCall
from vizochok_dispatch.contract import _json
from vizochok_dispatch.webhooks import _cart, _products

# -- a tenant that answers every webhook with the bytes a test gives it ---------------------


@dataclass
class Tenant:
    """A tenant whose every webhook answers 200 with ``body``, over respx or loopback."""

    dispatcher: Dispatcher
    body: bytes = b"{}"

    def answers(self, body: bytes) -> None:
        self.body = body


@pytest.fixture(params=["respx", "loopback"])
async def tenant(
    request: pytest.FixtureRequest,
    router: respx.Router,
    dispatcher: Dispatcher,
    loopback_dispatcher: LoopbackFactory,
) -> AsyncIterator[Tenant]:
    if request.param == "respx":
        shown = Tenant(dispatcher)
        router.route().mock(side_effect=lambda _: httpx.Response(200, content=shown.body))
        yield shown
        return

    async def answer(_request: Received, reply: Reply) -> None:
        await reply.send(200, served.body)

    async with serve(answer) as server:
        served = Tenant(
            await loopback_dispatcher(
                products_url=server.url("/p"),
                cart_url=server.url("/c"),
                cart_get_url=server.url("/g"),
            )
        )
        yield served


def products(*entries: str) -> bytes:
    """A products reply from raw JSON entry texts (so any literal can be written)."""
    return ('{"products":[' + ",".join(entries) + "]}").encode()


def offer(sku: str, price: str = "10", extra: str = "") -> str:
    return f'{{"sku":"{sku}","price":{price},"in_stock":true{extra}}}'


def items(*entries: str) -> bytes:
    return ('{"items":[' + ",".join(entries) + "]}").encode()


def line(sku: str = "milk", name: str = "Milk", price: str = "45.9", quantity: str = "1") -> str:
    return f'{{"sku":"{sku}","name":"{name}","price":{price},"quantity":{quantity}}}'


def strings(value: object) -> Iterator[str]:
    """Every string inside a result (dataclasses, tuples), to check it can be sent."""
    if isinstance(value, str):
        yield value
    elif is_dataclass(value) and not isinstance(value, type):
        for field in fields(value):
            yield from strings(getattr(value, field.name))
    elif isinstance(value, tuple | list):
        for item in value:
            yield from strings(item)


def assert_sendable(result: object) -> None:
    """Every string in ``result`` encodes as UTF-8 and no problem line is long."""
    for text in strings(result):
        text.encode("utf-8")  # raises on a lone surrogate
    for problem in getattr(result, "problems", ()):
        assert len(problem) <= 400, problem


HUGE_INT = "1" * 4000  # a 4000-digit integer: int() of it costs ~100 us, and is allowed
BEYOND_INT_DIGITS = "1" * 5000  # past sys.int_max_str_digits: int() raises ValueError


# -- numbers from a products reply ---------------------------------------------------------


async def test_a_price_of_1e100000000_makes_its_sku_unavailable(tenant: Tenant) -> None:
    """Money <= 10^9: "price": 1E+100000000 makes that SKU unavailable, with a problem line."""
    tenant.answers(products(offer("a", "1E+100000000"), offer("b")))
    result = await tenant.dispatcher.check_products("t1", skus=["a", "b"], store_id="s")
    assert result.ok
    assert [o.sku for o in result.available] == ["b"]
    assert result.unavailable == ("a",)
    assert result.problems == ("a: price must be at most 1000000000",)


@pytest.mark.parametrize(
    ("literal", "problem"),
    [
        ("1E+100000000", "must be at most 1000000000"),
        ("1000000000.0001", "must be at most 1000000000"),
        (HUGE_INT, "must be at most 1000000000"),
        (BEYOND_INT_DIGITS, "must be at most 1000000000"),
        ("-" + BEYOND_INT_DIGITS, "must not be negative"),
        ("-1E+100000000", "must not be negative"),
        ("1E-100000000", "must have at most 4 decimal places"),
        ("0.00001", "must have at most 4 decimal places"),
        ("1.23456", "must have at most 4 decimal places"),
    ],
)
async def test_prices_outside_the_money_limits_cost_only_their_sku(
    tenant: Tenant, literal: str, problem: str
) -> None:
    """Each price outside 0..10^9 with <= 4 places: its SKU unavailable, the rule named."""
    tenant.answers(products(offer("a", literal), offer("b")))
    result = await tenant.dispatcher.check_products("t1", skus=["a", "b"], store_id="s")
    assert [o.sku for o in result.available] == ["b"]
    assert result.problems == (f"a: price {problem}",)


@pytest.mark.parametrize(
    ("literal", "price"),
    [
        ("1000000000", "1000000000"),
        ("999999999.9999", "999999999.9999"),
        ("45.90", "45.90"),
        ("45.9000000", "45.9000"),
        ("4.59E1", "45.9"),
        ("0.0001", "0.0001"),
        ("0", "0"),
        ("-0", "0"),
        ("-0.00", "0.00"),
        ("0E-100000000", "0"),
    ],
)
async def test_prices_inside_the_limits_are_kept_exactly(
    tenant: Tenant, literal: str, price: str
) -> None:
    """The limits' edges are inside; trailing zeros do not count as places (and are trimmed
    to 4); a zero never keeps a sign or a huge exponent."""
    tenant.answers(products(offer("a", literal)))
    result = await tenant.dispatcher.check_products("t1", skus=["a"], store_id="s")
    assert [(o.sku, str(o.price)) for o in result.available] == [("a", price)]
    assert not result.problems


@pytest.mark.parametrize(
    ("literal", "problem"),
    [
        ("1E-100000000", "must have at most 4 decimal places"),
        ("9.99999", "must have at most 4 decimal places"),
        (BEYOND_INT_DIGITS, "must be at most 1000000000"),
    ],
)
async def test_a_promo_price_outside_the_limits_drops_the_promotion(
    tenant: Tenant, literal: str, problem: str
) -> None:
    """docs/webhooks.md §4: a bad promo_price drops the promotion and keeps the product."""
    tenant.answers(products(offer("a", "10", f',"promo_price":{literal},"promo_label":"sale"')))
    result = await tenant.dispatcher.check_products("t1", skus=["a"], store_id="s")
    assert [(o.sku, o.promo_price, o.promo_label) for o in result.available] == [("a", None, None)]
    assert result.problems == (f"a: promo_price {problem}; promotion dropped",)


# -- numbers from a cart GET reply ---------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (line(price="1E+100000000"), "milk: price must be at most 1000000000"),
        (line(price="0.00001"), "milk: price must have at most 4 decimal places"),
        (line(price=BEYOND_INT_DIGITS), "milk: price must be at most 1000000000"),
        (line(quantity="1E+100000000"), "milk: quantity must be at most 1000000"),
        (line(quantity="1000000.001"), "milk: quantity must be at most 1000000"),
        (line(quantity="0.0001"), "milk: quantity must have at most 3 decimal places"),
        (line(quantity=HUGE_INT), "milk: quantity must be at most 1000000"),
        (line(quantity="-0"), "milk: quantity must be greater than 0"),
    ],
)
async def test_cart_lines_outside_the_limits_are_dropped(
    tenant: Tenant, entry: str, problem: str
) -> None:
    """webhooks.md §6: a cart line with a price or quantity outside the limits is dropped alone."""
    tenant.answers(items(entry, line(sku="bread", quantity="0.355")))
    load = await tenant.dispatcher.load_cart("t1", store_id="s", session_id="x")
    assert load.loaded
    assert [(i.sku, i.quantity) for i in load.items] == [("bread", Decimal("0.355"))]
    assert load.problems == (f"items[0]: {problem}",)


# -- numbers from a caller ------------------------------------------------------------------


CALLER_PRICES = [
    Decimal("1E+100000000"),
    "1E+100000000",
    1e300,
    10**5000,
    Decimal("1E-100000000"),
    Decimal("0.00001"),
    "1" * 101,
    1_000_000_000.01,
]
CALLER_QUANTITIES = [
    Decimal("1E+100000000"),
    "1E+100000000",
    10**5000,
    1_000_001,
    Decimal("0.0001"),
    Decimal("1E-100000000"),
]


def _id(value: object) -> str:
    if isinstance(value, int):  # repr of a 5000-digit int raises
        return f"int of {len(str(value)) if value.bit_length() < 1000 else 'many'} digits"
    return repr(value)[:24]


@pytest.mark.parametrize("price", CALLER_PRICES, ids=_id)
async def test_cart_add_refuses_a_price_outside_the_limits(dispatcher, router, price) -> None:
    """A caller's price outside the money limits is an InvalidCall naming price; nothing sent."""
    route = router.route().mock(return_value=httpx.Response(200, json={"ok": True}))
    with pytest.raises(InvalidCall, match=r"^price "):
        await dispatcher.cart_add(
            "t1", store_id="s", session_id="x", sku="a", name="A", quantity=1, price=price
        )
    assert route.call_count == 0


@pytest.mark.parametrize("quantity", CALLER_QUANTITIES, ids=_id)
async def test_cart_add_and_update_refuse_a_quantity_outside_the_limits(
    dispatcher, router, quantity
) -> None:
    """A caller's quantity outside 0 < q <= 10^6, <= 3 places: InvalidCall naming quantity."""
    route = router.route().mock(return_value=httpx.Response(200, json={"ok": True}))
    with pytest.raises(InvalidCall, match=r"^quantity "):
        await dispatcher.cart_add(
            "t1", store_id="s", session_id="x", sku="a", name="A", quantity=quantity, price=1
        )
    with pytest.raises(InvalidCall, match=r"^quantity "):
        await dispatcher.cart_update("t1", store_id="s", session_id="x", sku="a", quantity=quantity)
    assert route.call_count == 0


async def test_caller_amounts_at_the_limits_are_sent_exactly(dispatcher, router) -> None:
    """10^9 with 4 places and 10^6 with 3 places are inside; 45.9000 goes out as 45.9000."""
    route = router.post(CART_URL).mock(return_value=httpx.Response(200, json={"ok": True}))
    await dispatcher.cart_add(
        "t1",
        store_id="s",
        session_id="x",
        sku="a",
        name="A",
        quantity=Decimal("999999.999"),
        price=Decimal("999999999.9999"),
    )
    await dispatcher.cart_update("t1", store_id="s", session_id="x", sku="a", quantity=10**6)
    first, second = (call.request.content for call in route.calls)
    assert first.endswith(b'"quantity":999999.999,"price":999999999.9999}')
    assert second.endswith(b'"quantity":1000000}')


# -- cost: no value takes more than microseconds -------------------------------------------


WORST_LITERALS = [
    "1E+100000000",
    "1E-100000000",
    "-1E+999999999",
    "0E+999999999",
    HUGE_INT,
    BEYOND_INT_DIGITS,
    "1" * 200_000,
    "0." + "0" * 200_000 + "1",
    "1" + "0" * 200_000 + "E-200000",
]


def _timed(call: object) -> float:
    assert callable(call)
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


#: Enough SKUs that a reply with two 200k-character numbers is within the products cap.
MANY_SKUS = ["a", "b", *(f"sku-{n}" for n in range(62))]


@pytest.mark.parametrize("literal", WORST_LITERALS, ids=lambda v: v[:16] + f"..({len(v)})")
def test_reading_the_worst_numbers_is_bounded(literal: str) -> None:
    """Reading any number literal (in a products or cart reply) is bounded: < 50 ms."""
    body = products(offer("a", literal), offer("b", "1", f',"promo_price":{literal}'))
    assert len(body) <= _products.reply_cap(len(MANY_SKUS))
    cart = items(line(price=literal), line(sku="b", quantity=literal))
    assert _timed(lambda: _products.parse_reply(MANY_SKUS, body)) < 0.05
    assert _timed(lambda: _cart.parse_load_reply(cart)) < 0.05
    # What is accepted (0E+999999999 is a zero, 1000...0E-200000 a one) is kept short.
    result = _products.parse_reply(MANY_SKUS, body)
    amounts = [o.price for o in result.available] + [o.promo_price for o in result.available]
    assert all(len(format(a, "f")) <= 15 for a in amounts if a is not None)


def test_integers_are_read_in_linear_time_whatever_the_digit_limit() -> None:
    """Even with sys.int_max_str_digits lifted (0), a 300k-digit integer reads in < 50 ms."""
    body = products(offer("a", "7" * 300_000), offer("b"))
    assert len(body) <= _products.reply_cap(len(MANY_SKUS))
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        elapsed = _timed(lambda: _products.parse_reply(MANY_SKUS, body))
        result = _products.parse_reply(MANY_SKUS, body)
    finally:
        sys.set_int_max_str_digits(previous)
    assert elapsed < 0.05
    assert [o.sku for o in result.available] == ["b"]


@pytest.mark.parametrize("value", [*CALLER_PRICES, "9" * 100], ids=_id)
def test_writing_the_worst_caller_amounts_is_bounded(value: object) -> None:
    """Checking (and refusing or writing) any caller amount takes < 50 ms."""

    def build() -> None:
        with contextlib.suppress(InvalidCall):
            _cart.operation_body(
                "add", store_id="s", session_id="x", sku="a", name="A", quantity=1, price=value
            )

    assert _timed(build) < 0.05


def test_the_json_writer_refuses_a_decimal_with_no_short_form() -> None:
    """A Decimal with a huge exponent is refused by the writer, not written as 100 MB."""
    for value in (Decimal("1E+100000000"), Decimal("1E-100000000"), Decimal("0E+999999")):
        with pytest.raises(ValueError, match="short JSON form"):
            _json.dumps({"price": value})


# -- strings from a tenant reply ------------------------------------------------------------

LONE = "\\ud800"  # as the JSON escape a tenant writes


async def test_a_lone_surrogate_promo_label_never_reaches_the_result(tenant: Tenant) -> None:
    """A promo_label "\\ud800" is dropped (product and promotion price kept), said in a line."""
    tenant.answers(products(offer("a", "10", f',"promo_price":8,"promo_label":"{LONE}"')))
    result = await tenant.dispatcher.check_products("t1", skus=["a"], store_id="s")
    assert [(o.sku, o.promo_price, o.promo_label) for o in result.available] == [
        ("a", Decimal(8), None)
    ]
    assert result.problems == (
        "a: promo_label is not valid Unicode (it holds a lone surrogate); label dropped",
    )
    assert_sendable(result)


async def test_a_promo_label_longer_than_200_characters_is_dropped(tenant: Tenant) -> None:
    """promo_label is at most 200 characters."""
    label = "é" * 201
    tenant.answers(products(offer("a", "10", f',"promo_label":"{label}"'), offer("b")))
    result = await tenant.dispatcher.check_products("t1", skus=["a", "b"], store_id="s")
    assert [o.promo_label for o in result.available] == [None, None]
    assert result.problems == ("a: promo_label must be at most 200 characters; label dropped",)


@pytest.mark.parametrize(
    ("reason", "problem"),
    [
        (f'"{LONE}"', "reason is not valid Unicode (it holds a lone surrogate)"),
        (f'"out{LONE}of_stock"', "reason is not valid Unicode (it holds a lone surrogate)"),
        ('"' + "x" * 201 + '"', "reason must be at most 200 characters"),
        ('"   "', "reason must not be blank"),
        ("42", "reason is not a string"),
    ],
)
async def test_a_bad_refusal_reason_becomes_rejected(
    tenant: Tenant, reason: str, problem: str
) -> None:
    """webhooks.md §5: a reason that is not short valid text is replaced by "rejected", logged."""
    tenant.answers(f'{{"ok":false,"reason":{reason}}}'.encode())
    result = await tenant.dispatcher.cart_add(
        "t1", store_id="s", session_id="x", sku="a", name="A", quantity=1, price=1
    )
    assert result.as_payload() == {"ok": False, "reason": "rejected"}
    assert result.problems == (f'{problem}; "rejected" given',)
    assert_sendable(result)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (line(sku=LONE), "sku is not valid Unicode (it holds a lone surrogate)"),
        (line(sku="a\\u0000b"), "sku must not contain control characters"),
        (line(sku="a\\nb"), "sku must not contain control characters"),
        (line(sku=""), "sku must not be empty"),
        (line(sku="s" * 257), "sku must be at most 256 characters"),
        (line(name=LONE), "milk: name is not valid Unicode (it holds a lone surrogate)"),
        (line(name="n" * 513), "milk: name must be at most 512 characters"),
        (
            line().replace("}", f',"unit":"k{LONE}"}}'),
            "milk: unit is not valid Unicode (it holds a lone surrogate)",
        ),
        (
            line().replace("}", ',"unit":"' + "u" * 33 + '"}'),
            "milk: unit must be at most 32 characters",
        ),
    ],
)
async def test_cart_lines_with_bad_text_are_dropped(
    tenant: Tenant, entry: str, problem: str
) -> None:
    """A cart line whose sku, name or unit is not bounded valid text is dropped alone."""
    tenant.answers(items(entry, line(sku="bread", name="Хліб", price="30")))
    load = await tenant.dispatcher.load_cart("t1", store_id="s", session_id="x")
    assert load.loaded
    assert [i.sku for i in load.items] == ["bread"]
    assert load.problems == (f"items[0]: {problem}",)
    assert_sendable(load)


async def test_an_unrequested_sku_is_quoted_short_and_escaped(tenant: Tenant) -> None:
    """A problem line never holds a lone surrogate, a control character or unbounded text."""
    hostile = (LONE + "\\u0007") * 1000
    tenant.answers(products(offer(hostile), offer("a")))
    result = await tenant.dispatcher.check_products("t1", skus=["a"], store_id="s")
    assert [o.sku for o in result.available] == ["a"]
    (problem,) = result.problems
    assert problem.startswith("products[0]: sku '\\ud800\\x07")
    assert problem.endswith("... (2000 characters) was not requested; ignored")
    assert_sendable(result)


# -- strings from a caller ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ({"op": "remove", "sku": "\ud800"}, "sku"),
        ({"op": "remove", "sku": "a\x00"}, "sku"),
        ({"op": "remove", "sku": "s" * 257}, "sku"),
        ({"op": "add", "name": "\udfff"}, "name"),
        ({"op": "add", "name": "n" * 513}, "name"),
        ({"op": "add", "store_id": "\ud800"}, "store_id"),
        ({"op": "clear", "session_id": "\ud800"}, "session_id"),
        ({"op": "clear", "session_id": "x" * 257}, "session_id"),
        ({"op": "products", "skus": ["ok", "\ud800"]}, "skus[1]"),
        ({"op": "products", "skus": ["s" * 257]}, "skus[0]"),
        ({"op": "products", "store_id": "\ud800"}, "store_id"),
        ({"op": "load", "store_id": "\ud800"}, "store_id"),
        ({"op": "load", "session_id": "\ud800"}, "session_id"),
    ],
    ids=lambda v: v if isinstance(v, str) else v["op"] + ":" + next(iter(set(v) - {"op"})),
)
async def test_caller_text_that_cannot_be_sent_is_an_invalid_call(
    dispatcher, router, call: dict[str, object], field: str
) -> None:
    """A caller's SKU, name or id that is not bounded valid text: InvalidCall naming it."""
    route = router.route().mock(return_value=httpx.Response(200, json={"ok": True}))
    op = call.pop("op")
    ids: dict[str, object] = {"store_id": "s", "session_id": "x"}
    calls = {
        "products": lambda: dispatcher.check_products(
            "t1", **{"skus": ["a"], "store_id": "s", **call}
        ),
        "load": lambda: dispatcher.load_cart("t1", **{**ids, **call}),
        "clear": lambda: dispatcher.cart_clear("t1", **{**ids, **call}),
        "remove": lambda: dispatcher.cart_remove("t1", **{**ids, **call}),
        "add": lambda: dispatcher.cart_add(
            "t1", **{**ids, "sku": "a", "name": "A", "quantity": 1, "price": 1, **call}
        ),
    }
    with pytest.raises(InvalidCall) as raised:
        await calls[str(op)]()
    assert str(raised.value).startswith(field + " ")
    assert route.call_count == 0


async def test_a_sku_from_load_cart_can_always_be_sent_back(tenant: Tenant) -> None:
    """The chain the issue saw: load_cart never yields a SKU that cart_remove cannot send."""
    tenant.answers(items(line(sku=LONE), line(sku="ok")))
    load = await tenant.dispatcher.load_cart("t1", store_id="s", session_id="x")
    assert [i.sku for i in load.items] == ["ok"]
    tenant.answers(b'{"ok":true}')
    for item in load.items:
        result = await tenant.dispatcher.cart_remove(
            "t1", store_id="s", session_id="x", sku=item.sku
        )
        assert result.ok


def test_the_url_and_body_builders_refuse_unsendable_text() -> None:
    """The builders themselves refuse text UTF-8 cannot carry (no UnicodeEncodeError)."""
    with pytest.raises(InvalidCall, match=r"^store_id "):
        _cart.load_url(CART_GET_URL, store_id="\ud800", session_id="x")
    with pytest.raises(InvalidCall, match=r"^skus\[0\] "):
        _products.unique_skus(["\ud800"])
    with pytest.raises(InvalidCall, match=r"^sku "):
        _cart.operation_body("remove", store_id="s", session_id="x", sku="\ud800")
