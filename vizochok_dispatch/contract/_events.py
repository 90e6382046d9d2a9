"""Event webhooks' wire shapes: one pydantic model per event type's ``data``, and the envelope.

Pure (no I/O) so both sides share them: ``events._catalog`` validates what the platform
publishes, and the receiver kit parses what a tenant receives (docs/webhooks.md §8).

Field names are the contract's snake_case (``sku``, ``store_id``, ``session_id``); amounts are
exact ``Decimal`` under ``_money``'s rules, text follows ``_text``'s rules, times are
timezone-aware and go out as RFC 3339 UTC with milliseconds (``2026-01-31T10:30:00.000Z``).

Unknown fields: the models themselves ignore them, so a receiver built today keeps working when
a later platform version adds a field; the publisher validates with ``extra="forbid"``
(``events._catalog.validate_event_data``), so a misspelt field is refused at ``publish``
instead of being sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError, core_schema

from . import _json, _money, _text
from ._money import MONEY, QUANTITY, AmountRule
from ._text import TextRule

# ---------------------------------------------------------------------------------------------
# Field types


@dataclass(frozen=True, slots=True)
class _Text:
    """``Annotated[str, _Text(rule, …)]``: text under ``rule`` with ``_text``'s messages, and
    a schema stating its bounds."""

    rule: TextRule
    description: str

    def check(self, value: object) -> str:
        if not _text.is_text(value, self.rule):
            raise PydanticCustomError("text", str(_text.text_problem(value, self.rule)))
        return value

    def __get_pydantic_core_schema__(
        self, source: object, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self.check)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        found: dict[str, Any] = {"type": "string", "description": self.description}
        if self.rule.min_chars:
            found["minLength"] = self.rule.min_chars
        found["maxLength"] = self.rule.max_chars
        if not self.rule.controls:
            found["pattern"] = "^[^\\u0000-\\u001f]*$"
        return found


@dataclass(frozen=True, slots=True)
class _Amount:
    """``Annotated[Decimal, _Amount(rule, …)]``: an exact amount under ``rule``.

    ``int``, ``float`` (read through ``str``) and ``Decimal`` are accepted; a string is not,
    since the wire carries amounts as JSON numbers only (docs/webhooks.md, Conventions).  A
    JSON number parsed as ``float`` loses nothing: an in-range amount has at most 14
    significant digits, which ``repr(float)`` gives back.
    """

    rule: AmountRule
    description: str

    def check(self, value: object) -> Decimal:
        if isinstance(value, str):
            raise PydanticCustomError("amount", "is a string, not a number")
        try:
            return _money.caller_amount(value, "", self.rule)
        except (TypeError, ValueError) as error:
            raise PydanticCustomError("amount", str(error).strip()) from None

    def __get_pydantic_core_schema__(
        self, source: object, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self.check)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        found: dict[str, Any] = {"type": "number", "description": self.description}
        found["exclusiveMinimum" if self.rule.positive else "minimum"] = 0
        found["maximum"] = int(self.rule.maximum)
        return found


def _rfc3339(value: datetime) -> str:
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


def _time_input(value: object) -> object:
    # Only a datetime or its text: pydantic would also read a number as Unix seconds.
    if not isinstance(value, datetime | str):
        raise PydanticCustomError("datetime_type", "must be an RFC 3339 date-time with a zone")
    return value


def format_time(value: datetime) -> str:
    """``value`` as the wire writes it: RFC 3339, UTC, milliseconds (``…T10:30:00.123Z``)."""
    return _rfc3339(value)


#: A moment: an aware ``datetime`` (or RFC 3339 text with a zone); sent as UTC, milliseconds.
Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_time_input),
    AfterValidator(lambda value: value.astimezone(UTC)),
    PlainSerializer(_rfc3339, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 in UTC with milliseconds, e.g. 2026-01-31T10:30:00.000Z",
        }
    ),
]


def _date_input(value: object) -> object:
    if isinstance(value, datetime) or not isinstance(value, date | str):
        raise PydanticCustomError("date_type", "must be a date, YYYY-MM-DD")
    return value


#: A calendar day, sent as ``YYYY-MM-DD``.
Day = Annotated[
    date,
    BeforeValidator(_date_input),
    PlainSerializer(date.isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date", "description": "YYYY-MM-DD"}),
]

#: A count of things: a whole number from 0 to 10**12 (no booleans, no 3.0).
Count = Annotated[int, Field(strict=True, ge=0, le=10**12)]

Money = Annotated[Decimal, _Amount(MONEY, "Money: 0 to 1000000000, at most 4 decimal places.")]
Quantity = Annotated[
    Decimal,
    _Amount(QUANTITY, "How much: greater than 0, at most 1000000, at most 3 decimal places."),
]
#: How well a recommended product matched: 0 to 1 with at most 4 decimal places, exact.
RELEVANCE: Final = AmountRule(maximum=Decimal(1), places=4, positive=False)
Relevance = Annotated[
    Decimal, _Amount(RELEVANCE, "From 0 (unrelated) to 1 (exact match), at most 4 decimal places.")
]
Sku = Annotated[str, _Text(_text.SKU, "A product code: 1 to 256 characters, no controls.")]
StoreId = Annotated[str, _Text(_text.STORE_ID, "The store: 1 to 256 characters.")]
SessionId = Annotated[str, _Text(_text.SESSION_ID, "The chat session: 1 to 256 characters.")]
ProductName = Annotated[str, _Text(_text.NAME, "The product's name: at most 512 characters.")]
Unit = Annotated[str, _Text(_text.UNIT, "The unit sold (kg, pcs): at most 32 characters.")]

# Event-only text; the limits are the platform's choice, as in ``_text``.
ORDER_ID: Final = TextRule(1, 256, controls=False)
ORDER_NUMBER: Final = TextRule(1, 256, controls=False)
CUSTOMER_NAME: Final = TextRule(0, 512)
PHONE: Final = TextRule(0, 32, controls=False)
ADDRESS: Final = TextRule(0, 1000)
SOURCE_NAME: Final = TextRule(0, 256)
MESSAGE: Final = TextRule(1, 4096)

OrderId = Annotated[str, _Text(ORDER_ID, "The order's id: 1 to 256 characters, no controls.")]
OrderNumber = Annotated[
    str, _Text(ORDER_NUMBER, "The order number shown to the customer: 1 to 256 characters.")
]
CustomerName = Annotated[str, _Text(CUSTOMER_NAME, "At most 512 characters.")]
Phone = Annotated[str, _Text(PHONE, "As the customer gave it: at most 32 characters.")]
Address = Annotated[str, _Text(ADDRESS, "The shipping address: at most 1000 characters.")]
SourceName = Annotated[
    str, _Text(SOURCE_NAME, "The page or site of the chat: at most 256 characters.")
]
MessageText = Annotated[str, _Text(MESSAGE, "The message's text: 1 to 4096 characters.")]

#: Where a chat (and the order placed in it) happened: the shop's own site widget or a
#: social-network page.
SourceType = Literal["widget", "social"]
#: An order's life: ``pending`` → ``confirmed`` → ``shipped`` → ``delivered``, or
#: ``cancelled`` from any state before ``delivered``.
OrderStatus = Literal["pending", "confirmed", "shipped", "delivered", "cancelled"]

_SOURCE_TYPE: Final = "widget: the shop's own site; social: a social-network page."

#: Most lines in one order (as for a cart, docs/webhooks.md §5) and products in one reply.
MAX_ORDER_ITEMS: Final = 1000
MAX_RECOMMENDED: Final = 100

_DATA = ConfigDict(extra="ignore", frozen=True)

# ---------------------------------------------------------------------------------------------
# The data of each event type


class OrderItem(BaseModel):
    """One line of an order."""

    model_config = _DATA

    sku: Sku
    name: ProductName
    quantity: Quantity
    unit_price: Money = Field(description="The price of one unit (money).")


class _Order(BaseModel):
    model_config = _DATA

    id: OrderId
    order_number: OrderNumber
    store_id: StoreId
    session_id: SessionId | None = Field(
        default=None, description="The chat the order was placed in; null when none."
    )
    customer_name: CustomerName
    customer_phone: Phone
    shipping_address: Address
    items: list[OrderItem] = Field(
        min_length=1, max_length=MAX_ORDER_ITEMS, description="The order's lines: 1 to 1000."
    )
    subtotal: Money = Field(description="The sum of quantity times unit_price over the items.")
    source_type: SourceType = Field(description=_SOURCE_TYPE)
    source_name: SourceName
    created_at: Timestamp = Field(description="When the order was placed.")


class OrderCreated(_Order):
    """order.created: a customer completed an order in the chat."""

    status: Literal["pending", "confirmed"] = Field(description="The order's status now.")


class OrderUpdated(_Order):
    """order.updated: an order's status changed (confirmed, shipped, delivered)."""

    status: OrderStatus = Field(description="The order's status now.")
    previous_status: OrderStatus = Field(description="Its status before this change.")
    updated_at: Timestamp = Field(description="When it changed.")


