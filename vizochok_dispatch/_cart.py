"""The cart webhooks: operation bodies, the GET URL, and reading replies (CONTRACT §5, §6)."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlencode, urlsplit, urlunsplit

from . import _json
from ._exceptions import InvalidCall
from ._money import as_money, number_problem, to_decimal
from ._results import (
    INVALID_RESPONSE,
    REJECTED_REASON,
    WEBHOOK_TIMEOUT_REASON,
    CartItem,
    CartLoad,
    CartResult,
)

MAX_REASON_CHARS = 200


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidCall(f"{field} must be a non-empty string")
    return value


def _amount(value: object, field: str, *, positive: bool) -> Decimal:
    try:
        return to_decimal(value, field, positive=positive)
    except (TypeError, ValueError) as exc:
        raise InvalidCall(str(exc)) from None


def operation_body(action: str, *, store_id: str, session_id: str, **fields: object) -> bytes:
    """The body of one cart operation, fields in the contract's order; checks the caller's input."""
    body: dict[str, object] = {
        "action": action,
        "store_id": _text(store_id, "store_id"),
        "session_id": _text(session_id, "session_id"),
    }
    if action in ("add", "remove", "update"):
        body["sku"] = _text(fields["sku"], "sku")
    if action == "add":
        name = fields["name"]
        if not isinstance(name, str):
            raise InvalidCall("name must be a string")
        body["name"] = name
    if action in ("add", "update"):
        body["quantity"] = _amount(fields["quantity"], "quantity", positive=True)
    if action == "add":
        body["price"] = _amount(fields["price"], "price", positive=False)
    return _json.dumps(body)


def failed(detail: str, problems: tuple[str, ...] = ()) -> CartResult:
    """Any delivery failure, exactly as the chat's AI expects it."""
    return CartResult(ok=False, reason=WEBHOOK_TIMEOUT_REASON, detail=detail, problems=problems)


def parse_operation_reply(body: bytes) -> CartResult:
    """``{"ok": true}`` or ``{"ok": false, "reason": ...}``; anything else is a delivery failure."""
    try:
        document = _json.loads(body)
    except (ValueError, RecursionError):
        return failed(INVALID_RESPONSE, ("body is not JSON",))
    if not isinstance(document, dict) or not isinstance(document.get("ok"), bool):
        return failed(INVALID_RESPONSE, ('body has no boolean "ok"',))
    if document["ok"]:
        return CartResult(ok=True)
    reason = document.get("reason")
    if isinstance(reason, str) and reason.strip() and len(reason) <= MAX_REASON_CHARS:
        return CartResult(ok=False, reason=reason)
    problems = () if reason is None else ("reason is not a short string; replaced",)
    return CartResult(ok=False, reason=REJECTED_REASON, problems=problems)


def load_url(cart_get_url: str, *, store_id: str, session_id: str) -> str:
    """``cart_get_url`` with ``store_id`` and ``session_id`` added to any query it has."""
    parts = urlsplit(cart_get_url)
    added = urlencode(
        {"store_id": _text(store_id, "store_id"), "session_id": _text(session_id, "session_id")}
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
    items: list[CartItem] = []
    problems: list[str] = []
    for index, entry in enumerate(document["items"]):
        item, problem = _item(entry)
        if item is None:
            problems.append(f"items[{index}]: {problem}")
        else:
            items.append(item)
    return CartLoad(loaded=True, items=tuple(items), problems=tuple(problems))


def _item(entry: object) -> tuple[CartItem | None, str]:
    if not isinstance(entry, dict):
        return None, "is not an object"
    sku, name, unit = entry.get("sku"), entry.get("name"), entry.get("unit")
    if not isinstance(sku, str) or not sku:
        return None, "sku is missing or not a string"
    if not isinstance(name, str):
        return None, f"{sku}: name is missing or not a string"
    if (problem := number_problem(entry.get("price"))) is not None:
        return None, f"{sku}: price {problem}"
    if (problem := number_problem(entry.get("quantity"), positive=True)) is not None:
        return None, f"{sku}: quantity {problem}"
    if unit is not None and not isinstance(unit, str):
        return None, f"{sku}: unit is not a string"
    return CartItem(
        sku=sku,
        name=name,
        price=as_money(entry.get("price")),
        quantity=as_money(entry.get("quantity")),
        unit=unit,
    ), ""
