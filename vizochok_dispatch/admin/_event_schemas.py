"""Request and response bodies of the admin API's event webhook routes (docs/webhooks.md §8-§10).

Requests refuse unknown fields and coerce nothing, as the webhook routes' bodies do
(``_schemas``); the rules beyond a field's JSON type (URL and SSRF checks, known event types,
a secret that suits the scheme) are the event service's own, so the API and the library
refuse the same things with the same messages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, Field

from ..contract._signing import SIGNATURE_SCHEMES
from ..events._service import (
    DEFAULT_TIMEOUT_SECONDS,
    MAX_EVENT_TYPES,
    MAX_TIMEOUT_SECONDS,
    MIN_TIMEOUT_SECONDS,
)
from ..events._values import Trigger
from ..tenants._config import MAX_SECRET_CHARS, MAX_URL_CHARS
from ._schemas import _REQUEST, _optional, _without_default

SignatureScheme = Literal["vizochok", "standard-webhooks"]
DeliveryStatusName = Literal["pending", "delivered", "failed"]
EndpointStatusName = Literal["active", "disabled"]
assert set(get_args(SignatureScheme)) == set(SIGNATURE_SCHEMES)  # noqa: S101 - one list of schemes

#: Marks a property whose value is any JSON (a JSON Schema document, an example ``data``):
#: the one kind of untyped object a response may hold, said so in the spec.
FREE_FORM: Final = "x-free-form"
_URL: Final[dict[str, Any]] = {"format": "uri", "maxLength": MAX_URL_CHARS}
_TYPES_TEXT: Final = (
    "event type names (order.created), prefix patterns (order.*) or * for every type; "
    "GET /api/v1/admin/event-types lists them"
)
_DESCRIPTION_CHARS: Final = 1000


class EventEndpointCreate(BaseModel):
    """A new event endpoint: where events go, which ones, and how they are signed."""

    model_config = _REQUEST

    url: str = Field(
        description="absolute https:// URL (http:// only where the deployment allows it); "
        "no user or password, no #fragment; a host DNS can serve, never a non-public address",
        json_schema_extra=_URL,
    )
    event_types: list[str] = Field(
        min_length=1, max_length=MAX_EVENT_TYPES, description=_TYPES_TEXT
    )
    signature_scheme: SignatureScheme = Field(
        default="vizochok",
        description="vizochok: the synchronous calls' X-VIZOCHOK-Signature; "
        "standard-webhooks: the Standard Webhooks headers (docs/webhooks.md §8)",
    )
    secret: str | None = Field(
        default=None,
        description="your own secret (vizochok: 24-256 printable characters; "
        "standard-webhooks: whsec_ and base64 of 24-64 bytes); null or left out: generated",
        json_schema_extra=_without_default(
            anyOf=[{"type": "string", "maxLength": MAX_SECRET_CHARS}, {"type": "null"}]
        ),
    )
    timeout_seconds: float = Field(
        default=DEFAULT_TIMEOUT_SECONDS,
        ge=MIN_TIMEOUT_SECONDS,
        le=MAX_TIMEOUT_SECONDS,
        description="seconds one attempt may take, from connecting to the answer",
    )
    ordered: bool = Field(
        default=False, description="deliver one at a time, in publish order (docs/webhooks.md §9)"
    )
    description: str | None = Field(
        default=None, max_length=_DESCRIPTION_CHARS, description="yours to fill"
    )


class EventEndpointUpdate(BaseModel):
    """A partial update: only the fields sent change; ``description: null`` clears it.

    ``enabled: false`` disables the endpoint: no new attempt starts and its pending
    deliveries wait; ``enabled: true`` resumes them.  The other fields may be left out but
    not sent as ``null``.
    """

    model_config = _REQUEST

    url: str = _optional("same rules as at creation", **_URL)
    event_types: list[str] = _optional(
        _TYPES_TEXT, type="array", items={"type": "string"}, minItems=1, maxItems=MAX_EVENT_TYPES
    )
    signature_scheme: SignatureScheme = _optional(
        "must suit the current secret (standard-webhooks needs a whsec_ secret)"
    )
    timeout_seconds: float = _optional(
        "seconds one attempt may take", minimum=MIN_TIMEOUT_SECONDS, maximum=MAX_TIMEOUT_SECONDS
    )
    ordered: bool = _optional("deliver one at a time, in publish order")
    description: str | None = Field(
        default=None,
        description="null clears it",
        json_schema_extra=_without_default(
            anyOf=[{"type": "string", "maxLength": _DESCRIPTION_CHARS}, {"type": "null"}]
        ),
    )
    enabled: bool = _optional("false: pause deliveries; true: resume them")


class EventEndpointPublic(BaseModel):
    """An event endpoint as the admin API shows it."""

    id: str = Field(description="ep_ and 26 letters and digits")
    url: str
    event_types: list[str] = Field(description="the subscription as given")
    signature_scheme: SignatureScheme
    timeout_seconds: float
    ordered: bool
    description: str | None
    enabled: bool
    status: EndpointStatusName = Field(description="active, or disabled (see disabled_reason)")
    disabled_reason: str | None = Field(description="why it is disabled; null while active")
    disabled_at: datetime | None = Field(description="since when; null while active")
    secret_masked: str = Field(description="the last four characters of the secret")
    secret: str | None = Field(
        description="the full secret, only in the response that created the endpoint or "
        "rotated its secret; null otherwise (store it then: it is not shown again)"
    )
    created_at: datetime | None
    updated_at: datetime | None
    pending_secret_masked: str | None = Field(
        description="a rolled secret waiting to sign alone (…/secret/roll), masked as "
        "secret_masked; null: none is pending"
    )
    pending_secret: str | None = Field(
        description="the full pending secret, only in the response of the roll that made it; "
        "null otherwise"
    )
    pending_since: datetime | None = Field(description="when the pending secret was rolled")
    pending_promotes_at: datetime | None = Field(
        description="when the pending secret signs alone unless promoted before (the roll's "
        "time plus VIZOCHOK_SECRET_OVERLAP_SECONDS); until then standard-webhooks requests "
        "carry both signatures, vizochok ones the current secret's"
    )


class EndpointSecretRequest(BaseModel):
    """Rolling or rotating an endpoint's secret: send nothing, ``{}`` or ``{"secret": null}``
    to have one generated (``whsec_`` and 32 random bytes, good for both schemes), or your
    own."""

    model_config = _REQUEST

    secret: str | None = Field(
        default=None,
        description="your own secret, suiting the endpoint's scheme (vizochok: 24-256 "
        "printable characters; standard-webhooks: whsec_ and base64 of 24-64 bytes); null or "
        "left out: generated",
        json_schema_extra=_without_default(
            anyOf=[{"type": "string", "maxLength": MAX_SECRET_CHARS}, {"type": "null"}]
        ),
    )


class EventEndpointList(BaseModel):
    """The tenant's event endpoints, oldest first."""

    endpoints: list[EventEndpointPublic]


