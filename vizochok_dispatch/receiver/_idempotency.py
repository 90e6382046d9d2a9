"""Idempotent cart operations: one ``X-VIZOCHOK-Delivery`` id, one effect, one answer.

VIZOCHOK retries a cart call after a 5xx with the same delivery id (docs/webhooks.md §2-3), and a
5xx may come from a proxy after the tenant already applied the operation.  So the first
complete answer for a delivery id is kept and replayed; the same id with a different body is
refused; a failed attempt releases its claim so the retry can run.

The store is an interface: the bounded in-memory default serves one process; a deployment
with several workers passes a shared one (Redis, its database) with the same three methods.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

ClaimState = Literal["new", "replay", "conflict", "in_progress"]


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A complete answer kept for replay."""

    status_code: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Claim:
    """What to do with a delivery id.

    ``new``: run the operation, then ``complete`` or ``release``; ``replay``: answer
    ``response`` again; ``conflict``: the id was used for a different request;
    ``in_progress``: another request with this id has not finished.
    """

    state: ClaimState
    response: StoredResponse | None = None


@runtime_checkable
class IdempotencyStore(Protocol):
    """Where the receiver remembers delivery ids; ``fingerprint`` identifies the request."""

    async def claim(self, delivery_id: str, fingerprint: str) -> Claim:
        """Reserve ``delivery_id`` for this request, or say why not."""
        ...

    async def complete(self, delivery_id: str, fingerprint: str, response: StoredResponse) -> None:
        """Keep the answer of a claimed id for replay."""
        ...

    async def release(self, delivery_id: str, fingerprint: str) -> None:
        """Give up a claim (the attempt failed) so a retry runs the operation."""
        ...


@dataclass(slots=True)
class _Entry:
    fingerprint: str
    expires_at: float
    response: StoredResponse | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class InMemoryIdempotencyStore:
    """A per-process store bounded in time (``ttl_seconds``) and size (``max_entries``).

    The TTL outlives the signature tolerance (300 s) plus the retry delay, so a request that
    still verifies can still be recognised.  Past ``max_entries`` the oldest ids are dropped
    first.  A duplicate arriving while the first is running waits up to ``wait_seconds`` for
    its answer instead of running the operation twice.
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        ttl_seconds: float = 600.0,
        wait_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if not math.isfinite(ttl_seconds) or ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be a positive number")
        if not math.isfinite(wait_seconds) or wait_seconds < 0:
            raise ValueError("wait_seconds must be 0 or more")
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._wait = wait_seconds
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def claim(self, delivery_id: str, fingerprint: str) -> Claim:
        """Reserve, replay, refuse, or (after waiting for the first request) report busy."""
        waited = False
        while True:
            self._purge()
            entry = self._entries.get(delivery_id)
            if entry is None:
                self._entries[delivery_id] = _Entry(fingerprint, self._clock() + self._ttl)
                self._bound()
                return Claim("new")
            if entry.fingerprint != fingerprint:
                return Claim("conflict")
            if entry.response is not None:
                return Claim("replay", entry.response)
            if waited or self._wait <= 0:
                return Claim("in_progress")
            try:
                async with asyncio.timeout(self._wait):
                    await entry.done.wait()
            except TimeoutError:
                return Claim("in_progress")
            waited = True

    async def complete(self, delivery_id: str, fingerprint: str, response: StoredResponse) -> None:
        """Keep ``response`` for ``ttl_seconds`` and wake any waiting duplicate."""
        entry = self._entries.get(delivery_id)
        if entry is None or entry.fingerprint != fingerprint:
            return
        entry.response = response
        entry.expires_at = self._clock() + self._ttl
        self._entries.move_to_end(delivery_id)
        entry.done.set()

    async def release(self, delivery_id: str, fingerprint: str) -> None:
        """Forget an unfinished claim and wake any waiting duplicate to run it itself."""
        entry = self._entries.get(delivery_id)
        if entry is None or entry.fingerprint != fingerprint or entry.response is not None:
            return
        del self._entries[delivery_id]
        entry.done.set()

    def _purge(self) -> None:
        # Entries are appended (claim) or moved to the end (complete) with ``now + ttl``, so
        # they are ordered by expiry: drop from the front until one is still alive.
        now = self._clock()
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.expires_at > now:
                break
            del self._entries[key]
            entry.done.set()

    def _bound(self) -> None:
        while len(self._entries) > self._max_entries:
            _, oldest = self._entries.popitem(last=False)
            oldest.done.set()
