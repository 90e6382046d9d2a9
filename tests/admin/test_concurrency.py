"""Concurrent PATCHes of one tenant lose no field: 20 at once through the app, and two app
instances (two processes' worth) at once, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import event

from vizochok_dispatch import Dispatcher, DispatchSettings
from vizochok_dispatch.admin import create_admin_app

from .support import WEBHOOKS, Admin, FakeResolver, bearer

FIELDS = ("products_url", "cart_url", "cart_get_url", "timeout_seconds")


def _plans(rounds: int, tag: str) -> list[dict[str, Any]]:
    plans: list[dict[str, Any]] = []
    for i in range(rounds):
        plans += [
            {"products_url": f"https://shop-a.example/{tag}/products/{i}"},
            {"cart_url": f"https://shop-a.example/{tag}/cart/{i}"},
            {"cart_get_url": f"https://shop-a.example/{tag}/items/{i}"},
            {"timeout_seconds": 1.0 + i / 10 + (0.05 if tag == "b" else 0)},
        ]
    return plans


def _expected(applied: list[tuple[dict[str, Any], int]]) -> dict[str, Any]:
    """Per field, the value of the PATCH that was applied last (the highest version)."""
    latest: dict[str, tuple[int, Any]] = {}
    for plan, version in applied:
        for name, value in plan.items():
            if name not in latest or version > latest[name][0]:
                latest[name] = (version, value)
    return {name: value for name, (_, value) in latest.items()}


async def test_twenty_concurrent_patches_lose_no_field(admin: Admin) -> None:
    """Concurrency: 20 PATCHes of 4 fields at once, each applied once, no field's write lost."""
    issued, saved = await admin.configured("shop-a")
    plans = _plans(5, "a")
    in_use, most = 0, 0

    def checkout(*_args: object) -> None:
        nonlocal in_use, most
        in_use += 1
        most = max(most, in_use)

    def checkin(*_args: object) -> None:
        nonlocal in_use
        in_use -= 1

    pool = admin.store.engine.sync_engine.pool
    event.listen(pool, "checkout", checkout)
    event.listen(pool, "checkin", checkin)
    try:
        responses = await asyncio.gather(
            *(admin.client.patch(WEBHOOKS, headers=bearer(issued.key), json=plan) for plan in plans)
        )
    finally:
        event.remove(pool, "checkout", checkout)
        event.remove(pool, "checkin", checkin)
    assert most >= 2, "the PATCHes did not overlap in the database"
    assert [r.status_code for r in responses] == [200] * 20
    versions = [r.json()["version"] for r in responses]
    assert sorted(versions) == list(range(saved["version"] + 1, saved["version"] + 21))

    final = await admin.store.get_config("shop-a")
    assert final is not None and final.version == saved["version"] + 20
    expected = _expected(list(zip(plans, versions, strict=True)))
    assert {name: getattr(final, name) for name in FIELDS} == expected
    assert final.secret == saved["secret"], "no PATCH touched the secret"
    # the dispatcher's cache and the API agree with the database
    assert await admin.dispatcher.store.get_config("shop-a") == final
    shown = (await admin.client.get(WEBHOOKS, headers=bearer(issued.key))).json()
    assert {name: shown[name] for name in FIELDS} == expected


async def test_two_app_instances_patching_at_once_lose_no_field(
    admin: Admin, admin_settings: DispatchSettings, resolver: FakeResolver
) -> None:
    """Concurrency: two admin apps (own engines, like two replicas) PATCH one tenant at once."""
    issued, saved = await admin.configured("shop-a")
    other_dispatcher = Dispatcher.from_settings(admin_settings)
    other = create_admin_app(admin_settings, dispatcher=other_dispatcher, resolve=resolver)
    plans_a, plans_b = _plans(3, "a"), _plans(3, "b")
    async with (
        other_dispatcher,
        other.router.lifespan_context(other),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=other), base_url="http://replica-2"
        ) as client_b,
    ):
        calls = [
            admin.client.patch(WEBHOOKS, headers=bearer(issued.key), json=plan) for plan in plans_a
        ] + [client_b.patch(WEBHOOKS, headers=bearer(issued.key), json=plan) for plan in plans_b]
        responses = await asyncio.gather(*calls)
    assert [r.status_code for r in responses] == [200] * 24
    versions = [r.json()["version"] for r in responses]
    assert sorted(versions) == list(range(saved["version"] + 1, saved["version"] + 25))
    final = await admin.store.get_config("shop-a")
    assert final is not None
    expected = _expected(list(zip(plans_a + plans_b, versions, strict=True)))
    assert {name: getattr(final, name) for name in FIELDS} == expected
