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

When the store fails (a poll or a refresh raises, e.g. the database is unreachable and its
timeouts fire), entries are served stale, as HTTP's ``stale-if-error`` (RFC 5861) does: each
one for at most ``ttl_seconds + stale_if_error_seconds`` after the store last confirmed it,
logged once per entry as ``config_cache.serving_stale``.  An entry older than that is not
served: the call reads the store again and gets its error.

Unknown tenants are cached too, so a flood of calls for a tenant with no config cannot flood
the database.  Concurrent misses for one tenant share a single read, which runs as a task of
its own: a caller that stops waiting (its deadline passed) leaves the read to finish for the
next caller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import structlog

from .._exceptions import StoreError
from ._config import UNSET, Unset, WebhookConfig
from ._rotation import DEFAULT_SECRET_OVERLAP_SECONDS
from ._store import ConfigStore, VersionedStore

_log = structlog.get_logger("vizochok_dispatch")

#: How long an entry is served while the store fails, beyond ``ttl_seconds`` (the
#: ``VIZOCHOK_CONFIG_STALE_IF_ERROR_SECONDS`` default).
DEFAULT_STALE_IF_ERROR_SECONDS = 300.0


@dataclass(slots=True)
class _Entry:
    config: WebhookConfig | None
    #: When it was read (the refresh rule of stores without versions).
    fetched_at: float
    #: When the store last confirmed it: read, or a poll found its version unchanged.
    checked_at: float
    #: Set when a poll or a refresh failed after ``checked_at``: the entry is being served
    #: stale; cleared when the store confirms it again.
    failing_since: float | None = None
    logged_stale: bool = False


