"""What crosses the public boundary: frozen values, never exceptions.

Every failure keeps a machine-readable ``detail`` (docs/webhooks.md §3) for logs and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from ..http._attempt import BLOCKED_DESTINATION as BLOCKED_DESTINATION  # noqa: PLC0414 - still importable from here
from ..http._attempt import CONNECT_ERROR as CONNECT_ERROR  # noqa: PLC0414 - still importable from here
from ..http._attempt import TIMEOUT as TIMEOUT  # noqa: PLC0414 - still importable from here

# Failure details (docs/webhooks.md §3); those before an answer are the HTTP engine's.
HTTP_STATUS: Final = "http_status"
INVALID_RESPONSE: Final = "invalid_response"
NOT_CONFIGURED: Final = "not_configured"

#: The cart reason the chat's AI relies on for every delivery failure (docs/webhooks.md §5).
WEBHOOK_TIMEOUT_REASON: Final = "webhook_timeout"
#: The reason given when a tenant says ``ok: false`` without one.
REJECTED_REASON: Final = "rejected"


@dataclass(frozen=True, slots=True)
class ProductOffer:
    """An available product with its live price; money is ``Decimal``."""

    sku: str
    price: Decimal
    promo_price: Decimal | None = None
    promo_label: str | None = None


@dataclass(frozen=True, slots=True)
class ProductsResult:
    """Available offers in request order, and every requested SKU that is not available."""

    available: tuple[ProductOffer, ...]
    unavailable: tuple[str, ...]
    #: ``None`` on success, else the failure's detail; every SKU is then unavailable.
    failure: str | None = None
    #: What was wrong in the tenant's reply, one readable line each (for logs and test-fire).
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the webhook answered (individual SKUs may still be unavailable)."""
        return self.failure is None


@dataclass(frozen=True, slots=True)
class CartResult:
    """The outcome of one cart operation, as the chat's AI reads it."""

    ok: bool
    reason: str | None = None
    #: The delivery failure's detail when the webhook could not be reached; ``None`` otherwise.
    detail: str | None = None
    problems: tuple[str, ...] = ()

    def as_payload(self) -> dict[str, object]:
        """``{"ok": true}`` or ``{"ok": false, "reason": ...}``: exactly what the AI sees."""
        if self.ok:
            return {"ok": True}
        return {"ok": False, "reason": self.reason or REJECTED_REASON}


@dataclass(frozen=True, slots=True)
class CartItem:
    """One line of a loaded cart."""

    sku: str
    name: str
    price: Decimal
    quantity: Decimal
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class CartLoad:
    """A loaded cart; ``loaded=False`` means "unknown", never "empty"."""

    loaded: bool
    items: tuple[CartItem, ...] = ()
    failure: str | None = None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP attempt as it happened, for logs and test-fire reports."""

    number: int
    status: int | None
    elapsed_ms: float
    detail: str | None
    #: For ``connect_error``: what kind of failure, in words (refused, reset, DNS, TLS ...).
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """A non-200 answer's body, kept only when asked: whole up to a cap for test-fire
    reports, its first 4 KiB (secret and signatures cut out) for the call log.

    Test-fire: ``data`` is the whole body when it was read and fit the cap; otherwise
    ``None``, with ``over_cap`` saying whether it was too large (else it could not be read in
    time).  Call log: ``data`` is the body's start, ``over_cap`` says there was more.
    """

    data: bytes | None
    over_cap: bool
    #: The answer's Content-Length, when it sent one.
    declared_length: int | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one logical webhook call (one or two attempts)."""

    delivery_id: str
    url: str
    attempts: tuple[Attempt, ...]
    #: The final response's status, when one arrived.
    status: int | None
    #: The full body of a 200 response, read within the cap; ``None`` otherwise.
    body: bytes | None
    #: ``None`` when a 200 arrived; otherwise the failure's detail.
    failure: str | None
    elapsed_ms: float
    #: The final non-200 answer's body, when the caller asked for it (see ``_delivery``).
    error_body: ErrorBody | None = None


#: Details for failures on our side of the wire; the customer still sees a normal failure.
STORE_ERROR: Final = "store_error"
INTERNAL_ERROR: Final = "internal_error"
#: The endpoint's circuit is open after repeated failures; nothing was sent.
CIRCUIT_OPEN: Final = "circuit_open"
#: The tenant already has its maximum of calls in flight; nothing was sent.
BULKHEAD_FULL: Final = "bulkhead_full"
