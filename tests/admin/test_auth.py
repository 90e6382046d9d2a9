"""API keys (webhooks.md §7): format, hashed storage, one 401 for every failure, revocation, and
one tenant's key never reaching another tenant's webhooks."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest
from sqlalchemy import event, text

from .support import (
    ROTATE,
    SHOP_A,
    SHOP_B,
    TEST_FIRE,
    WEBHOOKS,
    Admin,
    absent,
    bearer,
    shop_config,
)

OK_PRODUCTS = {"products": [{"sku": "milk-001", "price": 10, "in_stock": True}]}


async def test_issued_keys_are_sk_plus_32_random_bytes(admin: Admin) -> None:
    """Keys: `sk_` + at least 32 random bytes, a public key_ id, and no two alike."""
    issued = [(await admin.tenant(f"t{i}"))[1] for i in range(3)]
    for key in issued:
        assert re.fullmatch(r"sk_[A-Za-z0-9_-]{43}", key.key)
        body = key.key.removeprefix("sk_")
        assert len(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) >= 32
        assert key.key_id.startswith("key_")
    assert len({key.key for key in issued}) == 3


async def test_keys_are_stored_only_as_their_sha256(admin: Admin) -> None:
    """Keys: the database holds the SHA-256 of a key, never the key or a part of it."""
    _, issued = await admin.tenant("shop-a")
    async with admin.store.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM api_keys"))).all()
        tenants = (await conn.execute(text("SELECT * FROM tenants"))).all()
    assert len(rows) == 1
    assert rows[0].key_hash == hashlib.sha256(issued.key.encode()).hexdigest()
    secret_part = issued.key.removeprefix("sk_")
    assert absent(secret_part[:12], rows, tenants), "part of the key is stored"
    assert absent(secret_part[-12:], rows, tenants), "part of the key is stored"


async def test_a_valid_key_reads_its_own_tenant(admin: Admin) -> None:
    """Auth: a valid key is accepted and scoped to its own tenant."""
    issued, _ = await admin.configured("shop-a")
    response = await admin.client.get(WEBHOOKS, headers=bearer(issued.key))
    assert response.status_code == 200
    assert response.json()["tenant_id"] == "shop-a"


def _failures(revoked: str, unknown: str) -> dict[str, dict[str, str]]:
    return {
        "missing": {},
        "empty bearer": {"Authorization": "Bearer "},
        "wrong scheme": {"Authorization": f"Basic {unknown}"},
        "malformed": {"Authorization": "Bearer not-a-key"},
        "too long": {"Authorization": "Bearer sk_" + "A" * 5000},
        "unknown": bearer(unknown),
        "revoked": bearer(revoked),
    }


async def test_every_auth_failure_gets_the_same_401(admin: Admin) -> None:
    """Auth: missing, malformed, unknown and revoked keys get byte-identical 401s."""
    _, issued = await admin.tenant("shop-a")
    await admin.tenants.revoke_key(issued.key_id)
    unknown = "sk_" + "B" * 43
    answers = set()
    for name, headers in _failures(issued.key, unknown).items():
        for method, path in (("GET", WEBHOOKS), ("PATCH", WEBHOOKS), ("POST", TEST_FIRE)):
            response = await admin.client.request(
                method, path, headers=headers, json=shop_config(SHOP_A)
            )
            assert response.status_code == 401, (name, method)
            answers.add(
                (response.content, response.headers.get("www-authenticate"), len(response.headers))
            )
    assert answers == {
        (
            b'{"error":{"code":"unauthorized","message":'
            b'"a valid API key is required: Authorization: Bearer sk_..."}}',
            "Bearer",
            3,
        )
    }


async def test_every_auth_failure_does_the_same_database_work(admin: Admin) -> None:
    """Auth: each failure (and a success) runs the same one query, so timing tells nothing."""
    tenant_key = (await admin.tenant("shop-a"))[1]
    revoked = (await admin.tenant("shop-r"))[1]
    await admin.tenants.revoke_key(revoked.key_id)
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(admin.store.engine.sync_engine, "before_cursor_execute", record)
    try:
        shapes = []
        for token in (None, "", "garbage", "sk_" + "C" * 43, revoked.key, tenant_key.key):
            statements.clear()
            tenant = await admin.tenants.authenticate(token)
            shapes.append((tuple(statements), tenant is not None))
    finally:
        event.remove(admin.store.engine.sync_engine, "before_cursor_execute", record)
    assert {queries for queries, _ in shapes} == {shapes[0][0]}
    assert len(shapes[0][0]) == 1
    assert [found for _, found in shapes] == [False] * 5 + [True]


async def test_a_revoked_key_stops_working_at_once(admin: Admin) -> None:
    """Revocation: the next request with a revoked key is a 401; the tenant's other key works."""
    issued, _ = await admin.configured("shop-a")
    second = await admin.tenants.create_key("shop-a")
    assert (await admin.client.get(WEBHOOKS, headers=bearer(issued.key))).status_code == 200
    info = await admin.tenants.revoke_key(issued.key_id)
    assert not info.active
    assert (await admin.client.get(WEBHOOKS, headers=bearer(issued.key))).status_code == 401
    assert (await admin.client.get(WEBHOOKS, headers=bearer(second.key))).status_code == 200
    keys = await admin.tenants.list_keys("shop-a")
    assert {k.key_id: k.active for k in keys} == {issued.key_id: False, second.key_id: True}


