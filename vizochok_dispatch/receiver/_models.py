"""What the tenant's callbacks receive and return: frozen values, money as ``Decimal``.

Return values are checked when they are built, so a tenant's mistake (a float price, a
promotion above the price, a price with 5 decimal places, a SKU holding a lone surrogate)
fails loudly in the tenant's own code rather than reaching VIZOCHOK as a reply the
dispatcher would quietly drop.  The limits are the dispatcher's own (``_money``, ``_text``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Final

from ..contract import _json
from ..contract._money import MONEY, QUANTITY, AmountRule, checked_amount, magnitude_problem
from ..contract._text import NAME, PROMO_LABEL, REASON, SKU, UNIT, TextRule, text_problem

#: The dispatcher keeps a refusal reason only up to this length (docs/webhooks.md §5).
MAX_REASON_CHARS: Final = REASON.max_chars
MAX_LABEL_CHARS: Final = PROMO_LABEL.max_chars


def _amount(value: object, field: str, rule: AmountRule = MONEY) -> Decimal:
    """``value`` as an exact ``Decimal`` within ``rule``; floats are refused: they round."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        kind = type(value).__name__
        raise TypeError(f"{field} must be a Decimal (or int), not {kind}: floats round money")
    if isinstance(value, int) and (problem := magnitude_problem(value, rule)) is not None:
        raise ValueError(f"{field} {problem}")  # before any conversion: int vs int is cheap
    number = value if isinstance(value, Decimal) else Decimal(value)
    return checked_amount(number, field, rule)


def _text(value: object, field: str, rule: TextRule) -> None:
    """``TypeError`` when ``value`` is not a string, ``ValueError`` when it breaks ``rule``."""
    if (problem := text_problem(value, rule)) is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string")
    raise ValueError(f"{field} {problem}")


# -- what the callbacks receive ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProductsQuery:
    """A products webhook call (docs/webhooks.md §4): SKUs without repeats, in the order asked."""

    skus: tuple[str, ...]
    store_id: str
    delivery_id: str | None


@dataclass(frozen=True, slots=True)
class CartAdd:
    """Add ``quantity`` of ``sku`` at ``price`` (quantity may be fractional: goods by weight)."""

    action: ClassVar[str] = "add"
    store_id: str
    session_id: str
    sku: str
    name: str
    quantity: Decimal
    price: Decimal
    delivery_id: str


@dataclass(frozen=True, slots=True)
class CartRemove:
    """Remove ``sku`` from the cart."""

    action: ClassVar[str] = "remove"
    store_id: str
    session_id: str
    sku: str
    delivery_id: str


@dataclass(frozen=True, slots=True)
class CartUpdate:
    """Set the quantity of ``sku``."""

    action: ClassVar[str] = "update"
    store_id: str
    session_id: str
    sku: str
    quantity: Decimal
    delivery_id: str


@dataclass(frozen=True, slots=True)
class CartClear:
    """Empty the cart."""

    action: ClassVar[str] = "clear"
    store_id: str
    session_id: str
    delivery_id: str


#: One cart webhook call; ``match`` on the class to handle each action.
CartOperation = CartAdd | CartRemove | CartUpdate | CartClear


@dataclass(frozen=True, slots=True)
class CartQuery:
    """A cart GET call (docs/webhooks.md §6): whose cart to load."""

    store_id: str
    session_id: str
    delivery_id: str | None


# -- what the callbacks return -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Product:
    """One product's live price and stock; omit a SKU you do not sell."""

    sku: str
    price: Decimal
    in_stock: bool
    promo_price: Decimal | None = None
    promo_label: str | None = None

    def __post_init__(self) -> None:
        _text(self.sku, "sku", SKU)
        object.__setattr__(self, "price", _amount(self.price, "price"))
        if not isinstance(self.in_stock, bool):
            raise TypeError("in_stock must be a bool")
        if self.promo_price is not None:
            promo = _amount(self.promo_price, "promo_price")
            if promo >= self.price:
                raise ValueError("promo_price must be below price")
            object.__setattr__(self, "promo_price", promo)
        if self.promo_label is not None:
            _text(self.promo_label, "promo_label", PROMO_LABEL)

    def as_json(self) -> dict[str, object]:
        """The reply entry; optional fields only when set."""
        entry: dict[str, object] = {"sku": self.sku, "price": self.price, "in_stock": self.in_stock}
        if self.promo_price is not None:
            entry["promo_price"] = self.promo_price
        if self.promo_label is not None:
            entry["promo_label"] = self.promo_label
        return entry


@dataclass(frozen=True, slots=True)
class CartReply:
    """The answer to a cart operation: accepted, or refused with a reason the AI relays."""

    ok: bool
    reason: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.ok, bool):
            raise TypeError("ok must be a bool")
        if self.ok and self.reason is not None:
            raise ValueError("an accepted operation has no reason")
        if self.reason is not None and (problem := text_problem(self.reason, REASON)):
            raise ValueError(
                f"reason {problem} (it must be a non-blank string of at most "
                f"{MAX_REASON_CHARS} characters)"
            )

    @classmethod
    def accepted(cls) -> CartReply:
        """``{"ok": true}``."""
        return cls(ok=True)

    @classmethod
    def refused(cls, reason: str | None = None) -> CartReply:
        """``{"ok": false, "reason": ...}``; without a reason VIZOCHOK says ``"rejected"``."""
        return cls(ok=False, reason=reason)

    def as_json(self) -> dict[str, object]:
        """The reply body."""
        if self.reason is None:
            return {"ok": self.ok}
        return {"ok": self.ok, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class CartLine:
    """One line of a loaded cart."""

    sku: str
    name: str
    price: Decimal
    quantity: Decimal
    unit: str | None = None

    def __post_init__(self) -> None:
        _text(self.sku, "sku", SKU)
        _text(self.name, "name", NAME)
        object.__setattr__(self, "price", _amount(self.price, "price"))
        object.__setattr__(self, "quantity", _amount(self.quantity, "quantity", QUANTITY))
        if self.unit is not None:
            _text(self.unit, "unit", UNIT)

    def as_json(self) -> dict[str, object]:
        """The reply entry; ``unit`` only when set."""
        entry: dict[str, object] = {
            "sku": self.sku,
            "name": self.name,
            "price": self.price,
            "quantity": self.quantity,
        }
        if self.unit is not None:
            entry["unit"] = self.unit
        return entry


def products_body(products: list[Product]) -> bytes:
    """``{"products": [...]}`` with exact decimal numbers."""
    return _json.dumps({"products": [p.as_json() for p in products]})


def cart_items_body(lines: list[CartLine]) -> bytes:
    """``{"items": [...]}`` with exact decimal numbers."""
    return _json.dumps({"items": [line.as_json() for line in lines]})
