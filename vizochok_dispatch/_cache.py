"""An in-process cache in front of any config store: zero database queries per warm call.

A save or delete made through the cache is visible at once in this process.  Changes made by
another process are noticed by polling: every ``ttl_seconds`` one query lists every tenant's
config version (:class:`VersionedStore`), and only the entries whose version moved are read
again, in the background, while calls keep being served the entry they had.  So the cost is
one query per interval whatever the number of tenants or calls, warm calls never wait on the
database, and cross-process staleness is bounded by ``ttl_seconds`` plus one poll and one read
(a rotated secret may sign for that long; the receiver kit accepts several secrets for exactly
this).  A store that cannot list versions gets the simpler rule: an entry ``ttl_seconds`` old
is refreshed in the background on its next use.

Unknown tenants are cached too, so a flood of calls for a tenant with no config cannot flood
the database.  Concurrent misses for one tenant share a single query.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from ._config import UNSET, Unset, WebhookConfig
from ._store import ConfigStore, VersionedStore

_log = structlog.get_logger("vizochok_dispatch")


@dataclass(slots=True)
class _Entry:
    config: WebhookConfig | None
    fetched_at: float


class CachedConfigStore:
    """A :class:`ConfigStore` that remembers what ``inner`` said (see the module docstring)."""

    def __init__(
        self,
        inner: ConfigStore,
        *,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        poll_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.inner = inner
        self._ttl = ttl_seconds
        self._clock = clock
        #: The poller's timer; a real sleep even under a fake clock (it must yield).
        self._poll_sleep = poll_sleep
        self._polls = isinstance(inner, VersionedStore)
        self._entries: dict[str, _Entry] = {}
        self._loading: dict[str, asyncio.Future[WebhookConfig | None]] = {}
        self._refreshes: dict[str, asyncio.Task[None]] = {}
        self._poller: asyncio.Task[None] | None = None
        #: Bumped by every save or delete through the cache: a read that started before one
        #: must not overwrite what it wrote.
        self._writes: dict[str, int] = {}
        #: Reads that reached the inner store; the benchmark reports it per call.
        self.misses = 0

    async def open(self) -> None:
        """Open the inner store."""
        await self.inner.open()

    async def stop_refreshing(self) -> None:
        """Stop polling and cancel the background reads (the inner store stays open)."""
        tasks = list(self._refreshes.values())
        if self._poller is not None:
            tasks.append(self._poller)
            self._poller = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop refreshing, close the inner store and forget everything."""
        await self.stop_refreshing()
        self._entries.clear()
        await self.inner.close()

    def invalidate(self, tenant_id: str | None = None) -> None:
        """Forget one tenant (or all): the next call reads the store again."""
        if tenant_id is None:
            self._entries.clear()
        else:
            self._entries.pop(tenant_id, None)

    async def get_config(self, tenant_id: str) -> WebhookConfig | None:
        """The cached config; only a tenant never seen (or forgotten) waits for the store."""
        if self._ttl <= 0:
            self.misses += 1
            return await self.inner.get_config(tenant_id)
        if self._polls and self._poller is None:
            self._poller = asyncio.create_task(self._poll_forever())
        entry = self._entries.get(tenant_id)
        if entry is not None:
            if not self._polls and self._clock() - entry.fetched_at >= self._ttl:
                self._refresh_in_background(tenant_id)
            return entry.config
        pending = self._loading.get(tenant_id)
        if pending is not None:
            return await asyncio.shield(pending)
        return await self._load(tenant_id)

    async def poll(self) -> None:
        """Compare every cached entry with the store's versions; refresh what moved."""
        assert isinstance(self.inner, VersionedStore)  # noqa: S101 - only called when it is
        versions = await self.inner.versions()
        for tenant_id, entry in list(self._entries.items()):
            current = versions.get(tenant_id)
            cached = None if entry.config is None else entry.config.version
            if current != cached:
                self._refresh_in_background(tenant_id)

    async def settle(self) -> None:
        """Wait for the background reads under way (tests, and a clean shutdown)."""
        while self._refreshes:
            await asyncio.gather(*self._refreshes.values(), return_exceptions=True)

    def _refresh_in_background(self, tenant_id: str) -> None:
        if tenant_id in self._refreshes or tenant_id in self._loading:
            return
        task = asyncio.create_task(self._refresh(tenant_id))
        self._refreshes[tenant_id] = task
        task.add_done_callback(lambda _: self._refreshes.pop(tenant_id, None))

    async def _poll_forever(self) -> None:
        while True:
            await self._poll_sleep(self._ttl)
            try:
                await self.poll()
            except Exception as exc:  # keep serving; try again next interval
                _log.warning("config_cache.poll_failed", error=type(exc).__name__)

    async def _load(self, tenant_id: str) -> WebhookConfig | None:
        future: asyncio.Future[WebhookConfig | None] = asyncio.get_running_loop().create_future()
        self._loading[tenant_id] = future
        writes = self._writes.get(tenant_id, 0)
        try:
            self.misses += 1
            config = await self.inner.get_config(tenant_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so a future nobody awaited logs nothing
            raise
        else:
            entry = self._entries.get(tenant_id)
            if self._writes.get(tenant_id, 0) != writes and entry is not None:
                config = entry.config  # a save landed meanwhile; it is newer than this read
            else:
                self._entries[tenant_id] = _Entry(config, self._clock())
            future.set_result(config)
            return config
        finally:
            del self._loading[tenant_id]

    async def _refresh(self, tenant_id: str) -> None:
        try:
            await self._load(tenant_id)
        except Exception as exc:  # keep serving the last good config
            entry = self._entries.get(tenant_id)
            if entry is not None:  # try again in a second, not on every call
                entry.fetched_at = self._clock() - self._ttl + min(self._ttl, 1.0)
            _log.warning(
                "config_cache.refresh_failed", tenant_id=tenant_id, error=type(exc).__name__
            )

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
        self._writes[tenant_id] = self._writes.get(tenant_id, 0) + 1
        current = self._entries.get(tenant_id)
        # Concurrent saves finish in any order; the highest version holds every column.
        if current is None or current.config is None or current.config.version <= saved.version:
            self._entries[tenant_id] = _Entry(saved, self._clock())
        return saved

    async def delete_config(self, tenant_id: str) -> bool:
        """Delete through the inner store and forget the tenant."""
        try:
            return await self.inner.delete_config(tenant_id)
        finally:
            self._writes[tenant_id] = self._writes.get(tenant_id, 0) + 1
            self._entries.pop(tenant_id, None)
