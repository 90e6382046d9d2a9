"""Response bodies of the call log route (``GET /api/v1/admin/webhooks/calls``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from ._schemas import WebhookName

CallOutcomeName = Literal["ok", "failed"]


class CallAttemptPublic(BaseModel):
    """One HTTP attempt of a logged call."""

    number: int = Field(description="1, or 2 for the retry after a 5xx")
    status: int | None = Field(description="the HTTP status; null when no answer came")
    latency_ms: float = Field(description="from sending to the answer, in milliseconds")
    detail: str | None = Field(description="the attempt's failure detail; null when it succeeded")
    reason: str | None = Field(
        description="for connect_error: what kind of failure, in words; else null"
    )


class CallPublic(BaseModel):
    """One synchronous webhook call as the call log kept it (never a secret, signature,
    request body or URL)."""

    id: str = Field(description="call_ and 26 letters and digits")
    webhook: WebhookName
    at: datetime = Field(description="when the call ended (UTC)")
    outcome: CallOutcomeName = Field(
        description="failed: the call failed (detail says why); ok: a sampled success, or one "
        "whose reply had problems"
    )
    detail: str | None = Field(
        description="the failure's machine-readable detail (docs/webhooks.md §3); null when ok"
    )
    delivery_id: str | None = Field(
        description="X-VIZOCHOK-Delivery of the attempts; null when nothing was sent"
    )
    status: int | None = Field(description="the last answer's HTTP status; null when none came")
    latency_ms: float | None = Field(
        description="the whole call in milliseconds; null when nothing was sent"
    )
    attempts: list[CallAttemptPublic]
    problems: list[str] = Field(description="what was wrong in the reply, one line each")
    response: str | None = Field(
        description="the first 4 KiB of the last non-200 answer's body, as UTF-8 text "
        "(undecodable bytes replaced; a secret or signature echoed back is shown as "
        "[redacted]); null when there was none"
    )


class CallPagePublic(BaseModel):
    """One page of the call log, newest first."""

    calls: list[CallPublic]
    next_cursor: str | None = Field(
        description="pass it as cursor for the next page (with the same filters); null on "
        "the last page"
    )
