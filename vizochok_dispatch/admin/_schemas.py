"""Request and response bodies of the admin API.

Requests refuse unknown fields (``extra="forbid"``) and coerce nothing (``strict=True``: a
timeout sent as ``"5"`` is an error, not 5).  The contract's own rules (docs/webhooks.md §1) are
checked by the core's ``merge_config``, so the API and the store refuse the same things with
the same messages.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from ..tenants._config import (
    MAX_SECRET_CHARS,
    MAX_TIMEOUT_SECONDS,
    MAX_URL_CHARS,
    MIN_OWN_SECRET_CHARS,
    MIN_TIMEOUT_SECONDS,
)
from ..webhooks._testfire import SAMPLE_SKUS, TEST_STORE_ID

_REQUEST = ConfigDict(extra="forbid", strict=True)


def _utf8_text(value: str) -> str:
    """Refuse lone surrogates (a JSON ``\\ud800`` escape, or bytes that were not UTF-8)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("string_unicode", "must be valid UTF-8 text") from None
    return value


def _no_controls(value: str) -> str:
    if any(ord(ch) < 0x20 for ch in value):  # C0 controls, NUL included
        raise PydanticCustomError("string_controls", "must not contain control characters")
    return value


#: The dispatcher's limits for what a caller sends (SKUs and store ids: 1 to 256 characters).
Sku = Annotated[
    str,
    StringConstraints(min_length=1, max_length=256),
    AfterValidator(_utf8_text),
    AfterValidator(_no_controls),
]
StoreId = Annotated[
    str, StringConstraints(min_length=1, max_length=256), AfterValidator(_utf8_text)
]


WebhookName = Literal["products", "cart", "cart_get"]
CircuitStateName = Literal["closed", "open", "half_open"]
#: The URL rules a schema can state (docs/webhooks.md §1); the rest is checked on save.
_URL_SCHEMA: Final[dict[str, Any]] = {"format": "uri", "maxLength": MAX_URL_CHARS}
_SECRET_SCHEMA: Final[dict[str, Any]] = {
    "minLength": MIN_OWN_SECRET_CHARS,
    "maxLength": MAX_SECRET_CHARS,
}


def _without_default(**schema: Any) -> Callable[[dict[str, Any]], None]:  # noqa: ANN401
    """Schema edits for a field that may be left out: no ``default`` shown, since leaving it
    out keeps the stored value (``schema`` replaces what Pydantic derived)."""

    def edit(field_schema: dict[str, Any]) -> None:
        field_schema.pop("default", None)
        if "anyOf" in schema:
            field_schema.pop("type", None)
        field_schema.update(schema)

    return edit


def _optional(description: str, **schema: Any) -> Any:  # noqa: ANN401 - pydantic's Field
    """A field that may be left out but is never ``null``: typed without ``None``, so a
    ``null`` is refused ("must not be null"), and shown without a default.

    The limits in ``schema`` are stated for clients; ``merge_config`` enforces them, with
    the same messages the stores give.
    """
    return Field(
        default=None, description=description, json_schema_extra=_without_default(**schema)
    )


class WebhookConfigUpdate(BaseModel):
    """A partial update: only the fields sent change; ``cart_get_url: null`` clears it.

    The other fields may be left out but not sent as ``null``.
    """

    model_config = _REQUEST

    products_url: str = _optional(
        "absolute https:// URL (http:// only where the deployment allows it); no user or "
        "password, no #fragment; a host DNS can serve",
        **_URL_SCHEMA,
    )
    cart_url: str = _optional("same rules as products_url", **_URL_SCHEMA)
    cart_get_url: str | None = Field(
        default=None,
        description="same rules as products_url; null: do not load carts",
        json_schema_extra=_without_default(
            anyOf=[{"type": "string", **_URL_SCHEMA}, {"type": "null"}]
        ),
    )
    timeout_seconds: float = _optional(
        "seconds for a whole attempt (connect, send, read the body)",
        minimum=MIN_TIMEOUT_SECONDS,
        maximum=MAX_TIMEOUT_SECONDS,
    )
    secret: str = _optional(
        "your own signing secret; omit it to keep the current one, or to have one "
        "generated on the first save",
        **_SECRET_SCHEMA,
    )


