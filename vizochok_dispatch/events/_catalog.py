"""The event catalog: each event type's name, description, ``data`` model and example.

The models live in ``contract._events`` (the receiver kit parses with them too); this module
adds what the platform needs to publish: :data:`EVENT_TYPES`, :func:`validate_event_data`
and the subscription patterns of :func:`match_event_types` (docs/webhooks.md §8).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from .._exceptions import InvalidCall
from ..contract._events import DATA_MODELS, EVENT_MODELS, field_path, problem_text

#: Problems named in one ``InvalidCall``; the rest are counted.
MAX_PROBLEMS: Final = 20


@dataclass(frozen=True, slots=True)
class EventType:
    """One entry of the catalog.

    ``model`` is the pydantic model of the event's ``data``; ``example`` is a ``data`` dict
    that validates against it, as it goes out (the docs show it, tests hold it).
    """

    name: str
    description: str
    model: type[BaseModel]
    _example: Mapping[str, Any] = field(repr=False)

    @property
    def example(self) -> dict[str, Any]:
        """A fresh copy of the example ``data`` (changing it changes nothing here)."""
        return copy.deepcopy(dict(self._example))

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema (2020-12) of this type's request body, envelope and ``data``:
        ``docs/schemas/event-<name with - for .>.schema.json`` holds exactly this."""
        generated = EVENT_MODELS[self.name].model_json_schema()
        generated.pop("title", None)
        generated.pop("description", None)
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"Event {self.name}",
            "description": (
                f"The body of the {self.name} event request (docs/webhooks.md §10). "
                f"{self.description} Fields may be added later: ignore the ones you do not know."
            ),
            **_untitled(generated),
        }


