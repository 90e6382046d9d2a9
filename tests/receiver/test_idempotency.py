"""The bounded in-memory idempotency store: claim, replay, conflict, TTL and size bounds."""

from __future__ import annotations

import asyncio

import pytest

from vizochok_dispatch.receiver import (
    Claim,
    IdempotencyStore,
    InMemoryIdempotencyStore,
    StoredResponse,
)

OK = StoredResponse(200, b'{"ok":true}')


class FakeClock:
    """Monotonic time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_default_store_satisfies_the_interface() -> None:
    """The shipped store is an ``IdempotencyStore``, so a custom one can replace it."""
    assert isinstance(InMemoryIdempotencyStore(), IdempotencyStore)


async def test_first_claim_is_new_then_the_answer_is_replayed() -> None:
    """A completed delivery id replays its stored answer for the same request."""
    store = InMemoryIdempotencyStore()
    assert await store.claim("d", "fp") == Claim("new")
    await store.complete("d", "fp", OK)
    assert await store.claim("d", "fp") == Claim("replay", OK)


async def test_same_id_with_another_fingerprint_is_a_conflict() -> None:
    """A delivery id reused for a different request is a conflict, running or finished."""
    store = InMemoryIdempotencyStore(wait_seconds=0)
    await store.claim("d", "fp")
    assert (await store.claim("d", "other")).state == "conflict"
    await store.complete("d", "fp", OK)
    assert (await store.claim("d", "other")).state == "conflict"


async def test_release_lets_the_retry_run() -> None:
    """A released claim (the attempt failed) is claimable again."""
    store = InMemoryIdempotencyStore()
    await store.claim("d", "fp")
    await store.release("d", "fp")
    assert (await store.claim("d", "fp")).state == "new"


async def test_release_never_forgets_a_completed_answer() -> None:
    """Once answered, a late release cannot reopen the id for a second run."""
    store = InMemoryIdempotencyStore()
    await store.claim("d", "fp")
    await store.complete("d", "fp", OK)
    await store.release("d", "fp")
    assert (await store.claim("d", "fp")).state == "replay"


async def test_entries_expire_after_the_ttl() -> None:
    """Entries live ``ttl_seconds`` from their answer, then the id is forgotten."""
    clock = FakeClock()
    store = InMemoryIdempotencyStore(ttl_seconds=600, clock=clock)
    await store.claim("d", "fp")
    await store.complete("d", "fp", OK)
    clock.now += 599
    assert (await store.claim("d", "fp")).state == "replay"
    clock.now += 1
    assert (await store.claim("d", "fp")).state == "new"


async def test_the_store_keeps_at_most_max_entries() -> None:
    """Past ``max_entries`` the oldest ids are dropped first, so memory stays bounded."""
    store = InMemoryIdempotencyStore(max_entries=3)
    for key in "abcd":
        await store.claim(key, "fp")
        await store.complete(key, "fp", OK)
    assert len(store) == 3
    assert (await store.claim("b", "fp")).state == "replay"
    assert (await store.claim("a", "fp")).state == "new"


async def test_a_duplicate_waits_for_the_running_claim() -> None:
    """A duplicate of a running claim waits and then replays its answer."""
    store = InMemoryIdempotencyStore(wait_seconds=30)
    await store.claim("d", "fp")
    waiting = asyncio.create_task(store.claim("d", "fp"))
    await asyncio.sleep(0)
    assert not waiting.done()
    await store.complete("d", "fp", OK)
    assert await waiting == Claim("replay", OK)


async def test_a_duplicate_takes_over_a_released_claim() -> None:
    """If the running claim fails and releases, the waiting duplicate runs it instead."""
    store = InMemoryIdempotencyStore(wait_seconds=30)
    await store.claim("d", "fp")
    waiting = asyncio.create_task(store.claim("d", "fp"))
    await asyncio.sleep(0)
    await store.release("d", "fp")
    assert (await waiting).state == "new"


async def test_a_duplicate_gives_up_after_wait_seconds() -> None:
    """A claim that never finishes makes the duplicate answer ``in_progress``, not hang."""
    store = InMemoryIdempotencyStore(wait_seconds=0.01)
    await store.claim("d", "fp")
    assert (await store.claim("d", "fp")).state == "in_progress"


@pytest.mark.parametrize("kwargs", [{"max_entries": 0}, {"ttl_seconds": 0}, {"wait_seconds": -1}])
def test_bounds_must_be_sensible(kwargs) -> None:
    """A store without a real bound is refused when it is built."""
    with pytest.raises(ValueError, match="must be"):
        InMemoryIdempotencyStore(**kwargs)
