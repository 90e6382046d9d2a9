"""The products webhook: its request body and the rules for reading its reply (CONTRACT §4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from . import _json
from ._exceptions import InvalidCall
from ._money import as_money, number_problem
from ._results import INVALID_RESPONSE, ProductOffer, ProductsResult

MAX_PROMO_LABEL_CHARS = 200
#: An unrequested SKU is the tenant's text; only this much of it goes into a problem line.
MAX_LOGGED_SKU_CHARS = 64


def unique_skus(skus: Iterable[str]) -> list[str]:
    """Requested SKUs without repeats, first occurrence first; refuses non-strings."""
    if isinstance(skus, str | bytes):
        raise InvalidCall("skus must be a list of SKU strings, not one string")
    seen: dict[str, None] = {}
    for sku in skus:
        if not isinstance(sku, str) or not sku:
            raise InvalidCall("every SKU must be a non-empty string")
        seen.setdefault(sku, None)
    return list(seen)


def request_body(skus: Sequence[str], store_id: str) -> bytes:
    """``{"skus": [...], "store_id": "..."}`` as sent and signed."""
    return _json.dumps({"skus": list(skus), "store_id": store_id})


def all_unavailable(
    skus: Sequence[str], failure: str, problems: tuple[str, ...] = ()
) -> ProductsResult:
    """The result of any delivery failure: every requested SKU is unavailable."""
    return ProductsResult(available=(), unavailable=tuple(skus), failure=failure, problems=problems)


def parse_reply(skus: Sequence[str], body: bytes) -> ProductsResult:
    """Turn a 200 body into offers; a bad entry costs only its own SKU."""
    try:
        document = _json.loads(body)
    except (ValueError, RecursionError):
        return all_unavailable(skus, INVALID_RESPONSE, ("body is not JSON",))
    if not isinstance(document, dict) or not isinstance(document.get("products"), list):
        return all_unavailable(skus, INVALID_RESPONSE, ('body has no "products" list',))

    requested = set(skus)
    offers: dict[str, ProductOffer] = {}
    out_of_stock: set[str] = set()
    problems: list[str] = []
    for index, entry in enumerate(document["products"]):
        if not isinstance(entry, dict):
            problems.append(f"products[{index}]: is not an object")
            continue
        sku = entry.get("sku")
        if not isinstance(sku, str):
            problems.append(f"products[{index}]: sku is missing or not a string")
            continue
        if sku not in requested:
            problems.append(f"{sku[:MAX_LOGGED_SKU_CHARS]!r}: was not requested; ignored")
            continue
        if sku in offers or sku in out_of_stock:
            problems.append(f"{sku}: appears again; the first valid entry is kept")
            continue
        offer, entry_problems = _offer(sku, entry)
        problems.extend(entry_problems)
        if offer is not None:
            offers[sku] = offer
        elif not entry_problems:
            out_of_stock.add(sku)
    return ProductsResult(
        available=tuple(offers[sku] for sku in skus if sku in offers),
        unavailable=tuple(sku for sku in skus if sku not in offers),
        failure=None,
        problems=tuple(problems),
    )


def _offer(sku: str, entry: Mapping[str, object]) -> tuple[ProductOffer | None, list[str]]:
    """The entry's offer; ``(None, [])`` when out of stock, ``(None, problems)`` when invalid."""
    problems: list[str] = []
    price = entry.get("price")
    if (problem := number_problem(price)) is not None:
        return None, [f"{sku}: price {problem}"]
    in_stock = entry.get("in_stock")
    if not isinstance(in_stock, bool):
        return None, [f"{sku}: in_stock is missing or not a boolean"]
    if not in_stock:
        return None, []
    money = as_money(price)
    promo_price: Decimal | None = None
    promo_label: str | None = None
    raw_promo, raw_label = entry.get("promo_price"), entry.get("promo_label")
    promo_dropped = False
    if raw_promo is not None:
        if (problem := number_problem(raw_promo)) is not None:
            problems.append(f"{sku}: promo_price {problem}; promotion dropped")
            promo_dropped = True
        elif as_money(raw_promo) >= money:
            problems.append(f"{sku}: promo_price is not below price; promotion dropped")
            promo_dropped = True
        else:
            promo_price = as_money(raw_promo)
    if raw_label is not None and not promo_dropped:
        if isinstance(raw_label, str) and len(raw_label) <= MAX_PROMO_LABEL_CHARS:
            promo_label = raw_label
        else:
            problems.append(f"{sku}: promo_label is not a short string; label dropped")
    offer = ProductOffer(sku=sku, price=money, promo_price=promo_price, promo_label=promo_label)
    return offer, problems