def _untitled(schema: Any) -> Any:  # noqa: ANN401 - any JSON value
    """``schema`` without the ``title`` pydantic gives every field and model (the names are
    the keys already); property names themselves are kept."""
    if isinstance(schema, list):
        return [_untitled(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in {"properties", "$defs"}:
            out[key] = {name: _untitled(sub) for name, sub in value.items()}
        elif key != "title":
            out[key] = _untitled(value)
    return out


_ORDER: dict[str, Any] = {
    "id": "679d3f8a2e1b4c5d6e7f8a9b",
    "order_number": "ORD-20260131-A1B2",
    "store_id": "store-1",
    "session_id": "sess-8f2c",
    "customer_name": "Rahim Uddin",
    "customer_phone": "+8801712345678",
    "shipping_address": "House 12, Road 5, Dhanmondi, Dhaka",
    "items": [
        {
            "sku": "HP-BT-100",
            "name": "Wireless Bluetooth Headphones",
            "quantity": 1,
            "unit_price": 1250,
        },
        {"sku": "CASE-BLK", "name": "Phone Case - Black", "quantity": 2, "unit_price": 350},
    ],
    "subtotal": 1950,
    "source_type": "social",
    "source_name": "My Shop - Facebook Page",
    "created_at": "2026-01-31T10:30:00.000Z",
}

_EXAMPLES: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "order.created": (
        "A customer completed an order in the chat.",
        {**_ORDER, "status": "pending"},
    ),
    "order.updated": (
        "An order's status changed (confirmed, shipped, delivered).",
        {
            **_ORDER,
            "source_type": "widget",
            "source_name": "shop.example",
            "status": "shipped",
            "previous_status": "confirmed",
            "updated_at": "2026-02-02T14:15:30.000Z",
        },
    ),
    "order.cancelled": (
        "The customer or an agent cancelled an order.",
        {
            **_ORDER,
            "items": _ORDER["items"][:1],
            "subtotal": 1250,
            "status": "cancelled",
            "previous_status": "pending",
            "updated_at": "2026-02-01T09:45:12.000Z",
        },
    ),
    "chat.session.created": (
        "A customer started a chat.",
        {
            "session_id": "sess-8f2c",
            "store_id": "store-1",
            "source_type": "widget",
            "source_name": "shop.example",
            "created_at": "2026-01-15T10:29:12.000Z",
        },
    ),
    "chat.message.received": (
        "The customer sent a message.",
        {
            "session_id": "sess-8f2c",
            "store_id": "store-1",
            "message": "Looking for running shoes",
            "created_at": "2026-01-15T10:30:00.000Z",
        },
    ),
    "chat.message.sent": (
        "The assistant answered, with the products it recommended.",
        {
            "session_id": "sess-8f2c",
            "store_id": "store-1",
            "message": "These two are light and good for daily runs.",
            "products": [
                {"sku": "NIKE-AIRMAX-42", "name": "Nike Air Max", "relevance_score": 0.95},
                {"sku": "ASICS-GEL-42", "name": "Asics Gel-Nimbus", "relevance_score": 0.87},
            ],
            "created_at": "2026-01-15T10:30:02.000Z",
        },
    ),
    "product.viewed": (
        "The customer opened a product the assistant recommended.",
        {
            "session_id": "sess-8f2c",
            "store_id": "store-1",
            "sku": "NIKE-AIRMAX-42",
            "viewed_at": "2026-01-15T10:30:40.000Z",
        },
    ),
    "product.added": (
        "A product was added to the store's catalog.",
        {
            "store_id": "store-1",
            "sku": "MILK-1L",
            "name": "Milk 2.5% 1 l",
            "price": Decimal("45.90"),
            "unit": "pcs",
            "created_at": "2026-01-20T08:00:00.000Z",
        },
    ),
    "product.updated": (
        "A product of the store's catalog changed; changed names the fields.",
        {
            "store_id": "store-1",
            "sku": "MILK-1L",
            "name": "Milk 2.5% 1 l",
            "price": Decimal("42.50"),
            "unit": "pcs",
            "changed": ["price"],
            "updated_at": "2026-01-22T08:00:00.000Z",
        },
    ),
    "analytics.daily": (
        "One store's totals for one UTC day, sent after the day ends.",
        {
            "store_id": "store-1",
            "date": "2026-01-15",
            "sessions": 412,
            "messages_received": 1630,
            "messages_sent": 1598,
            "product_views": 705,
            "orders": 37,
            "revenue": Decimal("58210.50"),
        },
    ),
    "endpoint.disabled": (
        "Delivery disabled another of your event endpoints (it answered 410, or kept failing);"
        " sent only where the platform turns this notice on.",
        {
            "endpoint_id": "ep_01kazz9a2b5c8d1e4f7g0h3j6k",
            "url": "https://shop.example/hooks/orders",
            "cause": "too_many_failures",
            "reason": "100 deliveries in a row failed",
            "failed_deliveries": 100,
            "disabled_at": "2026-01-20T08:00:00.000Z",
        },
    ),
}


def _example(raw: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    # Kept as it goes out: Decimals, times as text.
    return model.model_validate(raw, extra="forbid").model_dump()


#: Every event type by name, in the docs' order (read-only).
EVENT_TYPES: Final[Mapping[str, EventType]] = MappingProxyType(
    {
        name: EventType(name, description, model, _example(raw, model))
        for name, model in DATA_MODELS.items()
        for description, raw in [_EXAMPLES[name]]
    }
)


def _known() -> str:
    return ", ".join(EVENT_TYPES)


def lookup_event_type(name: str) -> EventType:
    """The catalog entry for ``name``; ``InvalidCall`` listing the known types otherwise."""
    try:
        return EVENT_TYPES[name]
    except (KeyError, TypeError):
        raise InvalidCall(
            f"event_type {name!r:.80} is not an event type; known: {_known()}"
        ) from None


def validate_event_data(event_type: str, data: Mapping[str, object]) -> dict[str, object]:
    """``data`` checked against ``event_type``'s model, as it will be serialised.

    Returns a new dict: amounts as ``Decimal`` (written as JSON numbers by the package's
    JSON writer), times as RFC 3339 UTC text with milliseconds, dates as ``YYYY-MM-DD``,
    ``null`` for an optional field left out.  Unknown fields are refused, so a misspelt
    field fails here rather than reaching tenants.

    Raises :class:`InvalidCall` for an unknown type (listing the known ones) or naming every
    broken field: ``data.items[0].unit_price: must have at most 4 decimal places``.
    """
    entry = lookup_event_type(event_type)
    if not isinstance(data, Mapping):
        raise InvalidCall(f"data must be a mapping (a JSON object), not {type(data).__name__}")
    try:
        model = entry.model.model_validate(dict(data), extra="forbid")
    except ValidationError as error:
        lines = [
            f"{field_path(problem['loc'])}: {problem_text(dict(problem))}"
            for problem in error.errors(include_url=False, include_input=False)
        ]
        shown = lines[:MAX_PROBLEMS]
        if len(lines) > MAX_PROBLEMS:
            shown.append(f"... {len(lines) - MAX_PROBLEMS} more problems not shown")
        raise InvalidCall(f"invalid {entry.name} data: " + "; ".join(shown)) from None
    return model.model_dump()


def type_matches(pattern: str, event_type: str) -> bool:
    """Whether a subscription ``pattern`` covers ``event_type``.

    ``*`` covers every type; ``order.*`` every type whose name starts with ``order.``
    (``chat.*`` covers ``chat.message.sent``); any other pattern only the type of that name.
    """
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def match_event_types(patterns: Sequence[str]) -> tuple[str, ...]:
    """The catalog types ``patterns`` cover, in catalog order.

    Raises :class:`InvalidCall` (listing the known types) when ``patterns`` is empty or a
    string, or when a pattern is not text, is malformed (``*`` only as the whole pattern or
    after the last dot) or covers no type.
    """
    if isinstance(patterns, str | bytes) or not isinstance(patterns, Sequence):
        raise InvalidCall("event_types must be a list of event types or patterns")
    if not patterns:
        raise InvalidCall(f"event_types must name at least one event type; known: {_known()}")
    covered: set[str] = set()
    for index, pattern in enumerate(patterns):
        if not isinstance(pattern, str):
            raise InvalidCall(f"event_types[{index}] must be a string")
        matched = {name for name in EVENT_TYPES if type_matches(pattern, name)}
        if "*" in pattern.removesuffix(".*").removesuffix("*") or not matched:
            raise InvalidCall(
                f"event_types[{index}] {pattern!r:.80} matches no event type; use a type name, "
                f"a prefix such as order.* or *; known: {_known()}"
            )
        covered |= matched
    return tuple(name for name in EVENT_TYPES if name in covered)
