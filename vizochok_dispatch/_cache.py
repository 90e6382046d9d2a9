"""An in-process cache in front of any config store: zero database queries per warm call.

A save or delete made through the cache is visible at once in this process.  A change made
by another process is picked up when the cached entry is older than ``ttl_seconds``, so that
is the bound on cross-process staleness (a rotated secret may sign for up to that long; the
receiver kit accepts several secrets for exactly this).  Unknown tenants are cached too, so a
flood of calls for a tenant with no config cannot flood the database.  Concurrent misses for
one tenant share a single query.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from ._config import UNSET, Unset, WebhookConfig
from ._store import ConfigStore


@dataclass(slots=True)
class _Entry:
    config: WebhookConfig | None
    fetched_at: float


class CachedConfigStore:
    """A :class:`ConfigStore` that remembers what ``inner`` said for ``ttl_seconds``."""

    def __init__(
        self,
        inner: ConfigStore,
        *,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._loading: dict[str, asyncio.Future[WebhookConfig | None]] = {}
        #: Reads that reached the inner store; the benchmark reports it per call.
        self.misses = 0

    async def open(self) -> None:
        """Open the inner store."""
        await self.inner.open()

    async def close(self) -> None:
        """Close the inner store and forget everything."""
        self._entries.clear()
        await self.inner.close()

    def invalidate(self, tenant_id: str | None = None) -> None:
        """Forget one tenant (or all): the next call reads the store again."""
        if tenant_id is None:
            self._entries.clear()
        else:
            self._entries.pop(tenant_id, None)

    async def get_config(self, tenant_id: str) -> WebhookConfig | None:
        """The cached config while fresh; otherwise one shared read of the inner store."""
        entry = self._entries.get(tenant_id)
        if entry is not None and self._clock() - entry.fetched_at < self._ttl:
            return entry.config
        pending = self._loading.get(tenant_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[WebhookConfig | None] = asyncio.get_running_loop().create_future()
        self._loading[tenant_id] = future
        try:
            self.misses += 1
            config = await self.inner.get_config(tenant_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so a future nobody awaited logs nothing
            raise
        else:
            self._entries[tenant_id] = _Entry(config, self._clock())
            future.set_result(config)
            return config
        finally:
            del self._loading[tenant_id]

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
        """Save through the inner store, then serve the saved config at once."""
        saved = await self.inner.save_config(
            tenant_id,
            products_url=products_url,
            cart_url=cart_url,
            cart_get_url=cart_get_url,
            timeout_seconds=timeout_seconds,
            secret=secret,
        )
        self._entries[tenant_id] = _Entry(saved, self._clock())
        return saved

    async def delete_config(self, tenant_id: str) -> bool:
        """Delete through the inner store and forget the tenant."""
        try:
            return await self.inner.delete_config(tenant_id)
        finally:
            self._entries.pop(tenant_id, None)
