"""docs/webhooks.md: its examples, schemas and tables agree with each other and with the package.

Every ```json block in the page is labelled ``<!-- example: NAME [label] -->`` or
``<!-- schema: NAME -->``; NAME is a file ``docs/schemas/NAME.schema.json``.  The admin API's
shapes in §7 are labelled ``<!-- admin: MODEL -->``, MODEL a schema of the admin app's OpenAPI
(``tests/docs/test_admin_shapes.py`` checks them). Each example
must validate against its schema, be what the dispatcher sends (requests) and be read by the
dispatcher without a single problem (replies), and be accepted and reproduced by the receiver
kit. Counter-examples that break a schema rule must be refused by the package as well.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from jsonschema import Draft202012Validator

from tests.support.vectors import REPO_ROOT, load_vectors
from vizochok_dispatch import EVENT_TYPES, InvalidCall, compute_signature
from vizochok_dispatch.contract import _json as wire_json
from vizochok_dispatch.contract._events import EVENT_MODELS, event_body
from vizochok_dispatch.contract._signing import event_headers
from vizochok_dispatch.events._catalog import validate_event_data
from vizochok_dispatch.events._schedule import DEFAULT_RETRY_SCHEDULE
from vizochok_dispatch.receiver import CartLine, CartReply, Product, parse_event
from vizochok_dispatch.receiver import _models as receiver_models
from vizochok_dispatch.receiver import _parse as receiver_parse
from vizochok_dispatch.webhooks import _cart, _products, _results

DOC = REPO_ROOT / "docs" / "webhooks.md"
SCHEMAS = REPO_ROOT / "docs" / "schemas"

_LABELLED = re.compile(
    r"<!-- (?P<kind>example|schema|admin): (?P<name>[A-Za-z-]+)(?: (?P<label>[a-z-]+))? -->\n"
    r"```json\n(?P<text>.*?)\n```",
    re.DOTALL,
)


@dataclass(frozen=True)
class Block:
    """One labelled JSON block of the page."""

    kind: str
    name: str
    label: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.name}:{self.label}" if self.label else self.name

    def document(self) -> Any:
        """The JSON, numbers as exact decimals (as the package reads them)."""
        return json.loads(self.text, parse_float=Decimal)


def _doc() -> str:
    return DOC.read_text("utf-8")


def _blocks(kind: str) -> list[Block]:
    return [
        Block(m["kind"], m["name"], m["label"] or "", m["text"])
        for m in _LABELLED.finditer(_doc())
        if m["kind"] == kind
    ]


def _section(number: int) -> str:
    """The text of ``## §<number>`` up to the next ``## `` heading."""
    text = _doc()
    start = text.index(f"\n## §{number} ")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def _schema_file(name: str) -> Path:
    return SCHEMAS / f"{name}.schema.json"


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(_schema_file(name).read_text("utf-8")))


def _body(block_text: str) -> bytes:
    return block_text.encode("utf-8")


def _same_json(body: bytes, document: object) -> bool:
    return bool(json.loads(body, parse_float=Decimal) == document)


EXAMPLES = _blocks("example")
SCHEMA_BLOCKS = _blocks("schema")


# -- the page's blocks and the schema files ----------------------------------------------------


def test_every_json_block_is_labelled() -> None:
    """Each ```json block on the page is an example or a schema the tests below check."""
    unlabelled = len(re.findall(r"^```json$", _doc(), re.MULTILINE))
    assert unlabelled == len(EXAMPLES) + len(SCHEMA_BLOCKS) + len(_blocks("admin"))
    assert len(EXAMPLES) >= 10


def test_every_schema_file_is_valid_and_shown_on_the_page() -> None:
    """Each docs/schemas file is valid JSON Schema 2020-12 and appears verbatim on the page."""
    files = sorted(path.name.removesuffix(".schema.json") for path in SCHEMAS.glob("*.json"))
    assert files == sorted(block.name for block in SCHEMA_BLOCKS)
    for block in SCHEMA_BLOCKS:
        schema = json.loads(_schema_file(block.name).read_text("utf-8"))
        Draft202012Validator.check_schema(schema)
        assert json.loads(block.text) == schema, f"{block.name}: page and file differ"


