"""The receiver kit: what a tenant needs to verify and serve VIZOCHOK's webhooks.

``verify_request`` works in any framework (it needs the headers and the raw body).
``create_receiver_app`` / ``receiver_routes`` build the three endpoints on Starlette around
three async callbacks; they are loaded on first use, so the verifier alone needs no web
framework installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import (
    MalformedHeader,
    MissingHeader,
    SignatureMismatch,
    TimestampExpired,
    TimestampInFuture,
    TimestampOutOfRange,
    VerificationError,
)
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
from ._verify import DEFAULT_TOLERANCE_SECONDS, VerifiedRequest, verify_request

if TYPE_CHECKING:
    from ._app import (
        DEFAULT_CART_ITEMS_PATH,
        DEFAULT_CART_PATH,
        DEFAULT_PRODUCTS_PATH,
        CartHandler,
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
        "DEFAULT_PRODUCTS_PATH",
        "CartHandler",
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
    "DEFAULT_PRODUCTS_PATH",
    "DEFAULT_TOLERANCE_SECONDS",
    "CartAdd",
    "CartClear",
    "CartHandler",
    "CartLine",
    "CartOperation",
    "CartQuery",
    "CartRemove",
    "CartReply",
    "CartUpdate",
    "Claim",
    "IdempotencyStore",
    "InMemoryIdempotencyStore",
    "LoadCartHandler",
    "MalformedHeader",
    "MissingHeader",
    "Product",
    "ProductsHandler",
    "ProductsQuery",
    "RetryLater",
    "SecretSource",
    "SignatureMismatch",
    "StoredResponse",
    "TimestampExpired",
    "TimestampInFuture",
    "TimestampOutOfRange",
    "VerificationError",
    "VerifiedRequest",
    "create_receiver_app",
    "receiver_routes",
    "verify_request",
]
