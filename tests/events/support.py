"""Dispatchers for the event tests: on SQLite or PostgreSQL, loopback allowed, time injectable.

``make`` builds a dispatcher on the test's database with whatever settings a test names;
``events_of`` reads a tenant's deliveries; ``example`` is a catalog type's valid ``data``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from tests.support.fakes import FakeTime
from vizochok_dispatch import Dispatcher, DispatchSettings, SecretBox
from vizochok_dispatch.events._catalog import EVENT_TYPES

LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"
TENANT = "tenant-1"

MakeDispatcher = Callable[..., Awaitable[Dispatcher]]


def example(event_type: str = "order.created") -> dict[str, Any]:
    """A ``data`` that validates for ``event_type`` (the catalog's own example)."""
    return dict(EVENT_TYPES[event_type].example)


#: The key PostgreSQL tests encrypt with (one for the session: every dispatcher reads all).
KEYS = SecretBox.generate("test")[1]


def settings_for(database_url: str, **overrides: Any) -> DispatchSettings:
    """Settings on ``database_url`` that reach loopback, migrate, and (PostgreSQL) encrypt."""
    base: dict[str, Any] = {
        "database_url": database_url,
        "allow_http": True,
        "allowed_networks": LOOPBACK_NETWORKS,
        "auto_migrate": True,
        "event_poll_seconds": 0.05,
    }
    if not database_url.startswith("sqlite"):
        base["secret_keys"] = KEYS
    base.update(overrides)
    return DispatchSettings(**base)


@pytest.fixture
async def make(database_url: str) -> AsyncIterator[MakeDispatcher]:
    """``await make(**settings, clock=..., sleep=...)``: an entered dispatcher, closed after."""
    async with AsyncExitStack() as stack:

        async def build(*, url: str | None = None, **options: Any) -> Dispatcher:
            keywords = {
                k: options.pop(k)
                for k in ("clock", "sleep", "resolver", "transport", "on_event_endpoint_disabled")
                if k in options
            }
            dispatcher = Dispatcher.from_settings(
                settings_for(url or database_url, **options), **keywords
            )
            return await stack.enter_async_context(dispatcher)

        yield build


async def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait (bounded) until ``condition()`` holds; checks every 10 ms."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - polls state other tasks change, bounded
            await asyncio.sleep(0.01)


async def settled(dispatcher: Dispatcher, statuses: set[str], seconds: float = 10.0) -> None:
    """Wait (bounded) until every delivery of ``TENANT`` has one of ``statuses``."""
    async with asyncio.timeout(seconds):
        while {dl.status for dl in await dispatcher.events.deliveries(TENANT)} != statuses:  # noqa: ASYNC110 - polls the database, bounded
            await asyncio.sleep(0.02)


__all__ = [
    "KEYS",
    "TENANT",
    "FakeTime",
    "MakeDispatcher",
    "example",
    "make",
    "settings_for",
    "settled",
    "wait_for",
]