class SecretRotateRequest(BaseModel):
    """Rotation: send nothing, ``{}`` or ``{"secret": null}`` to have a secret generated, or
    your own."""

    model_config = _REQUEST

    secret: str | None = Field(
        default=None,
        description="your own secret; null or left out: a generated one",
        json_schema_extra=_without_default(
            anyOf=[{"type": "string", **_SECRET_SCHEMA}, {"type": "null"}]
        ),
    )


class SecretRollRequest(SecretRotateRequest):
    """Rolling: send nothing, ``{}`` or ``{"secret": null}`` to have the pending secret
    generated, or your own (not the current one)."""


class WebhookTestRequest(BaseModel):
    """Which webhook to test-fire, with what sample data."""

    model_config = _REQUEST

    webhook: WebhookName = "products"
    skus: list[Sku] = Field(
        default_factory=lambda: list(SAMPLE_SKUS),
        min_length=1,
        max_length=20,
        description="SKUs for the products webhook",
    )
    store_id: StoreId = TEST_STORE_ID


class WebhookCheckRequest(BaseModel):
    """What a conformance check sends: test data only (docs/webhooks.md §2-§6, §8-§10)."""

    model_config = _REQUEST

    skus: list[Sku] = Field(
        default_factory=lambda: list(SAMPLE_SKUS),
        min_length=1,
        max_length=20,
        description="SKUs you sell; the first goes into the test carts (vizochok-test-… sessions)",
    )
    sells_by_weight: bool = Field(
        default=True, description="false skips the fractional-quantity check"
    )


class WebhookCheck(BaseModel):
    """One check of a conformance run."""

    name: str = Field(description="e.g. products.signed_call, security.forged_signature")
    status: Literal["passed", "failed", "skipped"]
    seen: str = Field(description="what the check sent and what came back")
    fix: str | None = Field(description="for a failure: how to fix it; null otherwise")


class WebhookCheckReport(BaseModel):
    """Every check of one conformance run against the tenant's configured webhooks."""

    ok: bool = Field(description="true when no check failed")
    where: str = Field(
        description="where the requests came from, and whether the SSRF guard applied"
    )
    passed: int
    failed: int
    skipped: int
    checks: list[WebhookCheck]


class Circuits(BaseModel):
    """Each webhook's circuit breaker, for the URL configured now."""

    products: CircuitStateName
    cart: CircuitStateName
    cart_get: CircuitStateName


class WebhookConfigPublic(BaseModel):
    """A tenant's webhook configuration as the admin API shows it."""

    tenant_id: str
    products_url: str
    cart_url: str
    cart_get_url: str | None = Field(description="null: carts are not loaded")
    timeout_seconds: float
    secret_masked: str = Field(description="whsec_… and the last four characters")
    secret: str | None = Field(
        description="the full secret, only in the response that generated or changed it; "
        "null otherwise (store it then: it is not shown again)"
    )
    version: int = Field(description="increases by one on every save")
    updated_at: datetime | None
    circuits: Circuits
    pending_secret_masked: str | None = Field(
        description="a rolled secret waiting to sign (…/secret/roll), masked as secret_masked; "
        "null: none is pending"
    )
    pending_secret: str | None = Field(
        description="the full pending secret, only in the response of the roll that made it; "
        "null otherwise (store it then: it is not shown again)"
    )
    pending_since: datetime | None = Field(description="when the pending secret was rolled")
    pending_promotes_at: datetime | None = Field(
        description="when the pending secret signs by itself unless promoted before "
        "(the roll's time plus VIZOCHOK_SECRET_OVERLAP_SECONDS)"
    )


