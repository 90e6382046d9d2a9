"""Rolling a webhook secret without downtime (docs/webhooks.md §7, "Rolling a secret").

A *roll* stores a new secret as *pending* beside the current one, which keeps signing; the
tenant deploys the new secret to a receiver that accepts both, then *promotes* it.  A pending
secret nobody promotes signs by itself once its overlap has passed (``pending_promotes_at``,
fixed when it was rolled).  That promotion is applied where the secret is read
(:func:`in_effect`, with the reader's clock), so no cache, process or missed job can keep
signing with the old secret past the overlap; the next write stores it.  A *rotate* (a new
secret through ``save_config``) replaces the secret at once and drops any pending one.

Pure functions: the stores call them, so every store rolls and promotes alike.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final, Protocol, TypeVar

from .._exceptions import FieldError, InvalidCall, InvalidConfig, NoPendingSecret
from ._config import WebhookConfig, generate_secret, secret_problem

#: How long a rolled secret waits for its promotion before it signs by itself: 24 hours
#: (the ``VIZOCHOK_SECRET_OVERLAP_SECONDS`` default), and the bounds of that setting.
DEFAULT_SECRET_OVERLAP_SECONDS: Final = 24 * 3600.0
MIN_SECRET_OVERLAP_SECONDS: Final = 1.0
MAX_SECRET_OVERLAP_SECONDS: Final = 30 * 24 * 3600.0


def overlap_problem(value: object) -> str | None:
    """Why ``value`` cannot be an overlap in seconds, or ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number of seconds"
    if not math.isfinite(value) or not (
        MIN_SECRET_OVERLAP_SECONDS <= value <= MAX_SECRET_OVERLAP_SECONDS
    ):
        return (
            f"must be from {MIN_SECRET_OVERLAP_SECONDS:g} to {MAX_SECRET_OVERLAP_SECONDS:g} seconds"
        )
    return None


class Rollable(Protocol):
    """A frozen dataclass with a secret that can be rolled: a webhook config, an event
    endpoint."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def secret(self) -> str: ...
    @property
    def pending_secret(self) -> str | None: ...
    @property
    def pending_since(self) -> datetime | None: ...
    @property
    def pending_promotes_at(self) -> datetime | None: ...


R = TypeVar("R", bound=Rollable)


def promotion_due(promotes_at: datetime | None, now: datetime) -> bool:
    """Whether a pending secret due at ``promotes_at`` signs at ``now``."""
    return promotes_at is not None and now >= promotes_at


def in_effect(value: R, now: datetime) -> R:
    """``value`` as it signs at ``now``: a pending secret whose overlap ended is current.

    Nothing is written (a config's version stays); the next roll, promote or rotate stores it.
    """
    if value.pending_secret is None or not promotion_due(value.pending_promotes_at, now):
        return value
    return replace(
        value,
        secret=value.pending_secret,
        pending_secret=None,
        pending_since=None,
        pending_promotes_at=None,
    )


def roll(value: R, pending: str, *, now: datetime, overlap_seconds: float) -> R:
    """``value`` (as in effect at ``now``) with ``pending`` waiting beside its secret until
    ``overlap_seconds`` after ``now``; an earlier pending secret is replaced.  Unchecked:
    the caller validated ``pending`` and the overlap (:func:`overlap_problem`)."""
    return replace(
        in_effect(value, now),
        pending_secret=pending,
        pending_since=now,
        pending_promotes_at=now + timedelta(seconds=overlap_seconds),
    )


def promote(value: R, *, now: datetime) -> R:
    """``value`` with its pending secret current (the old one stops signing).

    Raises :class:`NoPendingSecret` when nothing is pending at ``now`` (a secret whose
    overlap ended is current already).
    """
    current = in_effect(value, now)
    if current.pending_secret is None:
        raise NoPendingSecret(
            "no secret is pending: roll one first (a rotate drops a pending secret, and one "
            "whose overlap ended signs already)"
        )
    return replace(
        current,
        secret=current.pending_secret,
        pending_secret=None,
        pending_since=None,
        pending_promotes_at=None,
    )


def rolled(
    config: WebhookConfig,
    *,
    now: datetime,
    overlap_seconds: float = DEFAULT_SECRET_OVERLAP_SECONDS,
    secret: str | None = None,
) -> WebhookConfig:
    """A webhook config with a new pending secret (``secret``, or a generated ``whsec_``
    one): :func:`roll`, after the checks, the version moved on by one.

    Raises :class:`InvalidConfig` (field ``secret``) for an own secret that breaks
    docs/webhooks.md §1 or equals the current one, :class:`InvalidCall` for an overlap
    outside :data:`MIN_SECRET_OVERLAP_SECONDS`-:data:`MAX_SECRET_OVERLAP_SECONDS`.
    """
    if (problem := overlap_problem(overlap_seconds)) is not None:
        raise InvalidCall(f"overlap_seconds {problem}")
    if secret is not None:
        problem = secret_problem(secret) or same_secret_problem(in_effect(config, now), secret)
        if problem is not None:
            raise InvalidConfig([FieldError("secret", problem)])
    pending = generate_secret() if secret is None else secret
    changed = roll(config, pending, now=now, overlap_seconds=overlap_seconds)
    return replace(changed, version=config.version + 1)


def promoted(config: WebhookConfig, *, now: datetime) -> WebhookConfig:
    """A webhook config with its pending secret current (:func:`promote`), the version
    moved on by one."""
    return replace(promote(config, now=now), version=config.version + 1)


def same_secret_problem(current: Rollable, secret: str) -> str | None:
    """Refuses rolling to the secret that signs already (nothing would change)."""
    if secret == current.secret:
        return "must differ from the current secret"
    return None