class EventEndpointDeleted(BaseModel):
    """An endpoint deleted, with its deliveries and their attempts."""

    id: str
    deleted: Literal[True]


class EventTypePublic(BaseModel):
    """One type of the event catalog."""

    name: str = Field(description="what event_types and X-VIZOCHOK-Event say: order.created")
    description: str = Field(description="when it is sent")
    json_schema: dict[str, Any] = Field(
        alias="schema",
        description="the JSON Schema (2020-12) of the request body of this type",
        json_schema_extra={FREE_FORM: "a JSON Schema document"},
    )
    example: dict[str, Any] = Field(
        description="a data object of this type, as it is sent",
        json_schema_extra={FREE_FORM: "the data of one event of this type"},
    )


class EventTypeList(BaseModel):
    """The event catalog, in the docs' order (docs/webhooks.md §10)."""

    event_types: list[EventTypePublic]


class DeliveryAttemptPublic(BaseModel):
    """One HTTP attempt of a delivery, as it happened."""

    number: int = Field(description="1, 2, 3 ...: the X-VIZOCHOK-Attempt it carried")
    status: int | None = Field(description="the HTTP status; null when no answer came")
    latency_ms: float
    detail: str | None = Field(
        description="null when delivered; else http_status, timeout, connect_error or "
        "blocked_destination"
    )
    reason: str | None = Field(description="for connect_error: what failed, in words")
    attempted_at: datetime
    trigger: Trigger = Field(
        description="scheduled (the worker), manual (a retry or recovery) or test (an "
        "endpoint test)"
    )
    response_body: str | None = Field(
        description="the answer's first 4096 bytes as text (invalid UTF-8 replaced); null "
        "when no answer came"
    )


class DeliverySummary(BaseModel):
    """One event on its way to one endpoint."""

    id: str = Field(description="dlv_ and 26 letters and digits")
    event_id: str = Field(description="the X-VIZOCHOK-Delivery / webhook-id of every attempt")
    endpoint_id: str
    event_type: str
    status: DeliveryStatusName
    attempt_count: int = Field(description="attempts made so far")
    last_status: int | None = Field(description="the last attempt's HTTP status, if any")
    next_attempt_at: datetime | None = Field(description="null once delivered or failed")
    detail: str | None = Field(description="why it failed, or the last failure while pending")
    created_at: datetime
    updated_at: datetime | None


class DeliveryPagePublic(BaseModel):
    """One page of the delivery log, newest first."""

    deliveries: list[DeliverySummary]
    next_cursor: str | None = Field(
        description="pass it as cursor for the next page (with the same filters); null on "
        "the last page"
    )


class DeliveryDetail(DeliverySummary):
    """A delivery with the event body exactly as sent and every attempt."""

    body: str = Field(description="the request body every attempt sent and signed, as text")
    attempts: list[DeliveryAttemptPublic] = Field(description="oldest first")
