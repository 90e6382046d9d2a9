"""Why a request was refused: the receiver distribution's exceptions (receivers/python), the
same classes, so a tenant catches one set whichever package it imports them from."""

from __future__ import annotations

from vizochok_receiver._errors import (
    MalformedHeader,
    MissingHeader,
    SignatureMismatch,
    TimestampExpired,
    TimestampInFuture,
    TimestampOutOfRange,
    VerificationError,
)

__all__ = [
    "MalformedHeader",
    "MissingHeader",
    "SignatureMismatch",
    "TimestampExpired",
    "TimestampInFuture",
    "TimestampOutOfRange",
    "VerificationError",
]