class OrderCancelled(_Order):
    """order.cancelled: the customer or an agent cancelled an order."""

    status: Literal["cancelled"] = Field(description="Always cancelled.")
    previous_status: Literal["pending", "confirmed", "shipped"] = Field(
        description="Its status before it was cancelled."
    )
    updated_at: Timestamp = Field(description="When it was cancelled.")


class ChatSessionCreated(BaseModel):
    """chat.session.created: a customer started a chat."""

    model_config = _DATA

    session_id: SessionId
    store_id: StoreId
    source_type: SourceType = Field(description=_SOURCE_TYPE)
    source_name: SourceName
    created_at: Timestamp = Field(description="When the chat started.")


class ChatMessageReceived(BaseModel):
    """chat.message.received: the customer sent a message."""

    model_config = _DATA

    session_id: SessionId
    store_id: StoreId
    message: MessageText
    created_at: Timestamp = Field(description="When the message was sent.")


class RecommendedProduct(BaseModel):
    """A product the assistant showed, with how well it matched the request."""

    model_config = _DATA

    sku: Sku
    name: ProductName
    relevance_score: Relevance


class ChatMessageSent(BaseModel):
    """chat.message.sent: the assistant answered, with the products it recommended."""

    model_config = _DATA

    session_id: SessionId
    store_id: StoreId
    message: MessageText
    products: list[RecommendedProduct] = Field(
        max_length=MAX_RECOMMENDED, description="The products shown with the answer: 0 to 100."
    )
    created_at: Timestamp = Field(description="When the answer was sent.")