def test_every_schema_has_an_example() -> None:
    """No message is described by a schema alone: each has at least one JSON example."""
    assert {block.name for block in SCHEMA_BLOCKS} == {block.name for block in EXAMPLES}


@pytest.mark.parametrize("block", EXAMPLES, ids=lambda b: b.id)
def test_example_matches_its_schema(block: Block) -> None:
    """Each example on the page is valid under its schema."""
    errors = [error.message for error in _validator(block.name).iter_errors(block.document())]
    assert errors == []


# -- the examples are what the package sends and accepts -------------------------------------


def _products_request(document: dict[str, Any], _text: str) -> None:
    query = receiver_parse.products_query(document, None)
    assert (list(query.skus), query.store_id) == (document["skus"], document["store_id"])
    assert _same_json(_products.request_body(document["skus"], document["store_id"]), document)


def _products_response(document: dict[str, Any], text: str) -> None:
    entries = document["products"]
    result = _products.parse_reply([entry["sku"] for entry in entries], _body(text))
    assert (result.failure, result.problems) == (None, ())
    in_stock = [entry for entry in entries if entry["in_stock"]]
    assert [(o.sku, o.price, o.promo_price, o.promo_label) for o in result.available] == [
        (e["sku"], e["price"], e.get("promo_price"), e.get("promo_label")) for e in in_stock
    ]
    assert _same_json(receiver_models.products_body([Product(**e) for e in entries]), document)


def _cart_request(document: dict[str, Any], _text: str) -> None:
    operation = receiver_parse.cart_operation(document, "delivery-1")
    assert operation.action == document["action"]
    fields = {k: v for k, v in document.items() if k not in ("action",)}
    for name, value in fields.items():
        assert getattr(operation, name) == value
    body = _cart.operation_body(document["action"], **fields)
    assert _same_json(body, document)


def _cart_response(document: dict[str, Any], text: str) -> None:
    result = _cart.parse_operation_reply(_body(text))
    assert (result.ok, result.reason, result.detail, result.problems) == (
        document["ok"],
        document.get("reason"),
        None,
        (),
    )
    reply = CartReply.accepted() if document["ok"] else CartReply.refused(document.get("reason"))
    assert reply.as_json() == document


def _cart_get_query(document: dict[str, Any], _text: str) -> None:
    query = receiver_parse.cart_query(list(document.items()), None)
    assert {"store_id": query.store_id, "session_id": query.session_id} == document
    url = _cart.load_url("https://shop.example/api/vizochok/cart/items?shop=7", **document)
    assert dict(parse_qsl(urlsplit(url).query)) == {"shop": "7", **document}


def _cart_get_response(document: dict[str, Any], text: str) -> None:
    entries = document["items"]
    load = _cart.parse_load_reply(_body(text))
    assert (load.loaded, load.failure, load.problems) == (True, None, ())
    assert [(i.sku, i.name, i.price, i.quantity, i.unit) for i in load.items] == [
        (e["sku"], e["name"], e["price"], e["quantity"], e.get("unit")) for e in entries
    ]
    lines = [CartLine(**entry) for entry in entries]
    assert _same_json(receiver_models.cart_items_body(lines), document)


def event_schema_name(event_type: str) -> str:
    """``order.created`` -> ``event-order-created`` (its schema file and its blocks)."""
    return "event-" + event_type.replace(".", "-")


def _event_request(document: dict[str, Any], text: str) -> None:
    """An event body on the page: the kit reads it into its type's model, its data is the
    catalog's example, and publishing that data writes these bytes (compact)."""
    event_type = document["event"]
    event = parse_event(_body(text))
    assert type(event) is EVENT_MODELS[event_type]
    assert _same_json(wire_json.dumps(EVENT_TYPES[event_type].example), document["data"])
    data = validate_event_data(event_type, document["data"])
    sent = event_body(document["id"], event_type, event.timestamp, data)
    assert sent == wire_json.dumps(document)


