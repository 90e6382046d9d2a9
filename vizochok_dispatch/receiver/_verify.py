"""Verifying one signed request (docs/webhooks.md §2): the receiver distribution's verifier
(receivers/python, standard library only), used here rather than copied."""

from __future__ import annotations

from vizochok_receiver._verify import (
    DEFAULT_TOLERANCE_SECONDS,
    Secrets,
    VerifiedRequest,
    normalise_secrets,
    verify_request,
)

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "Secrets",
    "VerifiedRequest",
    "normalise_secrets",
    "verify_request",
]