class WebhookTestAttempt(BaseModel):
    """One HTTP attempt of a test-fire."""

    number: int = Field(description="1, or 2 for the retry after a 5xx")
    status: int | None = Field(description="the HTTP status; null when no answer came")
    latency_ms: float
    detail: str | None = Field(description="the attempt's failure detail; null when it succeeded")
    reason: str | None = Field(
        description="for connect_error: refused, reset, DNS, TLS ... in words; null otherwise"
    )


class TestOffer(BaseModel):
    """An available product as the dispatcher read it."""

    sku: str
    price: str = Field(description="a decimal number, as a string")
    promo_price: str | None = Field(description="a decimal number, as a string")
    promo_label: str | None


class ProductsTestResult(BaseModel):
    """What the products webhook's reply meant."""

    available: list[TestOffer]
    unavailable: list[str] = Field(description="the requested SKUs that are not available")


class CartAccepted(BaseModel):
    """The tenant did it: ``{"ok": true}``, exactly as the chat's AI sees it."""

    model_config = ConfigDict(extra="forbid")

    ok: Literal[True]


class CartRefused(BaseModel):
    """It was not done: ``{"ok": false, "reason": ...}``, exactly as the chat's AI sees it."""

    model_config = ConfigDict(extra="forbid")

    ok: Literal[False]
    reason: str = Field(description="the tenant's reason, or webhook_timeout on any failure")


class TestCartItem(BaseModel):
    """One line of a loaded cart."""

    sku: str
    name: str
    price: str = Field(description="a decimal number, as a string")
    quantity: str = Field(description="a decimal number, as a string")
    unit: str | None


class CartGetTestResult(BaseModel):
    """The cart as loaded; ``loaded: false`` means unknown, never empty."""

    loaded: bool
    items: list[TestCartItem]


class _TestReport(BaseModel):
    """What a test-fire saw."""

    url: str | None = Field(
        description="the URL called, as sent (or that would have been: nothing is sent on "
        "blocked_destination, circuit_open, bulkhead_full); null only when the webhook has "
        "no URL"
    )
    ok: bool = Field(description="the webhook answered as the contract says")
    status: int | None = Field(description="the final HTTP status; null when none arrived")
    latency_ms: float | None = Field(description="null when nothing was sent")
    detail: str | None = Field(description="the failure's machine-readable detail, if any")
    delivery_id: str | None = Field(description="X-VIZOCHOK-Delivery; null when nothing was sent")
    attempts: list[WebhookTestAttempt]
    problems: list[str] = Field(
        description="every problem found, one readable line each, with what to do about it"
    )
    response_body: str | None = Field(
        description="a non-200 answer's body as text (at most 4096 bytes are read); null otherwise"
    )


class ProductsTestReport(_TestReport):
    """A products test-fire."""

    webhook: Literal["products"]
    result: ProductsTestResult


class CartTestReport(_TestReport):
    """A cart test-fire (``clear`` on a fresh test session)."""

    webhook: Literal["cart"]
    result: CartAccepted | CartRefused


class CartGetTestReport(_TestReport):
    """A cart GET test-fire."""

    webhook: Literal["cart_get"]
    result: CartGetTestResult


#: What a test-fire saw; ``webhook`` says which of the three shapes ``result`` has.
WebhookTestReport = Annotated[
    ProductsTestReport | CartTestReport | CartGetTestReport, Field(discriminator="webhook")
]


class FieldProblem(BaseModel):
    """One broken field."""

    field: str
    message: str


class ErrorDetail(BaseModel):
    """The error's stable code, a message, and the broken fields on validation errors."""

    code: str = Field(description="stable, machine-readable: unauthorized, validation_error ...")
    message: str
    fields: list[FieldProblem] = _optional("the broken fields; on validation errors only")


class ErrorResponse(BaseModel):
    """Every error body: ``{"error": {...}}``."""

    error: ErrorDetail