ACCEPTED_BY_PACKAGE: dict[str, Callable[[dict[str, Any], str], None]] = {
    "products-request": _products_request,
    "products-response": _products_response,
    "cart-request": _cart_request,
    "cart-response": _cart_response,
    "cart-get-query": _cart_get_query,
    "cart-get-response": _cart_get_response,
    **{event_schema_name(name): _event_request for name in EVENT_TYPES},
}


@pytest.mark.parametrize("block", EXAMPLES, ids=lambda b: b.id)
def test_example_is_what_the_package_sends_and_accepts(block: Block) -> None:
    """Requests are built by the dispatcher and read by the kit; replies read without problems."""
    ACCEPTED_BY_PACKAGE[block.name](block.document(), block.text)


# -- counter-examples: what a schema refuses, the package refuses ----------------------------


def _refused_products_request(document: Any) -> bool:
    try:
        receiver_parse.products_query(document, None)
    except receiver_parse.InvalidRequest:
        return True
    return False


def _refused_products_response(text: str) -> bool:
    result = _products.parse_reply(["milk-001"], _body(text))
    return result.available == () and (result.failure is not None or result.problems != ())


def _refused_cart_request(document: Any) -> bool:
    try:
        receiver_parse.cart_operation(document, "delivery-1")
    except receiver_parse.InvalidRequest:
        return True
    return False


def _refused_cart_response(text: str) -> bool:
    result = _cart.parse_operation_reply(_body(text))
    return result.detail is not None or result.problems != ()


def _refused_cart_get_query(document: Any) -> bool:
    try:
        receiver_parse.cart_query(list(document.items()), None)
    except receiver_parse.InvalidRequest:
        return True
    return False


def _refused_cart_get_response(text: str) -> bool:
    load = _cart.parse_load_reply(_body(text))
    return load.items == () and (load.failure is not None or load.problems != ())


def _by_document(check: Callable[[Any], bool]) -> Callable[[str], bool]:
    return lambda text: check(json.loads(text, parse_float=Decimal))


def _refused_event(text: str) -> bool:
    """The kit refuses the body; when only ``data`` is wrong, publishing it is refused too."""
    try:
        parse_event(_body(text))
    except receiver_parse.InvalidRequest as refusal:
        if not all(error.field.startswith("data") for error in refusal.errors):
            return True
        document = json.loads(text, parse_float=Decimal)
        try:
            validate_event_data(document["event"], document["data"])
        except InvalidCall:
            return True
    return False


REFUSED_BY_PACKAGE: dict[str, Callable[[str], bool]] = {
    "products-request": _by_document(_refused_products_request),
    "products-response": _refused_products_response,
    "cart-request": _by_document(_refused_cart_request),
    "cart-response": _refused_cart_response,
    "cart-get-query": _by_document(_refused_cart_get_query),
    "cart-get-response": _refused_cart_get_response,
    **{event_schema_name(name): _refused_event for name in EVENT_TYPES},
}


def _event_text(event_type: str, envelope: dict[str, Any] | None = None, **data: Any) -> str:
    """A body of ``event_type`` with the catalog example's data changed by ``data``."""
    document = {
        "id": "evt_01KAZ3E8B1C4D7E0F3G6H9J2KM",
        "event": event_type,
        "timestamp": "2026-01-15T10:30:40.502Z",
        "data": {**EVENT_TYPES[event_type].example, **data},
        **(envelope or {}),
    }
    return wire_json.dumps(document).decode()


_ITEM = {"sku": "a", "name": "A", "quantity": 1, "unit_price": 1}