class ProductViewed(BaseModel):
    """product.viewed: the customer opened a product the assistant recommended."""

    model_config = _DATA

    session_id: SessionId
    store_id: StoreId
    sku: Sku
    viewed_at: Timestamp = Field(description="When the customer opened it.")


class ProductAdded(BaseModel):
    """product.added: a product was added to the store's catalog."""

    model_config = _DATA

    store_id: StoreId
    sku: Sku
    name: ProductName
    price: Money = Field(description="The price (money).")
    unit: Unit
    created_at: Timestamp = Field(description="When it was added.")


class ProductUpdated(BaseModel):
    """product.updated: a product of the catalog changed; changed names the fields."""

    model_config = _DATA

    store_id: StoreId
    sku: Sku
    name: ProductName
    price: Money = Field(description="The price (money).")
    unit: Unit
    changed: list[Literal["name", "price", "unit"]] = Field(
        min_length=1, max_length=3, description="Which of name, price and unit changed."
    )
    updated_at: Timestamp = Field(description="When it changed.")


class AnalyticsDaily(BaseModel):
    """analytics.daily: one store's totals for one UTC day."""

    model_config = _DATA

    store_id: StoreId
    date: Day = Field(description="The UTC day the totals are for.")
    sessions: Count = Field(description="Chats started.")
    messages_received: Count = Field(description="Messages customers sent.")
    messages_sent: Count = Field(description="Answers the assistant sent.")
    product_views: Count = Field(description="Recommended products customers opened.")
    orders: Count = Field(description="Orders placed.")
    revenue: Money = Field(description="The subtotal of the day's orders, cancelled ones excluded.")


class EndpointDisabledNotice(BaseModel):
    """endpoint.disabled: delivery disabled one of the tenant's event endpoints (sent to its
    other endpoints, never to the disabled one; only when the platform turns it on)."""

    model_config = _DATA

    endpoint_id: str = Field(
        strict=True, min_length=1, max_length=64, description="The disabled endpoint's id."
    )
    url: str = Field(
        strict=True, min_length=1, max_length=2048, description="The disabled endpoint's URL."
    )
    cause: Literal["gone", "failing_too_long", "too_many_failures"] = Field(
        description="gone: it answered 410; failing_too_long or too_many_failures: auto-disable."
    )
    reason: str = Field(
        strict=True, max_length=1024, description="The reason the endpoint keeps, in words."
    )
    failed_deliveries: Count = Field(description="Deliveries that had failed in a row.")
    disabled_at: Timestamp = Field(description="When it was disabled.")


#: Each event type's ``data`` model, in the order the docs list them.
DATA_MODELS: Final[dict[str, type[BaseModel]]] = {
    "order.created": OrderCreated,
    "order.updated": OrderUpdated,
    "order.cancelled": OrderCancelled,
    "chat.session.created": ChatSessionCreated,
    "chat.message.received": ChatMessageReceived,
    "chat.message.sent": ChatMessageSent,
    "product.viewed": ProductViewed,
    "product.added": ProductAdded,
    "product.updated": ProductUpdated,
    "analytics.daily": AnalyticsDaily,
    "endpoint.disabled": EndpointDisabledNotice,
}


def field_path(loc: tuple[int | str, ...], root: str = "data") -> str:
    """A pydantic error location as the docs write it: ``data.items[0].unit_price``."""
    path = root
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "body"


def problem_text(error: dict[str, Any]) -> str:
    """One pydantic error's message in the package's words."""
    kind = error["type"]
    if kind == "missing":
        return "is missing"
    if kind == "string_pattern_mismatch" and error["loc"] == ("id",):
        return "must be evt_ then 1 to 200 letters, digits, _ or -"
    if kind == "extra_forbidden":
        return "is not a field of this event type"
    if kind in {"literal_error", "enum"}:
        expected = error.get("ctx", {}).get("expected", "")
        return f"must be one of {expected}" if expected else str(error["msg"])
    return str(error["msg"])


