"""Request and response bodies of the admin API.

Requests refuse unknown fields (``extra="forbid"``) and coerce nothing (``strict=True``: a
timeout sent as ``"5"`` is an error, not 5).  The contract's own rules (CONTRACT §1) are
checked by the core's ``merge_config``, so the API and the store refuse the same things with
the same messages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from .._testfire import SAMPLE_SKUS, TEST_STORE_ID

_REQUEST = ConfigDict(extra="forbid", strict=True)


def _utf8_text(value: str) -> str:
    """Refuse lone surrogates (a JSON ``\\ud800`` escape, or bytes that were not UTF-8)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(
            "string_unicode", "must be valid UTF-8 text (no lone surrogates)"
        ) from None
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


class WebhookConfigUpdate(BaseModel):
    """A partial update: only the fields sent change; ``cart_get_url: null`` clears it."""

    model_config = _REQUEST

    products_url: str | None = Field(default=None, description="absolute https:// URL")
    cart_url: str | None = Field(default=None, description="absolute https:// URL")
    cart_get_url: str | None = Field(
        default=None, description="absolute https:// URL; null: do not load carts"
    )
    timeout_seconds: float | None = Field(default=None, description="0.1 to 30 seconds")
    secret: str | None = Field(
        default=None,
        description="your own signing secret (at least 24 characters); omit it to keep the "
        "current one, or to have one generated on the first save",
    )


class SecretRotateRequest(BaseModel):
    """Rotation: send nothing (or ``{}``) to have a secret generated, or your own."""

    model_config = _REQUEST

    secret: str | None = Field(default=None, description="at least 24 characters")


class WebhookTestRequest(BaseModel):
    """Which webhook to test-fire, with what sample data."""

    model_config = _REQUEST

    webhook: Literal["products", "cart", "cart_get"] = "products"
    skus: list[Sku] = Field(
        default_factory=lambda: list(SAMPLE_SKUS),
        min_length=1,
        max_length=20,
        description="SKUs for the products webhook",
    )
    store_id: StoreId = TEST_STORE_ID


class WebhookConfigPublic(BaseModel):
    """A tenant's webhook configuration as the admin API shows it."""

    tenant_id: str
    products_url: str
    cart_url: str
    cart_get_url: str | None
    timeout_seconds: float
    secret_masked: str = Field(description="whsec_… and the last four characters")
    secret: str | None = Field(
        description="the full secret, only in the response that generated or changed it; "
        "null otherwise (store it then: it is not shown again)"
    )
    version: int
    updated_at: datetime | None
    circuits: dict[str, str] = Field(
        description="each webhook's circuit breaker: closed, open or half_open"
    )


class WebhookTestAttempt(BaseModel):
    """One HTTP attempt of a test-fire."""

    number: int
    status: int | None
    latency_ms: float
    detail: str | None


class WebhookTestReport(BaseModel):
    """What a test-fire saw."""

    webhook: Literal["products", "cart", "cart_get"]
    url: str | None
    ok: bool = Field(description="the webhook answered as the contract says")
    status: int | None
    latency_ms: float | None
    detail: str | None = Field(description="the failure's machine-readable detail, if any")
    delivery_id: str | None
    attempts: list[WebhookTestAttempt]
    result: dict[str, Any] = Field(description="what the dispatcher made of the reply")
    problems: list[str] = Field(description="every problem found, one readable line each")


class FieldProblem(BaseModel):
    """One broken field."""

    field: str
    message: str


class ErrorDetail(BaseModel):
    """The error's stable code, a message, and the broken fields on validation errors."""

    code: str
    message: str
    fields: list[FieldProblem] | None = None


class ErrorResponse(BaseModel):
    """Every error body: ``{"error": {...}}``."""

    error: ErrorDetail