class CachedConfigStore:
    """A :class:`ConfigStore` that remembers what ``inner`` said (see the module docstring)."""

    def __init__(
        self,
        inner: ConfigStore,
        *,
        ttl_seconds: float,
        stale_if_error_seconds: float = DEFAULT_STALE_IF_ERROR_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        poll_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.inner = inner
        self._ttl = ttl_seconds
        self._max_stale_age = ttl_seconds + stale_if_error_seconds
        self._clock = clock
        #: The poller's timer; a real sleep even under a fake clock (it must yield).
        self._poll_sleep = poll_sleep
        self._polls = isinstance(inner, VersionedStore)
        self._entries: dict[str, _Entry] = {}
        self._loading: dict[str, asyncio.Task[WebhookConfig | None]] = {}
        self._refreshes: dict[str, asyncio.Task[None]] = {}
        self._poller: asyncio.Task[None] | None = None
        #: Bumped by every save or delete through the cache: a read that started before one
        #: must not overwrite what it wrote.
        self._writes: dict[str, int] = {}
        #: Reads that reached the inner store; the benchmark reports it per call.
        self.misses = 0
        #: Lookups answered from the cache (metrics).
        self.hits = 0

    async def open(self) -> None:
        """Open the inner store."""
        await self.inner.open()

    async def stop_refreshing(self) -> None:
        """Stop polling and cancel the reads under way (the inner store stays open).

        A call waiting for a read cancelled here gets :class:`StoreError`.
        """
        tasks: list[asyncio.Task[Any]] = [*self._refreshes.values(), *self._loading.values()]
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
        """The cached config; only a tenant never seen (or forgotten, or stale past the
        stale-if-error limit) waits for the store.  Raises what the store raises then."""
        if self._ttl > 0 and self._polls and self._poller is None:
            self._poller = asyncio.create_task(self._poll_forever())
        entry = self._entries.get(tenant_id)  # never one when the cache is off (ttl 0)
        if entry is not None:
            if not self._polls and self._clock() - entry.fetched_at >= self._ttl:
                self._refresh_in_background(tenant_id)
            if entry.failing_since is None or self._serve_stale(tenant_id, entry):
                self.hits += 1
                return entry.config
        task = self._start_read(tenant_id)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                # the read was stopped (shutdown), not this caller: a failure, not a cancel
                raise StoreError("the config store read was stopped") from None
            raise

    def _serve_stale(self, tenant_id: str, entry: _Entry) -> bool:
        """Whether an entry the store failed to confirm may still be served (and log it)."""
        age = self._clock() - entry.checked_at
        if age <= self._max_stale_age:
            if not entry.logged_stale:
                entry.logged_stale = True
                _log.warning(
                    "config_cache.serving_stale",
                    tenant_id=tenant_id,
                    age_seconds=round(age, 3),
                    limit_seconds=self._max_stale_age,
                )
            return True
        return False

    def refresh_lag(self) -> float:
        """Seconds since the store last confirmed the least recently confirmed entry (0 with
        none cached): how stale the cache may be now, for metrics."""
        if not self._entries:
            return 0.0
        oldest = min(entry.checked_at for entry in self._entries.values())
        return max(self._clock() - oldest, 0.0)

    async def poll(self) -> None:
        """Compare every cached entry with the store's versions; refresh what moved.

        A failed poll marks every entry as served stale (see the module docstring).
        """
        assert isinstance(self.inner, VersionedStore)  # noqa: S101 - only called when it is
        started = self._clock()
        try:
            versions = await self.inner.versions()
        except Exception:
            for entry in self._entries.values():
                if entry.failing_since is None:
                    entry.failing_since = started
            raise
        for tenant_id, entry in list(self._entries.items()):
            current = versions.get(tenant_id)
            cached = None if entry.config is None else entry.config.version
            if current != cached:
                self._refresh_in_background(tenant_id)
            else:
                _confirm(entry, started)

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

    def _start_read(self, tenant_id: str) -> asyncio.Task[WebhookConfig | None]:
        """The read of ``tenant_id`` under way, or a new one: one read per tenant at a time."""
        task = self._loading.get(tenant_id)
        if task is None:
            task = asyncio.create_task(self._read(tenant_id))
            self._loading[tenant_id] = task
            task.add_done_callback(partial(self._read_done, tenant_id))
        return task

    def _read_done(self, tenant_id: str, task: asyncio.Task[WebhookConfig | None]) -> None:
        if self._loading.get(tenant_id) is task:
            del self._loading[tenant_id]
        if not task.cancelled():
            task.exception()  # retrieved here, so a read nobody awaited logs nothing

    async def _read(self, tenant_id: str) -> WebhookConfig | None:
        writes = self._writes.get(tenant_id, 0)
        started = self._clock()
        self.misses += 1
        config = await self.inner.get_config(tenant_id)
        entry = self._entries.get(tenant_id)
        if self._writes.get(tenant_id, 0) != writes and entry is not None:
            return entry.config  # a save landed meanwhile; it is newer than this read
        if self._ttl > 0:
            self._entries[tenant_id] = _Entry(config, fetched_at=self._clock(), checked_at=started)
        return config

    async def _refresh(self, tenant_id: str) -> None:
        started = self._clock()
        try:
            await self._start_read(tenant_id)
        except Exception as exc:  # keep serving the last good config, within its limit
            entry = self._entries.get(tenant_id)
            if entry is not None:
                if entry.failing_since is None:
                    entry.failing_since = started
                # try again in a second, not on every call
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
        return self._remember(tenant_id, saved)

    async def roll_secret(
        self,
        tenant_id: str,
        *,
        now: datetime,
        overlap_seconds: float = DEFAULT_SECRET_OVERLAP_SECONDS,
        secret: str | None = None,
    ) -> WebhookConfig | None:
        """Roll through the inner store, then serve the saved config at once.

        The pending secret's own promotion time needs no refresh: the dispatcher applies
        it to whatever config it reads (``tenants._rotation.in_effect``)."""
        saved = await self.inner.roll_secret(
            tenant_id, now=now, overlap_seconds=overlap_seconds, secret=secret
        )
        return None if saved is None else self._remember(tenant_id, saved)

    async def promote_secret(self, tenant_id: str, *, now: datetime) -> WebhookConfig | None:
        """Promote through the inner store, then serve the saved config at once."""
        saved = await self.inner.promote_secret(tenant_id, now=now)
        return None if saved is None else self._remember(tenant_id, saved)

    def _remember(self, tenant_id: str, saved: WebhookConfig) -> WebhookConfig:
        """Serve what a write through the cache saved, from now on."""
        self._writes[tenant_id] = self._writes.get(tenant_id, 0) + 1
        if self._ttl <= 0:
            return saved  # the cache is off: nothing is kept
        current = self._entries.get(tenant_id)
        # Concurrent saves finish in any order; the highest version holds every column.
        if current is None or current.config is None or current.config.version <= saved.version:
            now = self._clock()
            self._entries[tenant_id] = _Entry(saved, fetched_at=now, checked_at=now)
        return saved

    async def delete_config(self, tenant_id: str) -> bool:
        """Delete through the inner store and forget the tenant."""
        try:
            return await self.inner.delete_config(tenant_id)
        finally:
            self._writes[tenant_id] = self._writes.get(tenant_id, 0) + 1
            self._entries.pop(tenant_id, None)


def _confirm(entry: _Entry, at: float) -> None:
    """The store vouched for ``entry`` at ``at`` (a poll that started then)."""
    entry.checked_at = max(entry.checked_at, at)
    entry.failing_since = None
    entry.logged_stale = False
