"""The event catalog: every type has a valid example, publish data is checked field by field, and
subscription patterns cover exactly the types they name (docs/webhooks.md §8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

import vizochok_dispatch
from vizochok_dispatch import InvalidCall
from vizochok_dispatch.contract import _json
from vizochok_dispatch.contract._events import event_body
from vizochok_dispatch.events._catalog import (
    EVENT_TYPES,
    lookup_event_type,
    match_event_types,
    type_matches,
    validate_event_data,
)

#: The ten types the platform publishes, in the docs' order.
TYPES = (
    "order.created",
    "order.updated",
    "order.cancelled",
    "chat.session.created",
    "chat.message.received",
    "chat.message.sent",
    "product.viewed",
    "product.added",
    "product.updated",
    "analytics.daily",
    "endpoint.disabled",
)


def _example(name: str) -> dict[str, Any]:
    return EVENT_TYPES[name].example


def test_the_catalog_holds_the_eleven_types_in_order():
    """EVENT_TYPES names the ten seed event types and endpoint.disabled, each under its name."""
    assert tuple(EVENT_TYPES) == TYPES
    assert all(entry.name == name for name, entry in EVENT_TYPES.items())
    assert all(entry.description for entry in EVENT_TYPES.values())


def test_event_types_is_public_and_read_only():
    """vizochok_dispatch.EVENT_TYPES is the catalog, and it cannot be changed."""
    assert vizochok_dispatch.EVENT_TYPES is EVENT_TYPES
    with pytest.raises(TypeError):
        EVENT_TYPES["x.y"] = EVENT_TYPES["order.created"]  # type: ignore[index]
    entry = EVENT_TYPES["order.created"]
    with pytest.raises(AttributeError):
        entry.name = "x"  # type: ignore[misc]


def test_an_example_is_a_fresh_copy():
    """Changing a returned example changes nothing in the catalog."""
    example = _example("order.created")
    example["items"][0]["sku"] = "changed"
    assert _example("order.created")["items"][0]["sku"] == "HP-BT-100"


@pytest.mark.parametrize("name", TYPES)
def test_every_example_validates_and_comes_back_unchanged(name):
    """Each example is valid data for its type, and already in the form it goes out in."""
    example = _example(name)
    assert validate_event_data(name, example) == example
    assert EVENT_TYPES[name].model.model_validate(example).model_dump() == example


@pytest.mark.parametrize("name", TYPES)
def test_every_example_serialises_to_json_with_exact_numbers(name):
    """The returned data goes into the body as is; amounts stay exact JSON numbers."""
    data = validate_event_data(name, _example(name))
    body = event_body("evt_1", name, datetime(2026, 1, 31, tzinfo=UTC), data)
    assert _json.loads(body)["data"] == _json.loads(_json.dumps(data))


def test_the_body_has_the_envelope_fields_in_order():
    """The body is {"id", "event", "timestamp" (UTC, ms), "data"}, compact."""
    when = datetime(2026, 1, 31, 12, 30, 1, 234567, tzinfo=timezone(timedelta(hours=2)))
    body = event_body("evt_abc", "product.viewed", when, {"sku": "a"})
    assert body == (
        b'{"id":"evt_abc","event":"product.viewed","timestamp":"2026-01-31T10:30:01.234Z",'
        b'"data":{"sku":"a"}}'
    )


def test_amounts_are_exact_decimals_in_short_form():
    """Prices given as int, float or Decimal come back as exact Decimals."""
    data = _example("product.added")
    for given, expected in [
        (45, "45"),
        (45.9, "45.9"),
        (Decimal("45.9000"), "45.9000"),
        (0.1, "0.1"),
        (Decimal("45.90000000"), "45.9000"),
    ]:
        out = validate_event_data("product.added", {**data, "price": given})
        assert out["price"] == Decimal(expected)
        assert isinstance(out["price"], Decimal)
        assert str(out["price"]) == expected


def test_times_go_out_as_utc_with_milliseconds():
    """An aware datetime or RFC 3339 text becomes ``…Z`` with milliseconds."""
    data = _example("chat.message.received")
    for given in [
        datetime(2026, 1, 15, 12, 30, 0, 5000, tzinfo=timezone(timedelta(hours=2))),
        "2026-01-15T12:30:00.005+02:00",
        "2026-01-15T10:30:00.005Z",
    ]:
        out = validate_event_data("chat.message.received", {**data, "created_at": given})
        assert out["created_at"] == "2026-01-15T10:30:00.005Z"


@pytest.mark.parametrize(
    ("name", "change", "field", "message"),
    [
        (
            "order.created",
            {"items": [{"sku": "a", "name": "A", "quantity": 1, "unit_price": 1.00001}]},
            "data.items[0].unit_price",
            "must have at most 4 decimal places",
        ),
        (
            "order.created",
            {"items": [{"sku": "a", "name": "A", "quantity": 0, "unit_price": 1}]},
            "data.items[0].quantity",
            "must be greater than 0",
        ),
        ("order.created", {"subtotal": 10**10}, "data.subtotal", "must be at most 1000000000"),
        ("order.created", {"subtotal": True}, "data.subtotal", "must be a number"),
        ("order.created", {"subtotal": "1950"}, "data.subtotal", "is a string, not a number"),
        ("order.created", {"items": []}, "data.items", "at least 1"),
        ("order.created", {"status": "shipped"}, "data.status", "must be one of"),
        ("order.created", {"stauts": "pending"}, "data.stauts", "is not a field"),
        ("order.created", {"sku": "a"}, "data.sku", "is not a field"),
        ("product.added", {"sku": ""}, "data.sku", "must not be empty"),
        ("product.added", {"sku": "a\x00b"}, "data.sku", "control characters"),
        ("product.added", {"name": "\ud800"}, "data.name", "lone surrogate"),
        ("product.added", {"name": 5}, "data.name", "is not a string"),
        ("product.added", {"unit": "x" * 33}, "data.unit", "at most 32 characters"),
        ("product.added", {"created_at": "2026-01-20T08:00:00"}, "data.created_at", "timezone"),
        ("product.added", {"created_at": 1700000000}, "data.created_at", "RFC 3339"),
        ("analytics.daily", {"orders": -1}, "data.orders", "greater than or equal to 0"),
        ("analytics.daily", {"orders": 3.0}, "data.orders", "integer"),
        ("analytics.daily", {"orders": True}, "data.orders", "integer"),
        ("analytics.daily", {"date": "15.01.2026"}, "data.date", "date"),
        (
            "chat.message.sent",
            {"products": [{"sku": "a", "name": "A", "relevance_score": 1.5}]},
            "data.products[0].relevance_score",
            "must be at most 1",
        ),
        ("chat.message.received", {"message": ""}, "data.message", "must not be empty"),
    ],
)
def test_a_broken_field_is_named(name, change, field, message):
    """InvalidCall names the field by its path in data and says what is wrong."""
    with pytest.raises(InvalidCall) as caught:
        validate_event_data(name, {**_example(name), **change})
    text = str(caught.value)
    assert f"{field}: " in text
    assert message in text.split(f"{field}: ", 1)[1]


def test_a_missing_field_is_named():
    """A required field left out is ``data.<field>: is missing``."""
    data = _example("product.viewed")
    del data["sku"]
    with pytest.raises(InvalidCall, match=r"data\.sku: is missing"):
        validate_event_data("product.viewed", data)


def test_every_broken_field_is_named_at_once():
    """One InvalidCall lists every problem, not only the first."""
    data = {**_example("product.added"), "price": -1, "sku": "", "colour": "red"}
    with pytest.raises(InvalidCall) as caught:
        validate_event_data("product.added", data)
    for field in ("data.price", "data.sku", "data.colour"):
        assert f"{field}: " in str(caught.value)


def test_the_problem_list_is_bounded():
    """Thousands of broken lines give a bounded message that counts the rest."""
    items = [{"sku": "", "name": "A", "quantity": 1, "unit_price": 1}] * 1000
    with pytest.raises(InvalidCall) as caught:
        validate_event_data("order.created", {**_example("order.created"), "items": items})
    assert "980 more problems not shown" in str(caught.value)
    assert len(str(caught.value)) < 3000


def test_an_error_does_not_quote_the_value():
    """The message names the field and the rule, not the tenant-bound value."""
    with pytest.raises(InvalidCall) as caught:
        validate_event_data(
            "order.created", {**_example("order.created"), "customer_phone": "+1" * 100}
        )
    assert "+1+1" not in str(caught.value)


def test_unknown_fields_are_refused_on_publish_but_ignored_by_the_model():
    """Publishing refuses a field the type lacks; the model alone (receivers) ignores it."""
    data = {**_example("product.viewed"), "new_field": 1}
    with pytest.raises(InvalidCall, match=r"data\.new_field: is not a field"):
        validate_event_data("product.viewed", data)
    model = EVENT_TYPES["product.viewed"].model.model_validate(data)
    assert "new_field" not in model.model_dump()


@pytest.mark.parametrize("name", ["order.create", "ORDER.CREATED", "", "order.*", 5])
def test_an_unknown_type_lists_the_known_ones(name):
    """An unknown event type is refused with the list of known types."""
    with pytest.raises(InvalidCall, match=r"is not an event type; known: order\.created, "):
        validate_event_data(name, {})
    with pytest.raises(InvalidCall, match=r"analytics\.daily"):
        lookup_event_type(name)


def test_data_must_be_a_mapping():
    """A list or a string as data is refused, naming data."""
    with pytest.raises(InvalidCall, match="data must be a mapping"):
        validate_event_data("product.viewed", ["sku"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("*", "order.created", True),
        ("*", "analytics.daily", True),
        ("order.*", "order.created", True),
        ("order.*", "order.cancelled", True),
        ("order.*", "chat.session.created", False),
        ("chat.*", "chat.message.sent", True),
        ("chat.message.*", "chat.message.sent", True),
        ("chat.message.*", "chat.session.created", False),
        ("order.created", "order.created", True),
        ("order.created", "order.updated", False),
        ("order", "order.created", False),
        ("order*", "order.created", False),
        ("orde.*", "order.created", False),
    ],
)
def test_type_matches(pattern, event_type, expected):
    """``*`` covers all, ``prefix.*`` types under the prefix, a name only itself."""
    assert type_matches(pattern, event_type) is expected


def test_match_event_types_expands_in_catalog_order():
    """Patterns expand to the covered types, each once, in the catalog's order."""
    assert match_event_types(["chat.session.created", "order.*", "order.created"]) == (
        "order.created",
        "order.updated",
        "order.cancelled",
        "chat.session.created",
    )
    assert match_event_types(["*"]) == TYPES
    assert match_event_types(["product.*"]) == (
        "product.viewed",
        "product.added",
        "product.updated",
    )


@pytest.mark.parametrize(
    "patterns",
    [
        ["order.create"],
        ["order"],
        ["order*"],
        ["*.created"],
        ["or*der.created"],
        ["billing.*"],
        ["order.*", "x"],
        ["**"],
    ],
)
def test_a_pattern_covering_nothing_is_refused(patterns):
    """An unknown name or a pattern that covers no type is refused, naming it and the types."""
    with pytest.raises(InvalidCall) as caught:
        match_event_types(patterns)
    bad = patterns[-1]
    assert f"event_types[{len(patterns) - 1}] {bad!r} matches no event type" in str(caught.value)
    assert "known: order.created, order.updated" in str(caught.value)


@pytest.mark.parametrize("patterns", [[], "order.*", None, [5]])
def test_event_types_must_be_a_non_empty_list_of_strings(patterns):
    """No patterns, a bare string or a non-string entry is refused."""
    with pytest.raises(InvalidCall, match="event_types"):
        match_event_types(patterns)
