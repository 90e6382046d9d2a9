"""The receiver kit: what a tenant needs to verify and serve VIZOCHOK's webhooks.

``verify_request`` works in any framework (it needs the headers and the raw body), as does
``verify_standard_webhook`` for an event endpoint on the ``standard-webhooks`` scheme, and so
does ``parse_event``, which reads a verified event request into its typed model.
``create_receiver_app`` / ``receiver_routes`` build the endpoints on Starlette around async
callbacks (``on_event`` for event webhooks, each event id handled once); they are loaded on
first use, so the verifier alone needs no web framework installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..contract._events import (
    AnalyticsDaily,
    AnalyticsDailyEvent,
    ChatMessageReceived,
    ChatMessageReceivedEvent,
    ChatMessageSent,
    ChatMessageSentEvent,
    ChatSessionCreated,
    ChatSessionCreatedEvent,
    EndpointDisabledNotice,
    EndpointDisabledNoticeEvent,
    Event,
    OrderCancelled,
    OrderCancelledEvent,
    OrderCreated,
    OrderCreatedEvent,
    OrderItem,
    OrderUpdated,
    OrderUpdatedEvent,
    ProductAdded,
    ProductAddedEvent,
    ProductUpdated,
    ProductUpdatedEvent,
    ProductViewed,
    ProductViewedEvent,
    RecommendedProduct,
    UnknownEvent,
)
from ._errors import (
    MalformedHeader,
    MissingHeader,
    SignatureMismatch,
    TimestampExpired,
    TimestampInFuture,
    TimestampOutOfRange,
    VerificationError,
)
from ._events import parse_event
from ._idempotency import (
    Claim,
    IdempotencyStore,
    InMemoryIdempotencyStore,
    StoredResponse,
)
from ._models import (
    CartAdd,
    CartClear,
    CartLine,
    CartOperation,
    CartQuery,
    CartRemove,
    CartReply,
    CartUpdate,
    Product,
    ProductsQuery,
)
from ._standard import verify_standard_webhook
from ._verify import DEFAULT_TOLERANCE_SECONDS, VerifiedRequest, verify_request

if TYPE_CHECKING:
    from ._app import (
        DEFAULT_CART_ITEMS_PATH,
        DEFAULT_CART_PATH,
        DEFAULT_EVENTS_PATH,
        DEFAULT_PRODUCTS_PATH,
        CartHandler,
        EventHandler,
        LoadCartHandler,
        ProductsHandler,
        RetryLater,
        SecretSource,
        create_receiver_app,
        receiver_routes,
    )

_STARLETTE_NAMES = frozenset(
    {
        "DEFAULT_CART_ITEMS_PATH",
        "DEFAULT_CART_PATH",
        "DEFAULT_EVENTS_PATH",
        "DEFAULT_PRODUCTS_PATH",
        "CartHandler",
        "EventHandler",
        "LoadCartHandler",
        "ProductsHandler",
        "RetryLater",
        "SecretSource",
        "create_receiver_app",
        "receiver_routes",
    }
)


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whatever the lazily loaded module defines
    """Load the Starlette glue on first use of one of its names."""
    if name in _STARLETTE_NAMES:
        from . import _app  # noqa: PLC0415 - lazy on purpose: Starlette is optional

        return getattr(_app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_CART_ITEMS_PATH",
    "DEFAULT_CART_PATH",
    "DEFAULT_EVENTS_PATH",
    "DEFAULT_PRODUCTS_PATH",
    "DEFAULT_TOLERANCE_SECONDS",
    "AnalyticsDaily",
    "AnalyticsDailyEvent",
    "CartAdd",
    "CartClear",
    "CartHandler",
    "CartLine",
    "CartOperation",
    "CartQuery",
    "CartRemove",
    "CartReply",
    "CartUpdate",
    "ChatMessageReceived",
    "ChatMessageReceivedEvent",
    "ChatMessageSent",
    "ChatMessageSentEvent",
    "ChatSessionCreated",
    "ChatSessionCreatedEvent",
    "Claim",
    "EndpointDisabledNotice",
    "EndpointDisabledNoticeEvent",
    "Event",
    "EventHandler",
    "IdempotencyStore",
    "InMemoryIdempotencyStore",
    "LoadCartHandler",
    "MalformedHeader",
    "MissingHeader",
    "OrderCancelled",
    "OrderCancelledEvent",
    "OrderCreated",
    "OrderCreatedEvent",
    "OrderItem",
    "OrderUpdated",
    "OrderUpdatedEvent",
    "Product",
    "ProductAdded",
    "ProductAddedEvent",
    "ProductUpdated",
    "ProductUpdatedEvent",
    "ProductViewed",
    "ProductViewedEvent",
    "ProductsHandler",
    "ProductsQuery",
    "RecommendedProduct",
    "RetryLater",
    "SecretSource",
    "SignatureMismatch",
    "StoredResponse",
    "TimestampExpired",
    "TimestampInFuture",
    "TimestampOutOfRange",
    "UnknownEvent",
    "VerificationError",
    "VerifiedRequest",
    "create_receiver_app",
    "parse_event",
    "receiver_routes",
    "verify_request",
    "verify_standard_webhook",
]