async def test_a_key_is_matched_whole_not_by_prefix(admin: Admin) -> None:
    """Auth: a key with a character changed or cut short is refused (hash of the whole key)."""
    issued, _ = await admin.configured("shop-a")
    flipped = issued.key[:-1] + ("A" if issued.key[-1] != "A" else "B")
    for token in (issued.key[:-1], flipped, issued.key + "x", issued.key.upper()):
        assert (await admin.client.get(WEBHOOKS, headers=bearer(token))).status_code == 401


async def test_one_tenants_key_never_reads_or_changes_another(admin: Admin, router: object) -> None:
    """Isolation: A's key sees and changes only A; B's config and secret stay untouched."""
    key_a, _ = await admin.configured("shop-a", SHOP_A)
    await admin.configured("shop-b", SHOP_B)
    before_b = await admin.store.get_config("shop-b")

    seen = (await admin.client.get(WEBHOOKS, headers=bearer(key_a.key))).json()
    assert seen["tenant_id"] == "shop-a"
    assert absent(SHOP_B, seen)

    changed = await admin.client.patch(
        WEBHOOKS, headers=bearer(key_a.key), json={"timeout_seconds": 9}
    )
    assert changed.json()["tenant_id"] == "shop-a"
    rotated = await admin.client.post(ROTATE, headers=bearer(key_a.key))
    assert rotated.json()["tenant_id"] == "shop-a"
    assert await admin.store.get_config("shop-b") == before_b


@pytest.mark.parametrize("field", ["tenant_id", "tenant"])
async def test_a_body_cannot_name_another_tenant(admin: Admin, field: str) -> None:
    """Isolation: a tenant id in the body is an unknown field (422), never a target."""
    key_a, _ = await admin.configured("shop-a", SHOP_A)
    await admin.configured("shop-b", SHOP_B)
    before_b = await admin.store.get_config("shop-b")
    response = await admin.client.patch(
        WEBHOOKS, headers=bearer(key_a.key), json={field: "shop-b", "timeout_seconds": 9}
    )
    assert response.status_code == 422
    fields = response.json()["error"]["fields"]
    assert fields == [{"field": field, "message": "is not a known field"}]
    assert await admin.store.get_config("shop-b") == before_b


async def test_test_fire_with_a_key_calls_only_its_own_tenant(admin: Admin, router) -> None:
    """Isolation: a test-fire with A's key calls A's URL, never B's."""
    key_a, _ = await admin.configured("shop-a", SHOP_A)
    await admin.configured("shop-b", SHOP_B)
    route_a = router.post(f"{SHOP_A}/vizochok/products").mock(
        return_value=httpx.Response(200, json=OK_PRODUCTS)
    )
    route_b = router.post(f"{SHOP_B}/vizochok/products").mock(
        return_value=httpx.Response(200, json=OK_PRODUCTS)
    )
    response = await admin.client.post(TEST_FIRE, headers=bearer(key_a.key))
    assert response.status_code == 200
    assert (route_a.call_count, route_b.call_count) == (1, 0)
