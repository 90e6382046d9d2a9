"""The cart webhooks: operation bodies, the GET URL, and reading replies (docs/webhooks.md §5, §6).

A caller's arguments are checked before anything is sent (amounts: ``_money``, text:
``_text``); a bad one raises :class:`InvalidCall` naming the field.  A tenant's reply is
read within the same limits: a bad cart line is dropped alone, a bad refusal reason becomes
``"rejected"``, and a cart of more than :data:`MAX_CART_ITEMS` lines is not loaded.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final
from urllib.parse import urlencode, urlsplit, urlunsplit

from .._exceptions import InvalidCall
from ..contract import _json
from ..contract._money import MONEY, QUANTITY, AmountRule, amount_problem, as_amount, caller_amount
from ..contract._text import (
    NAME,
    REASON,
    SESSION_ID,
    SKU,
    STORE_ID,
    UNIT,
    ProblemLines,
    checked_text,
    is_text,
    text_problem,
)
from ._results import (
    INVALID_RESPONSE,
    REJECTED_REASON,
    WEBHOOK_TIMEOUT_REASON,
    CartItem,
    CartLoad,
    CartResult,
)

#: Lines a loaded cart may have; a reply with more is not a cart (``invalid_response``).
MAX_CART_ITEMS: Final = 1000


def _amount(value: object, field: str, rule: AmountRule) -> Decimal:
    try:
        return caller_amount(value, field, rule)
    except (TypeError, ValueError) as exc:
        raise InvalidCall(str(exc)) from None


def operation_body(action: str, *, store_id: str, session_id: str, **fields: object) -> bytes:
    """The body of one cart operation, fields in the contract's order; checks the caller's input."""
    body: dict[str, object] = {
        "action": action,
        "store_id": checked_text(store_id, "store_id", STORE_ID),
        "session_id": checked_text(session_id, "session_id", SESSION_ID),
    }
    if action in ("add", "remove", "update"):
        body["sku"] = checked_text(fields["sku"], "sku", SKU)
    if action == "add":
        body["name"] = checked_text(fields["name"], "name", NAME)
    if action in ("add", "update"):
        body["quantity"] = _amount(fields["quantity"], "quantity", QUANTITY)
    if action == "add":
        body["price"] = _amount(fields["price"], "price", MONEY)
    return _json.dumps(body)


def failed(detail: str, problems: tuple[str, ...] = ()) -> CartResult:
    """Any delivery failure, exactly as the chat's AI expects it."""
    return CartResult(ok=False, reason=WEBHOOK_TIMEOUT_REASON, detail=detail, problems=problems)


def parse_operation_reply(body: bytes) -> CartResult:
    """``{"ok": true}`` or ``{"ok": false, "reason": ...}``; anything else is a delivery failure.

    A reason that is not text under ``_text.REASON`` is replaced by ``"rejected"`` and the
    replacement is named in ``problems`` (for the log; the tenant's text is not quoted).
    """
    try:
        document = _json.loads(body)
    except (ValueError, RecursionError):
        return failed(INVALID_RESPONSE, ("body is not JSON",))
    if not isinstance(document, dict) or not isinstance(document.get("ok"), bool):
        return failed(INVALID_RESPONSE, ('body has no boolean "ok"',))
    if document["ok"]:
        return CartResult(ok=True)
    reason = document.get("reason")
    if is_text(reason, REASON):
        return CartResult(ok=False, reason=reason)
    problems = (
        () if reason is None else (f'reason {text_problem(reason, REASON)}; "rejected" given',)
    )
    return CartResult(ok=False, reason=REJECTED_REASON, problems=problems)


def load_url(cart_get_url: str, *, store_id: str, session_id: str) -> str:
    """``cart_get_url`` with ``store_id`` and ``session_id`` added to any query it has."""
    parts = urlsplit(cart_get_url)
    added = urlencode(
        {
            "store_id": checked_text(store_id, "store_id", STORE_ID),
            "session_id": checked_text(session_id, "session_id", SESSION_ID),
        }
    )
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit(parts._replace(query=query))


def parse_load_reply(body: bytes) -> CartLoad:
    """Items of a loaded cart; an invalid item is dropped alone."""
    try:
        document = _json.loads(body)
    except (ValueError, RecursionError):
        return CartLoad(loaded=False, failure=INVALID_RESPONSE, problems=("body is not JSON",))
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        return CartLoad(
            loaded=False, failure=INVALID_RESPONSE, problems=('body has no "items" list',)
        )
    entries: list[object] = document["items"]
    if len(entries) > MAX_CART_ITEMS:
        problem = f"items: {len(entries)} lines; a cart has at most {MAX_CART_ITEMS}"
        return CartLoad(loaded=False, failure=INVALID_RESPONSE, problems=(problem,))
    items: list[CartItem] = []
    problems = ProblemLines()
    for index, entry in enumerate(entries):
        item, problem = _item(entry)
        if item is None:
            problems.add(f"items[{index}]: {problem}")
        else:
            items.append(item)
    return CartLoad(loaded=True, items=tuple(items), problems=problems.lines())


def _item(entry: object) -> tuple[CartItem | None, str]:
    """One cart line, or why it is dropped (the SKU is quoted only once it is valid text)."""
    if not isinstance(entry, dict):
        return None, "is not an object"
    sku, name, unit = entry.get("sku"), entry.get("name"), entry.get("unit")
    if not is_text(sku, SKU):
        return None, f"sku {text_problem(sku, SKU)}"
    if not is_text(name, NAME):
        return None, f"{sku}: name {text_problem(name, NAME)}"
    price, quantity = entry.get("price"), entry.get("quantity")
    if (problem := amount_problem(price, MONEY)) is not None:
        return None, f"{sku}: price {problem}"
    if (problem := amount_problem(quantity, QUANTITY)) is not None:
        return None, f"{sku}: quantity {problem}"
    if unit is not None and not is_text(unit, UNIT):
        return None, f"{sku}: unit {text_problem(unit, UNIT)}"
    return CartItem(
        sku=sku,
        name=name,
        price=as_amount(price, MONEY),
        quantity=as_amount(quantity, QUANTITY),
        unit=unit,
    ), ""
