"""Amounts: cheap to check at any size, written plainly, and read from plain text only.

contract/_money.py: an ``int`` is compared as an ``int`` and a ``Decimal`` by its exponent
before anything converts it (``cart_add(price=10**1000000)`` once took 17 s to refuse); a
caller's amount given as text is a plain ASCII decimal, ``[0-9]+(.[0-9]+)?`` (no sign,
exponent, spaces, ``_`` or non-ASCII digits); and every accepted amount, from a caller or a
tenant's reply, is kept in plain positional form (``1E+9`` is ``1000000000``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest
import respx

from vizochok_dispatch import Dispatcher, InvalidCall, run_test_fire
from vizochok_dispatch.contract._money import MONEY, QUANTITY, amount_problem, caller_amount
from vizochok_dispatch.receiver import CartLine, Product
from vizochok_dispatch.webhooks import _cart

from .conftest import CART_GET_URL, CART_URL, PRODUCTS_URL

HUGE = 10**1_000_000  # a million digits: turning it into a Decimal took 17 s


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _cart_add(**amounts: object) -> bytes:
    return _cart.operation_body(
        "add",
        store_id="s",
        session_id="x",
        sku="a",
        name="A",
        **({"quantity": 1, "price": 1} | amounts),
    )


#: (path, call refusing the value, the message it must give)
HUGE_PATHS: list[tuple[str, Callable[[], object], str]] = [
    ("cart_add price", lambda: _cart_add(price=HUGE), "price must be at most 1000000000"),
    ("cart_add price<0", lambda: _cart_add(price=-HUGE), "price must not be negative"),
    ("cart_add quantity", lambda: _cart_add(quantity=HUGE), "quantity must be at most 1000000"),
    (
        "cart_update quantity<0",
        lambda: _cart.operation_body(
            "update", store_id="s", session_id="x", sku="a", quantity=-HUGE
        ),
        "quantity must be greater than 0",
    ),
    (
        "receiver Product price",
        lambda: Product(sku="a", price=HUGE, in_stock=True),  # type: ignore[arg-type]
        "price must be at most 1000000000",
    ),
    (
        "receiver CartLine quantity",
        lambda: CartLine(sku="a", name="n", price=Decimal(1), quantity=HUGE),  # type: ignore[arg-type]
        "quantity must be at most 1000000",
    ),
    (
        "caller Decimal with a huge exponent",
        lambda: caller_amount(Decimal("9E+999999999"), "price", MONEY),
        "price must be at most 1000000000",
    ),
    (
        "caller Decimal far below the places",
        lambda: caller_amount(Decimal("1E-999999999"), "price", MONEY),
        "price must have at most 4 decimal places",
    ),
]


@pytest.mark.parametrize(("path", "call", "message"), HUGE_PATHS, ids=[p[0] for p in HUGE_PATHS])
def test_a_huge_amount_is_refused_at_once_on_every_path(
    path: str, call: Callable[[], object], message: str
) -> None:
    """Every caller and receiver amount path refuses a million-digit int in < 50 ms."""
    refusals: list[str] = []

    def refuse() -> None:
        try:
            call()
        except (InvalidCall, ValueError) as error:
            refusals.append(str(error))

    elapsed = _timed(refuse)
    assert refusals == [message], path
    assert elapsed < 0.05, f"{path}: {elapsed:.3f} s"


@pytest.mark.parametrize(
    "value",
    [HUGE, -HUGE, float("inf"), Decimal("1E+999999999")],
    ids=["huge-int", "huge-negative-int", "infinity", "huge-exponent"],
)
def test_a_huge_reply_amount_is_refused_at_once(value: object) -> None:
    """The reply path (what a decoder hands over) refuses a huge value in < 50 ms."""
    assert _timed(lambda: amount_problem(value, MONEY)) < 0.05
    assert amount_problem(value, MONEY) in ("must be at most 1000000000", "must not be negative")


NOT_PLAIN = [
    " 1",
    "1 ",
    "1_000",
    "\u0663",  # ARABIC-INDIC DIGIT THREE
    "\uff11",  # FULLWIDTH DIGIT ONE
    "+1",
    "-0",
    "-1",
    "1e9",
    "1E+2",
    "1.",
    ".5",
    "0x10",
    "",
    "1.2.3",
    "NaN",
    "Infinity",
    "1\n",
    "1,5",
]


@pytest.mark.parametrize("field", ["price", "quantity"])
@pytest.mark.parametrize("text", NOT_PLAIN, ids=repr)
def test_a_caller_amount_as_text_must_be_a_plain_ascii_decimal(field: str, text: str) -> None:
    """A caller's amount as a string: ASCII digits and one optional '.', nothing else."""
    with pytest.raises(InvalidCall) as caught:
        _cart_add(**{field: text})
    assert str(caught.value).startswith(f"{field} must be a plain decimal number such as 45.90")


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("0", b"0"),
        ("45.90", b"45.90"),
        ("007", b"7"),
        ("1000000000", b"1000000000"),
        ("0.0001", b"0.0001"),
    ],
)
def test_a_plain_decimal_text_is_taken(text: str, wire: bytes) -> None:
    """Plain decimals are taken as written (leading zeros are not part of the value)."""
    assert _cart_add(price=text).endswith(b'"price":' + wire + b"}")


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (Decimal("1E+2"), b'"price":100}'),
        (Decimal("1E+9"), b'"price":1000000000}'),
        (Decimal("4.5E1"), b'"price":45}'),
        (1e9, b'"price":1000000000.0}'),
        (Decimal("0E+5"), b'"price":0}'),
    ],
)
def test_a_caller_amount_in_exponent_form_is_sent_plainly(value: object, wire: bytes) -> None:
    """A caller's Decimal/float in exponent form goes out in plain positional form."""
    assert _cart_add(price=value).endswith(wire)