_MILK = '"sku": "milk-001"'
COUNTER_EXAMPLES: list[tuple[str, str]] = [
    ("products-request", '{"skus": [], "store_id": "store-1"}'),
    ("products-request", '{"skus": "milk-001", "store_id": "store-1"}'),
    ("products-request", '{"skus": ["milk-001", 5], "store_id": "store-1"}'),
    ("products-request", '{"skus": ["milk-001", ""], "store_id": "store-1"}'),
    ("products-request", '{"skus": ["milk-001"]}'),
    ("products-request", '{"skus": ["milk-001"], "store_id": ""}'),
    ("products-response", '{"items": []}'),
    ("products-response", '{"products": {}}'),
    ("products-response", f'{{"products": [{{{_MILK}, "price": -1, "in_stock": true}}]}}'),
    ("products-response", f'{{"products": [{{{_MILK}, "price": "45.90", "in_stock": true}}]}}'),
    ("products-response", f'{{"products": [{{{_MILK}, "price": true, "in_stock": true}}]}}'),
    ("products-response", f'{{"products": [{{{_MILK}, "in_stock": true}}]}}'),
    ("products-response", f'{{"products": [{{{_MILK}, "price": 45.9}}]}}'),
    ("products-response", f'{{"products": [{{{_MILK}, "price": 45.9, "in_stock": "yes"}}]}}'),
    ("products-response", '{"products": [{"sku": 5, "price": 45.9, "in_stock": true}]}'),
    ("products-response", '{"products": ["milk-001"]}'),
    ("cart-request", '{"action": "buy", "store_id": "s", "session_id": "u", "sku": "a"}'),
    ("cart-request", '{"action": "clear", "session_id": "u"}'),
    ("cart-request", '{"action": "clear", "store_id": "s", "session_id": ""}'),
    ("cart-request", '{"action": "remove", "store_id": "s", "session_id": "u"}'),
    ("cart-request", '{"action": "update", "store_id": "s", "session_id": "u", "sku": "a"}'),
    (
        "cart-request",
        '{"action": "update", "store_id": "s", "session_id": "u", "sku": "a", "quantity": 0}',
    ),
    (
        "cart-request",
        '{"action": "add", "store_id": "s", "session_id": "u", "sku": "a", "name": "A",'
        ' "quantity": 1}',
    ),
    (
        "cart-request",
        '{"action": "add", "store_id": "s", "session_id": "u", "sku": "a", "name": "A",'
        ' "quantity": 1, "price": "1.00"}',
    ),
    (
        "cart-request",
        '{"action": "add", "store_id": "s", "session_id": "u", "sku": "a", "name": 5,'
        ' "quantity": 1, "price": 1}',
    ),
    ("cart-response", "{}"),
    ("cart-response", '{"ok": "yes"}'),
    ("cart-response", '{"ok": false, "reason": "   "}'),
    ("cart-response", '{"ok": false, "reason": 5}'),
    ("cart-response", '{"ok": false, "reason": ""}'),
    ("cart-get-query", '{"store_id": "store-1"}'),
    ("cart-get-query", '{"store_id": "", "session_id": "user-123"}'),
    ("cart-get-response", '{"products": []}'),
    ("cart-get-response", '{"items": {}}'),
    ("cart-get-response", '{"items": [{"sku": "a", "name": "A", "price": 1, "quantity": 0}]}'),
    ("cart-get-response", '{"items": [{"sku": "a", "name": "A", "price": -1, "quantity": 1}]}'),
    ("cart-get-response", '{"items": [{"sku": "", "name": "A", "price": 1, "quantity": 1}]}'),
    ("cart-get-response", '{"items": [{"sku": "a", "name": 5, "price": 1, "quantity": 1}]}'),
    ("cart-get-response", '{"items": [{"sku": "a", "name": "A", "price": 1}]}'),
    (
        "cart-get-response",
        '{"items": [{"sku": "a", "name": "A", "price": 1, "quantity": 1, "unit": 5}]}',
    ),
]


