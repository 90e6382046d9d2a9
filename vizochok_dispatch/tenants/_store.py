"""The config store interface, and the in-memory store shipped for tests and embedding.

A store owns validation through :func:`merge_config`, so every store refuses the same bad
input and a refused save changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from ._config import UNSET, ConfigRules, Unset, WebhookConfig, merge_config
from ._rotation import DEFAULT_SECRET_OVERLAP_SECONDS, promoted, rolled


@runtime_checkable
class ConfigStore(Protocol):
    """Where the dispatcher reads, and the admin surface writes, tenants' webhook configs."""

    async def open(self) -> None:
        """Make the store ready (connect, migrate when allowed). Idempotent."""

    async def close(self) -> None:
        """Release connections. Idempotent."""

    async def get_config(self, tenant_id: str) -> WebhookConfig | None:
        """The tenant's config, or ``None`` when it has none."""

    async def save_config(
        self,
        tenant_id: str,
        *,
        products_url: str | Unset = UNSET,
        cart_url: str | Unset = UNSET,
        cart_get_url: str | Unset | None = UNSET,
        timeout_seconds: float | Unset = UNSET,
        secret: str | Unset | None = UNSET,
    ) -> WebhookConfig:
        """Create or partially update; ``secret=None`` generates a new secret (rotation).
        A new secret replaces the current one at once and drops a pending one."""

    async def roll_secret(
        self,
        tenant_id: str,
        *,
        now: datetime,
        overlap_seconds: float = DEFAULT_SECRET_OVERLAP_SECONDS,
        secret: str | None = None,
    ) -> WebhookConfig | None:
        """Store a pending secret (``secret``, or a generated one) beside the current one,
        which keeps signing until the pending one is promoted or ``overlap_seconds`` after
        ``now`` (``tenants._rotation``); ``None`` when the tenant has no config."""

    async def promote_secret(self, tenant_id: str, *, now: datetime) -> WebhookConfig | None:
        """Make the pending secret the one that signs; ``None`` when the tenant has no config,
        :class:`~vizochok_dispatch.NoPendingSecret` when no secret is pending."""

    async def delete_config(self, tenant_id: str) -> bool:
        """Remove the tenant's config; ``True`` when there was one."""


@runtime_checkable
class VersionedStore(Protocol):
    """A store that can list every tenant's config version cheaply.

    Caches in other processes poll it to notice saves they did not make; the cost is one
    query per poll, whatever the number of tenants or calls.
    """

    async def versions(self) -> dict[str, int]:
        """``{tenant_id: version}`` for every stored config."""


class InMemoryConfigStore:
    """A real store kept in a dict: same rules as the SQL store, no database."""

    def __init__(self, *, rules: ConfigRules | None = None) -> None:
        self._rules = rules or ConfigRules()
        self._configs: dict[str, WebhookConfig] = {}
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close; the configs stay for the object's lifetime."""

    async def get_config(self, tenant_id: str) -> WebhookConfig | None:
        """The tenant's config, or ``None``."""
        return self._configs.get(tenant_id)

    async def save_config(
        self,
        tenant_id: str,
        *,
        products_url: str | Unset = UNSET,
        cart_url: str | Unset = UNSET,
        cart_get_url: str | Unset | None = UNSET,
        timeout_seconds: float | Unset = UNSET,
        secret: str | Unset | None = UNSET,
    ) -> WebhookConfig:
        """Validate and store; a refused save leaves the old config untouched."""
        async with self._lock:
            merged = merge_config(
                tenant_id,
                self._configs.get(tenant_id),
                products_url=products_url,
                cart_url=cart_url,
                cart_get_url=cart_get_url,
                timeout_seconds=timeout_seconds,
                secret=secret,
                rules=self._rules,
            )
            saved = replace(merged, updated_at=datetime.now(UTC))
            self._configs[tenant_id] = saved
            return saved

    async def roll_secret(
        self,
        tenant_id: str,
        *,
        now: datetime,
        overlap_seconds: float = DEFAULT_SECRET_OVERLAP_SECONDS,
        secret: str | None = None,
    ) -> WebhookConfig | None:
        """See :meth:`ConfigStore.roll_secret`."""
        return await self._rewrite(
            tenant_id,
            lambda config: rolled(config, now=now, overlap_seconds=overlap_seconds, secret=secret),
        )

    async def promote_secret(self, tenant_id: str, *, now: datetime) -> WebhookConfig | None:
        """See :meth:`ConfigStore.promote_secret`."""
        return await self._rewrite(tenant_id, lambda config: promoted(config, now=now))

    async def _rewrite(
        self, tenant_id: str, change: Callable[[WebhookConfig], WebhookConfig]
    ) -> WebhookConfig | None:
        async with self._lock:
            existing = self._configs.get(tenant_id)
            if existing is None:
                return None
            saved = replace(change(existing), updated_at=datetime.now(UTC))
            self._configs[tenant_id] = saved
            return saved

    async def versions(self) -> dict[str, int]:
        """Every tenant's config version (see :class:`VersionedStore`)."""
        return {tenant_id: config.version for tenant_id, config in self._configs.items()}

    async def delete_config(self, tenant_id: str) -> bool:
        """Forget the tenant's config."""
        async with self._lock:
            return self._configs.pop(tenant_id, None) is not None