def test_receiver_values_are_kept_plainly() -> None:
    """The receiver kit keeps a Decimal("1E+2") price as 100."""
    assert str(Product(sku="a", price=Decimal("1E+2"), in_stock=True).price) == "100"
    line = CartLine(sku="a", name="n", price=Decimal("1E+9"), quantity=Decimal("1E+1"))
    assert (str(line.price), str(line.quantity)) == ("1000000000", "10")


REPLY = (
    b'{"products":[{"sku":"a","price":1e9,"in_stock":true,"promo_price":1E+2},'
    b'{"sku":"b","price":4.5E1,"in_stock":true}]}'
)


async def test_reply_amounts_in_exponent_form_are_kept_plainly(
    dispatcher: Dispatcher, router: respx.Router
) -> None:
    """A tenant's 1e9, 1E+2, 4.5E1 and 1E0 are 1000000000, 100, 45 and 1 in the results,
    in the test-fire report, and on the wire when sent back in a cart_add."""
    router.post(PRODUCTS_URL).mock(return_value=httpx.Response(200, content=REPLY))
    router.get(url__startswith=CART_GET_URL).mock(
        return_value=httpx.Response(
            200, content=b'{"items":[{"sku":"a","name":"n","price":1e2,"quantity":1E0}]}'
        )
    )
    cart = router.post(CART_URL).mock(return_value=httpx.Response(200, json={"ok": True}))
    products = await dispatcher.check_products("t1", skus=["a", "b"], store_id="s")
    loaded = await dispatcher.load_cart("t1", store_id="s", session_id="x")
    report = await run_test_fire(dispatcher, "t1", skus=["a", "b"])
    item = loaded.items[0]
    await dispatcher.cart_add(
        "t1",
        store_id="s",
        session_id="x",
        sku="a",
        name="n",
        quantity=item.quantity,
        price=products.available[0].price,
    )
    assert [(o.sku, str(o.price), str(o.promo_price)) for o in products.available] == [
        ("a", "1000000000", "100"),
        ("b", "45", "None"),
    ]
    assert (str(item.price), str(item.quantity)) == ("100", "1")
    offers = report.as_dict()["result"]["available"]  # type: ignore[index]
    assert [(o["price"], o["promo_price"]) for o in offers] == [("1000000000", "100"), ("45", None)]
    assert cart.calls.last.request.content.endswith(b'"quantity":1,"price":1000000000}')
    assert amount_problem(Decimal("1E+6"), QUANTITY) is None
