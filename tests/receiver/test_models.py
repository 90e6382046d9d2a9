"""What callbacks return: money is Decimal, and a bad value fails in the tenant's code."""

from __future__ import annotations

from decimal import Decimal

import pytest

from vizochok_dispatch.receiver import CartLine, CartReply, Product


def test_a_float_price_is_refused() -> None:
    """Money is Decimal (or int), never float: floats round prices."""
    with pytest.raises(TypeError, match="Decimal"):
        Product(sku="a", price=45.9, in_stock=True)  # type: ignore[arg-type]


def test_an_int_price_becomes_an_exact_decimal() -> None:
    """Whole prices may be ints; they are kept as Decimal."""
    product = Product(sku="a", price=45, in_stock=True)  # type: ignore[arg-type]
    assert product.price == Decimal(45)
    assert isinstance(product.price, Decimal)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"price": Decimal(-1)},
        {"price": Decimal("NaN")},
        {"price": True},
        {"in_stock": 1},
        {"sku": ""},
        {"promo_price": Decimal("50")},
        {"promo_price": Decimal("-1")},
        {"promo_label": "x" * 201},
    ],
)
def test_products_that_break_contract_section_4_are_refused(kwargs) -> None:
    """docs/webhooks.md §4: price >= 0, in_stock bool, promo below price, a short label."""
    fields = {"sku": "a", "price": Decimal("50"), "in_stock": True} | kwargs
    with pytest.raises((TypeError, ValueError)):
        Product(**fields)


def test_product_json_keeps_decimal_digits_and_omits_unset_fields() -> None:
    """``45.90`` goes out as ``45.90``; no promo fields unless there is a promotion."""
    assert Product(sku="a", price=Decimal("45.90"), in_stock=True).as_json() == {
        "sku": "a",
        "price": Decimal("45.90"),
        "in_stock": True,
    }


def test_cart_replies() -> None:
    """webhooks.md §5: accepted has no reason; a refusal's reason is a short non-blank string."""
    assert CartReply.accepted().as_json() == {"ok": True}
    assert CartReply.refused("out_of_stock").as_json() == {"ok": False, "reason": "out_of_stock"}
    assert CartReply.refused().as_json() == {"ok": False}
    for bad in (" ", "x" * 201):
        with pytest.raises(ValueError, match="non-blank"):
            CartReply.refused(bad)
    with pytest.raises(ValueError, match="no reason"):
        CartReply(ok=True, reason="why")


@pytest.mark.parametrize("quantity", [Decimal(0), Decimal(-1), 1.5])
def test_cart_lines_need_a_positive_decimal_quantity(quantity) -> None:
    """webhooks.md §6: a cart line's quantity is a number > 0 (fractional allowed, as Decimal)."""
    with pytest.raises((TypeError, ValueError)):
        CartLine(sku="a", name="n", price=Decimal(1), quantity=quantity)
    line = CartLine(sku="a", name="n", price=Decimal(1), quantity=Decimal("0.25"), unit="kg")
    assert line.as_json()["quantity"] == Decimal("0.25")
