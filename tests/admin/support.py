"""Shared values and helpers of the admin API tests."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from tests.support.fakes import FakeTime
from vizochok_dispatch import (
    Dispatcher,
    DispatchSettings,
    IssuedKey,
    SqlConfigStore,
    Tenant,
    TenantDirectory,
)

#: Fixed test keys (32 bytes each): fixtures, not credentials.
KEY_1 = "k1:" + base64.b64encode(bytes(range(32))).decode()
KEY_2 = "k2:" + base64.b64encode(bytes(range(32, 64))).decode()
LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"
PUBLIC_ADDRESS = "93.184.216.34"

WEBHOOKS = "/api/v1/admin/webhooks"
ROTATE = "/api/v1/admin/webhooks/secret/rotate"
ROLL = "/api/v1/admin/webhooks/secret/roll"
PROMOTE = "/api/v1/admin/webhooks/secret/promote"
TEST_FIRE = "/api/v1/admin/webhooks/test"
CALLS = "/api/v1/admin/webhooks/calls"

SHOP_A = "https://shop-a.example"
SHOP_B = "https://shop-b.example"


def shop_config(base: str, *, cart_get: bool = True) -> dict[str, object]:
    """A complete first save for a shop at ``base``."""
    config: dict[str, object] = {
        "products_url": f"{base}/vizochok/products",
        "cart_url": f"{base}/vizochok/cart",
        "timeout_seconds": 2.0,
    }
    if cart_get:
        config["cart_get_url"] = f"{base}/vizochok/cart/items"
    return config


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def absent(needle: str, *haystacks: object) -> bool:
    """Whether ``needle`` is nowhere in ``haystacks`` (asserted as a bool: never printed)."""
    return all(needle not in str(haystack) for haystack in haystacks)


@dataclass
class FakeResolver:
    """DNS for the save-time check: every name is public unless listed otherwise."""

    answers: dict[str, list[str]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        answer = self.answers.get(host, [PUBLIC_ADDRESS])
        if not answer:
            raise OSError("no such host")
        return answer


@dataclass
class Admin:
    """The running app and what a test needs around it."""

    app: FastAPI
    client: httpx.AsyncClient
    dispatcher: Dispatcher
    tenants: TenantDirectory
    store: SqlConfigStore
    time: FakeTime
    resolver: FakeResolver

    async def tenant(self, tenant_id: str) -> tuple[Tenant, IssuedKey]:
        return await self.tenants.create_tenant(f"Shop {tenant_id}", tenant_id=tenant_id)

    async def configured(
        self, tenant_id: str, base: str = SHOP_A, **overrides: object
    ) -> tuple[IssuedKey, dict[str, Any]]:
        """A tenant whose webhooks are saved through the API; returns its key and the body."""
        _, issued = await self.tenant(tenant_id)
        response = await self.client.patch(
            WEBHOOKS, headers=bearer(issued.key), json={**shop_config(base), **overrides}
        )
        assert response.status_code == 200, response.text
        return issued, response.json()


def admin_settings_for(database_url: str, **overrides: object) -> DispatchSettings:
    options: Mapping[str, object] = {
        "database_url": database_url,
        "auto_migrate": True,
        "secret_keys": SecretStr(KEY_1),
        "config_cache_seconds": 0.5,
        **overrides,
    }
    return DispatchSettings(**options)  # type: ignore[arg-type]
