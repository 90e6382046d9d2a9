"""POST /api/v1/admin/webhooks/secret/rotate (webhooks.md §7): a new secret, shown once, used by
the very next call."""

from __future__ import annotations

import httpx
import respx

from vizochok_dispatch.receiver import verify_request

from .support import ROTATE, SHOP_A, WEBHOOKS, Admin, bearer

OWN_SECRET = "rotated-by-the-tenant-0123456789"
OK_PRODUCTS = {"products": [{"sku": "milk-001", "price": 10, "in_stock": True}]}


async def test_rotate_generates_a_new_secret_returned_once(admin: Admin) -> None:
    """Rotate: a fresh whsec_ secret, in full in this response, masked afterwards."""
    issued, saved = await admin.configured("shop-a")
    response = await admin.client.post(ROTATE, headers=bearer(issued.key))
    assert response.status_code == 200
    rotated = response.json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != saved["secret"]
    assert rotated["version"] == saved["version"] + 1
    shown = (await admin.client.get(WEBHOOKS, headers=bearer(issued.key))).json()
    assert shown["secret"] is None
    assert shown["secret_masked"] == rotated["secret_masked"] == "whsec_…" + rotated["secret"][-4:]


async def test_rotate_to_the_tenants_own_secret(admin: Admin) -> None:
    """Rotate: a body with the tenant's own secret stores exactly that secret."""
    issued, _ = await admin.configured("shop-a")
    response = await admin.client.post(
        ROTATE, headers=bearer(issued.key), json={"secret": OWN_SECRET}
    )
    assert response.json()["secret"] == OWN_SECRET
    stored = await admin.store.get_config("shop-a")
    assert stored is not None and stored.secret == OWN_SECRET


async def test_an_empty_object_or_null_secret_generates_one(admin: Admin) -> None:
    """Rotate: `{}` and `{"secret": null}` both generate a secret."""
    issued, _ = await admin.configured("shop-a")
    seen = set()
    for body in ({}, {"secret": None}):
        response = await admin.client.post(ROTATE, headers=bearer(issued.key), json=body)
        assert response.status_code == 200
        seen.add(response.json()["secret"])
    assert len(seen) == 2 and all(s.startswith("whsec_") for s in seen)


async def test_a_too_short_own_secret_is_refused_and_the_old_one_kept(admin: Admin) -> None:
    """Rotate: an own secret under 24 characters is a field-level 422; nothing changes."""
    issued, _ = await admin.configured("shop-a")
    before = await admin.store.get_config("shop-a")
    response = await admin.client.post(ROTATE, headers=bearer(issued.key), json={"secret": "short"})
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == [
        {"field": "secret", "message": "must be at least 24 characters"}
    ]
    assert await admin.store.get_config("shop-a") == before


async def test_unknown_fields_are_refused(admin: Admin) -> None:
    """Rotate: fields other than `secret` are refused."""
    issued, _ = await admin.configured("shop-a")
    response = await admin.client.post(
        ROTATE, headers=bearer(issued.key), json={"secret": OWN_SECRET, "expires": 3}
    )
    assert response.status_code == 422


async def test_rotate_before_any_config_is_409(admin: Admin) -> None:
    """Rotate: there is nothing to rotate before the first PATCH (409 not_configured)."""
    _, issued = await admin.tenant("shop-a")
    response = await admin.client.post(ROTATE, headers=bearer(issued.key))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_configured"
    assert await admin.store.get_config("shop-a") is None


async def test_the_next_call_is_signed_with_the_new_secret(
    admin: Admin, router: respx.Router
) -> None:
    """Rotate: the dispatcher's very next request verifies with the new secret, not the old."""
    issued, saved = await admin.configured("shop-a")
    signed_with: list[str] = []
    rotated_secret: list[str] = []

    def tenant(request: httpx.Request) -> httpx.Response:
        for name, secret in (("old", saved["secret"]), ("new", rotated_secret[0])):
            try:
                verify_request(request.headers, request.content, secret, now=admin.time.now)
            except Exception:  # noqa: S112 - a mismatch means: not this secret
                continue
            signed_with.append(name)
        return httpx.Response(200, json=OK_PRODUCTS)

    router.post(f"{SHOP_A}/vizochok/products").mock(side_effect=tenant)
    response = await admin.client.post(ROTATE, headers=bearer(issued.key))
    rotated_secret.append(response.json()["secret"])
    result = await admin.dispatcher.check_products("shop-a", skus=["milk-001"], store_id="s1")
    assert result.ok
    assert signed_with == ["new"]