# ---------------------------------------------------------------------------------------------
# The envelope

#: Every event id starts with this (``evt_`` then letters and digits).
EVENT_ID_PREFIX: Final = "evt_"


#: An event id as it appears on the wire: ``evt_`` then 1 to 200 letters, digits, ``_`` or ``-``.
EVENT_ID_PATTERN: Final = r"evt_[A-Za-z0-9_-]{1,200}"

EventId = Annotated[
    str,
    Field(
        strict=True,
        pattern=f"^{EVENT_ID_PATTERN}$",
        description="The event's id; the same on every attempt, so it is the idempotency key.",
    ),
]


class _Envelope(BaseModel):
    model_config = _DATA

    id: EventId
    event: str  # each type's model narrows it to its name
    timestamp: Timestamp = Field(description="When the event happened.")


class OrderCreatedEvent(_Envelope):
    """An order.created request body."""

    event: Literal["order.created"]
    data: OrderCreated


class OrderUpdatedEvent(_Envelope):
    """An order.updated request body."""

    event: Literal["order.updated"]
    data: OrderUpdated


class OrderCancelledEvent(_Envelope):
    """An order.cancelled request body."""

    event: Literal["order.cancelled"]
    data: OrderCancelled


class ChatSessionCreatedEvent(_Envelope):
    """A chat.session.created request body."""

    event: Literal["chat.session.created"]
    data: ChatSessionCreated


class ChatMessageReceivedEvent(_Envelope):
    """A chat.message.received request body."""

    event: Literal["chat.message.received"]
    data: ChatMessageReceived


class ChatMessageSentEvent(_Envelope):
    """A chat.message.sent request body."""

    event: Literal["chat.message.sent"]
    data: ChatMessageSent


class ProductViewedEvent(_Envelope):
    """A product.viewed request body."""

    event: Literal["product.viewed"]
    data: ProductViewed


class ProductAddedEvent(_Envelope):
    """A product.added request body."""

    event: Literal["product.added"]
    data: ProductAdded


class ProductUpdatedEvent(_Envelope):
    """A product.updated request body."""

    event: Literal["product.updated"]
    data: ProductUpdated


class AnalyticsDailyEvent(_Envelope):
    """An analytics.daily request body."""

    event: Literal["analytics.daily"]
    data: AnalyticsDaily


class EndpointDisabledNoticeEvent(_Envelope):
    """An endpoint.disabled request body."""

    event: Literal["endpoint.disabled"]
    data: EndpointDisabledNotice


class UnknownEvent(_Envelope):
    """A request body of a type this version does not know (a newer platform may add types):
    ``data`` as plain JSON values."""

    event: str = Field(strict=True, min_length=1, max_length=256)
    data: dict[str, Any]


#: Any known event's request body; ``event`` tells which.
Event = (
    OrderCreatedEvent
    | OrderUpdatedEvent
    | OrderCancelledEvent
    | ChatSessionCreatedEvent
    | ChatMessageReceivedEvent
    | ChatMessageSentEvent
    | ProductViewedEvent
    | ProductAddedEvent
    | ProductUpdatedEvent
    | AnalyticsDailyEvent
    | EndpointDisabledNoticeEvent
)

#: Each event type's request body model, in the docs' order.
EVENT_MODELS: Final[dict[str, type[Event]]] = {
    "order.created": OrderCreatedEvent,
    "order.updated": OrderUpdatedEvent,
    "order.cancelled": OrderCancelledEvent,
    "chat.session.created": ChatSessionCreatedEvent,
    "chat.message.received": ChatMessageReceivedEvent,
    "chat.message.sent": ChatMessageSentEvent,
    "product.viewed": ProductViewedEvent,
    "product.added": ProductAddedEvent,
    "product.updated": ProductUpdatedEvent,
    "analytics.daily": AnalyticsDailyEvent,
    "endpoint.disabled": EndpointDisabledNoticeEvent,
}


def event_body(
    event_id: str, event_type: str, timestamp: datetime, data: dict[str, object]
) -> bytes:
    """The request body, the exact bytes that are signed and sent on every attempt.

    ``{"id": …, "event": …, "timestamp": "<RFC 3339 UTC, ms>", "data": {…}}`` in that order,
    compact UTF-8 JSON; ``data`` is what ``validate_event_data`` returned (Decimals go out as
    JSON numbers).  Raises ``ValueError`` for a value JSON cannot carry.
    """
    return _json.dumps(
        {"id": event_id, "event": event_type, "timestamp": format_time(timestamp), "data": data}
    )