COUNTER_EXAMPLES += [
    ("event-order-created", _event_text("order.created", subtotal=-1)),
    ("event-order-created", _event_text("order.created", subtotal="1950")),
    ("event-order-created", _event_text("order.created", items=[])),
    ("event-order-created", _event_text("order.created", items=[{**_ITEM, "quantity": 0}])),
    ("event-order-created", _event_text("order.created", status="shipped")),
    ("event-order-created", _event_text("order.created", customer_phone="1" * 33)),
    ("event-order-created", _event_text("order.created", envelope={"id": "12345"})),
    ("event-order-created", _event_text("order.created", envelope={"data": []})),
    ("event-order-updated", _event_text("order.updated", previous_status="lost")),
    ("event-order-cancelled", _event_text("order.cancelled", status="pending")),
    ("event-chat-session-created", _event_text("chat.session.created", source_type="email")),
    ("event-chat-message-received", _event_text("chat.message.received", message="")),
    (
        "event-chat-message-sent",
        _event_text(
            "chat.message.sent", products=[{"sku": "a", "name": "A", "relevance_score": 2}]
        ),
    ),
    ("event-product-viewed", _event_text("product.viewed", sku="")),
    ("event-product-added", _event_text("product.added", price=10**10)),
    ("event-product-added", _event_text("product.added", unit="x" * 33)),
    ("event-product-updated", _event_text("product.updated", changed=[])),
    ("event-product-updated", _event_text("product.updated", changed=["colour"])),
    ("event-analytics-daily", _event_text("analytics.daily", orders=-1)),
    ("event-analytics-daily", _event_text("analytics.daily", orders=Decimal("1.5"))),
    ("event-analytics-daily", _event_text("analytics.daily", revenue=True)),
]


@pytest.mark.parametrize(("name", "text"), COUNTER_EXAMPLES)
def test_what_a_schema_refuses_the_package_refuses(name: str, text: str) -> None:
    """A message breaking its schema is invalid to the package too (refused, or entry dropped)."""
    assert not _validator(name).is_valid(json.loads(text, parse_float=Decimal))
    assert REFUSED_BY_PACKAGE[name](text)


# -- tables and worked examples ----------------------------------------------------------------

#: Every failure ``detail`` the package defines (the two cart reasons are not details).
DETAILS = sorted(
    value
    for name, value in vars(_results).items()
    if name.isupper() and isinstance(value, str) and not name.endswith("_REASON")
)


def test_the_failure_table_names_every_detail() -> None:
    """§3's table has a row for every failure detail in vizochok_dispatch.webhooks._results."""
    rows = [line for line in _section(3).splitlines() if line.startswith("| ")]
    named = {match for row in rows for match in re.findall(r"\| `([a-z_]+)` \|", row)}
    assert len(DETAILS) >= 10
    assert set(DETAILS) <= named


def test_the_cart_failure_reason_is_the_packages() -> None:
    """§5 states the exact reasons the chat gets on a failure and on a bare refusal."""
    section = _section(5)
    assert f'{{"ok": false, "reason": "{_results.WEBHOOK_TIMEOUT_REASON}"}}' in section
    assert f'"reason": "{_results.REJECTED_REASON}"' in section


def test_the_signing_example_is_a_published_vector() -> None:
    """§2's worked example is the first vector, character for character, and it is correct."""
    section = _section(2)
    cases = [case for case in load_vectors() if case["valid"]]
    first = cases[0]
    body = first["body_utf8"].encode("utf-8")
    assert (
        compute_signature(first["secret"], first["timestamp"], body)
        == (first["x_vizochok_signature"])
    )
    for value in (
        first["secret"],
        first["x_vizochok_timestamp"],
        first["body_utf8"],
        first["signed_payload_utf8"],
        first["x_vizochok_signature"],
        f"({len(body)} bytes)",
        "SHA2-256(stdin)= " + first["x_vizochok_signature"].removeprefix("sha256="),
    ):
        assert value in section, value
    empty = next(case for case in cases if case["body_utf8"] == "")
    assert empty["x_vizochok_signature"] in section
    assert f"`{empty['signed_payload_utf8']}`" in section


