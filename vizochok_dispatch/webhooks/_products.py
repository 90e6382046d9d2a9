"""The products webhook: its request body and the rules for reading its reply (docs/webhooks.md §4).

Reading a reply is bounded by the request, so a hostile reply costs little event-loop time:

- a reply larger than :func:`reply_cap` (64 KiB + 8 KiB per requested SKU, and never more
  than the deployment's response cap, 1 MiB by default) is ``invalid_response`` before it
  is decoded: a real entry is about 100 bytes, and the largest valid one (a 256-character
  SKU and a 200-character label, every character escaped) under 6 KiB;
- at most ``2 * len(skus) + ENTRY_SLACK`` entries are examined (a real reply has one per
  SKU, perhaps a repeat or a few extras); the rest are ignored, said in one problem line;
- at most ``MAX_PROBLEM_LINES`` problem lines are kept, the others counted in one line.

What remains is the JSON decoding of at most the cap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Final

from .._exceptions import InvalidCall
from ..contract import _json
from ..contract._money import MONEY, amount_problem, as_amount
from ..contract._text import MAX_SKUS, PROMO_LABEL, SKU, ProblemLines, is_text, shown, text_problem
from ._results import INVALID_RESPONSE, ProductOffer, ProductsResult

#: Entries examined beyond two per requested SKU.
ENTRY_SLACK: Final = 100
#: A products reply may hold this many bytes, plus :data:`REPLY_BYTES_PER_SKU` per SKU.
REPLY_BASE_BYTES: Final = 64 * 1024
REPLY_BYTES_PER_SKU: Final = 8 * 1024


def reply_cap(sku_count: int) -> int:
    """The largest products reply read for ``sku_count`` requested SKUs, in bytes."""
    return REPLY_BASE_BYTES + REPLY_BYTES_PER_SKU * sku_count


def unique_skus(skus: Iterable[str]) -> list[str]:
    """Requested SKUs without repeats, first occurrence first.

    Raises :class:`InvalidCall` naming the first bad SKU (see ``_text.SKU``), or when there
    are more than :data:`MAX_SKUS` distinct SKUs.
    """
    if isinstance(skus, str | bytes) or not isinstance(skus, Iterable):
        raise InvalidCall("skus must be a list of SKU strings, not one string")
    seen: dict[str, None] = {}
    for index, sku in enumerate(skus):
        if (problem := text_problem(sku, SKU)) is not None:
            raise InvalidCall(f"skus[{index}] {problem}")
        seen.setdefault(sku, None)
        if len(seen) > MAX_SKUS:
            raise InvalidCall(f"skus must hold at most {MAX_SKUS} distinct SKUs")
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
    if len(body) > (cap := reply_cap(len(skus))):
        problem = f"body is {len(body)} bytes; a reply for {len(skus)} SKUs is read up to {cap}"
        return all_unavailable(skus, INVALID_RESPONSE, (problem,))
    try:
        document = _json.loads(body)
    except (ValueError, RecursionError):
        return all_unavailable(skus, INVALID_RESPONSE, ("body is not JSON",))
    if not isinstance(document, dict) or not isinstance(document.get("products"), list):
        return all_unavailable(skus, INVALID_RESPONSE, ('body has no "products" list',))

    entries: list[object] = document["products"]
    examined = 2 * len(skus) + ENTRY_SLACK
    requested = set(skus)
    offers: dict[str, ProductOffer] = {}
    out_of_stock: set[str] = set()
    problems = ProblemLines()
    for index, entry in enumerate(entries[:examined]):
        if not isinstance(entry, dict):
            problems.add(f"products[{index}]: is not an object")
            continue
        sku = entry.get("sku")
        if not isinstance(sku, str):
            problems.add(f"products[{index}]: sku is missing or not a string")
            continue
        if sku not in requested:
            problems.add(f"products[{index}]: sku {shown(sku)} was not requested; ignored")
            continue
        if sku in offers or sku in out_of_stock:
            problems.add(f"{sku}: appears again; the first valid entry is kept")
            continue
        offer, entry_problems = _offer(sku, entry)
        for line in entry_problems:
            problems.add(line)
        if offer is not None:
            offers[sku] = offer
        elif not entry_problems:
            out_of_stock.add(sku)
    ignored: tuple[str, ...] = ()
    if len(entries) > examined:
        ignored = (
            f"products[{examined}:]: {len(entries) - examined} more entries ignored "
            f"(a reply for {len(skus)} SKUs is read up to {examined} entries)",
        )
    return ProductsResult(
        available=tuple(offers[sku] for sku in skus if sku in offers),
        unavailable=tuple(sku for sku in skus if sku not in offers),
        failure=None,
        problems=problems.lines() + ignored,
    )


def _offer(sku: str, entry: Mapping[str, object]) -> tuple[ProductOffer | None, list[str]]:
    """The entry's offer; ``(None, [])`` when out of stock, ``(None, problems)`` when invalid.

    ``sku`` was requested, so it is valid text and may be quoted as it is.
    """
    problems: list[str] = []
    price = entry.get("price")
    if (problem := amount_problem(price, MONEY)) is not None:
        return None, [f"{sku}: price {problem}"]
    in_stock = entry.get("in_stock")
    if not isinstance(in_stock, bool):
        return None, [f"{sku}: in_stock is missing or not a boolean"]
    if not in_stock:
        return None, []
    money = as_amount(price, MONEY)
    promo_price: Decimal | None = None
    promo_label: str | None = None
    raw_promo, raw_label = entry.get("promo_price"), entry.get("promo_label")
    promo_dropped = False
    if raw_promo is not None:
        if (problem := amount_problem(raw_promo, MONEY)) is not None:
            problems.append(f"{sku}: promo_price {problem}; promotion dropped")
            promo_dropped = True
        elif as_amount(raw_promo, MONEY) >= money:
            problems.append(f"{sku}: promo_price is not below price; promotion dropped")
            promo_dropped = True
        else:
            promo_price = as_amount(raw_promo, MONEY)
    if raw_label is not None and not promo_dropped:
        if is_text(raw_label, PROMO_LABEL):
            promo_label = raw_label
        else:
            problems.append(
                f"{sku}: promo_label {text_problem(raw_label, PROMO_LABEL)}; label dropped"
            )
    offer = ProductOffer(sku=sku, price=money, promo_price=promo_price, promo_label=promo_label)
    return offer, problems
