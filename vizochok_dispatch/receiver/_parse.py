"""Reading the dispatcher's request bodies and queries (docs/webhooks.md §4-6) into callback values.

Every broken field is reported at once, by name, so a 422 tells the sender all that is wrong.
Unknown fields are ignored: a newer dispatcher may add some, and they carry no instruction.
Amounts and text follow the dispatcher's own limits (``_money``, ``_text``): what one side
sends, the other accepts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Final

from .._exceptions import FieldError
from ..contract import _json
from ..contract._money import MONEY, QUANTITY, AmountRule, amount_problem, as_amount
from ..contract._text import (
    MAX_SKUS,
    NAME,
    SESSION_ID,
    SKU,
    STORE_ID,
    TextRule,
    is_text,
    text_problem,
)
from ._models import (
    CartAdd,
    CartClear,
    CartOperation,
    CartQuery,
    CartRemove,
    CartUpdate,
    ProductsQuery,
)

ACTIONS: Final = ("add", "remove", "update", "clear")


class InvalidRequest(Exception):
    """A verified request whose body or query breaks the contract: answer 422."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(map(str, self.errors)))


def load_json(body: bytes) -> object:
    """The body as JSON with exact decimals; only UTF-8 is accepted, as the contract sends."""
    try:
        return _json.loads(body)
    except UnicodeDecodeError:
        raise InvalidRequest([FieldError("body", "is not UTF-8 text")]) from None
    except (ValueError, RecursionError):
        raise InvalidRequest([FieldError("body", "is not valid JSON")]) from None


def products_query(document: object, delivery_id: str | None) -> ProductsQuery:
    """``{"skus": [...], "store_id": "..."}``; repeated SKUs are folded, first one kept."""
    fields = _object(document)
    errors: list[FieldError] = []
    skus = fields.get("skus")
    unique: dict[str, None] = {}
    if not isinstance(skus, list):
        errors.append(FieldError("skus", "must be a list of SKU strings"))
    elif not skus:
        errors.append(FieldError("skus", "must not be empty"))
    elif len(skus) > MAX_SKUS:
        errors.append(FieldError("skus", f"must hold at most {MAX_SKUS} SKUs"))
    else:
        for index, sku in enumerate(skus):
            if is_text(sku, SKU):
                unique.setdefault(sku, None)
            else:
                errors.append(FieldError(f"skus[{index}]", str(text_problem(sku, SKU))))
    store_id = _text(fields, "store_id", STORE_ID, errors)
    if errors:
        raise InvalidRequest(errors)
    return ProductsQuery(skus=tuple(unique), store_id=store_id, delivery_id=delivery_id)


def cart_operation(document: object, delivery_id: str) -> CartOperation:
    """One of the four cart bodies, chosen by ``action``, with every field it needs."""
    fields = _object(document)
    errors: list[FieldError] = []
    action = fields.get("action")
    if action not in ACTIONS:
        errors.append(FieldError("action", "must be one of " + ", ".join(ACTIONS)))
    store_id = _text(fields, "store_id", STORE_ID, errors)
    session_id = _text(fields, "session_id", SESSION_ID, errors)
    sku = _text(fields, "sku", SKU, errors) if action in ("add", "remove", "update") else ""
    name = _text(fields, "name", NAME, errors) if action == "add" else ""
    quantity = (
        _amount(fields, "quantity", QUANTITY, errors) if action in ("add", "update") else Decimal(0)
    )
    price = _amount(fields, "price", MONEY, errors) if action == "add" else Decimal(0)
    if errors:
        raise InvalidRequest(errors)
    common = {"store_id": store_id, "session_id": session_id, "delivery_id": delivery_id}
    if action == "add":
        return CartAdd(sku=sku, name=name, quantity=quantity, price=price, **common)
    if action == "remove":
        return CartRemove(sku=sku, **common)
    if action == "update":
        return CartUpdate(sku=sku, quantity=quantity, **common)
    return CartClear(**common)


def cart_query(params: Sequence[tuple[str, str]], delivery_id: str | None) -> CartQuery:
    """``store_id`` and ``session_id`` from the query string, once each; others are ignored.

    Other parameters may be the tenant's own, already in its ``cart_get_url`` (docs/webhooks.md §6).
    """
    errors: list[FieldError] = []
    found: dict[str, str] = {}
    for name, rule in (("store_id", STORE_ID), ("session_id", SESSION_ID)):
        values = [value for key, value in params if key == name]
        if len(values) != 1:
            problem = "is required" if not values else "must appear once, not repeated"
            errors.append(FieldError(name, problem))
        elif not is_text(values[0], rule):
            errors.append(FieldError(name, str(text_problem(values[0], rule))))
        else:
            found[name] = values[0]
    if errors:
        raise InvalidRequest(errors)
    return CartQuery(
        store_id=found["store_id"], session_id=found["session_id"], delivery_id=delivery_id
    )


def _object(document: object) -> Mapping[str, object]:
    if not isinstance(document, dict):
        raise InvalidRequest([FieldError("body", "must be a JSON object")])
    return document


def _text(fields: Mapping[str, object], name: str, rule: TextRule, errors: list[FieldError]) -> str:
    value = fields.get(name)
    if not is_text(value, rule):
        errors.append(FieldError(name, str(text_problem(value, rule))))
        return ""
    return value


def _amount(
    fields: Mapping[str, object], name: str, rule: AmountRule, errors: list[FieldError]
) -> Decimal:
    value = fields.get(name)
    if (problem := amount_problem(value, rule)) is not None:
        errors.append(FieldError(name, problem))
        return Decimal(0)
    return as_amount(value, rule)