# -- event webhooks (§8-§10) -----------------------------------------------------------------


@pytest.mark.parametrize("event_type", list(EVENT_TYPES))
def test_each_event_schema_file_is_generated_from_its_model(event_type: str) -> None:
    """docs/schemas/event-<type>.schema.json is exactly the model's schema
    (``EVENT_TYPES[t].json_schema()``); regenerate it with :func:`write_event_schemas`."""
    path = _schema_file(event_schema_name(event_type))
    assert json.loads(path.read_text("utf-8")) == EVENT_TYPES[event_type].json_schema(), (
        f"{path.name} is stale: run python -c 'from tests.docs.test_webhooks_doc import "
        "write_event_schemas; write_event_schemas()' and paste the schemas into §10"
    )


def write_event_schemas() -> None:
    """Write every event type's schema file from its model (run after changing a model)."""
    for name, entry in EVENT_TYPES.items():
        text = json.dumps(entry.json_schema(), indent=2, ensure_ascii=False) + "\n"
        _schema_file(event_schema_name(name)).write_text(text, "utf-8")


def test_every_event_type_has_an_example_and_a_schema_on_the_page() -> None:
    """§10 shows each type's example and schema, and only the catalog's types."""
    event_names = {block.name for block in EXAMPLES if block.name.startswith("event-")}
    assert event_names == {event_schema_name(name) for name in EVENT_TYPES}
    schema_files = {p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("event-*.json")}
    assert schema_files == event_names


def _type_section(event_type: str) -> str:
    """The text of ``### <type>`` in §10, up to the next heading."""
    section = _section(10)
    start = section.index(f"\n### {event_type}\n")
    end = section.find("\n### ", start + 1)
    return section[start : end if end >= 0 else len(section)]


@pytest.mark.parametrize("event_type", list(EVENT_TYPES))
def test_each_event_type_is_described_field_by_field(event_type: str) -> None:
    """§10 lists the type with its description, and its subsection names every data field."""
    entry = EVENT_TYPES[event_type]
    assert f"| [`{event_type}`](#{event_type.replace('.', '')}) | {entry.description} |" in (
        _section(10)
    )
    text = _type_section(event_type)
    assert entry.description in text
    for field in entry.model.model_fields:
        assert f"| `{field}` |" in text, field


def test_the_event_signing_example_is_what_the_package_signs() -> None:
    """§8's worked example: both schemes' signatures of the shown body, as the package makes
    them."""
    section = _section(8)
    block = next(b for b in EXAMPLES if b.name == "event-product-viewed")
    body = wire_json.dumps(block.document())
    assert f"({len(body)} bytes of body)" in section
    match = re.search(r"sent at `(\d+)` with the secret\s+`(whsec_[A-Za-z0-9+/=]+)`", section)
    assert match is not None
    timestamp, secret = int(match[1]), match[2]
    for scheme, header in (
        ("vizochok", "X-VIZOCHOK-Signature"),
        ("standard-webhooks", "webhook-signature"),
    ):
        headers = event_headers(
            scheme,
            secret,
            event_id=block.document()["id"],
            event_type=block.document()["event"],
            attempt=1,
            timestamp=timestamp,
            body=body,
        )
        assert f"| `{scheme}` | `{header}` | `{headers[header]}` |" in section


def test_the_event_delivery_rules_state_the_defaults() -> None:
    """§8 and §9 give the endpoint timeout (15 s, 1 to 30) and the default retry schedule."""
    assert "1 to 30, 15 by default" in _section(8)
    delivery = " ".join(_section(9).split())
    assert "1 to 30 seconds, 15 by default" in delivery
    assert [round(delay) for delay in DEFAULT_RETRY_SCHEDULE.delays] == [300, 3600]
    assert DEFAULT_RETRY_SCHEDULE.jitter == 0.25
    assert (
        "three attempts in all: the second 5 minutes after the first, the third 1 hour after "
        "the second, each delay lengthened by up to 25 %"
    ) in delivery
