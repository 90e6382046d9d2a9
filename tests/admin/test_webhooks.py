"""GET and PATCH /api/v1/admin/webhooks (docs/webhooks.md §1, §7): partial updates, the secret shown
once, field-level 422s in one shape, nothing half-saved, body cap, save-time DNS check."""

from __future__ import annotations

from typing import Any

import pytest

from vizochok_dispatch import mask_secret

from .support import (
    PUBLIC_ADDRESS,
    SHOP_A,
    WEBHOOKS,
    Admin,
    bearer,
    shop_config,
)

OWN_SECRET = "tenant-own-secret-0123456789abcdef"


def error_fields(response: Any) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == "validation_error"
    return {entry["field"]: entry["message"] for entry in body["error"]["fields"]}


async def test_get_before_any_save_is_409_not_configured(admin: Admin) -> None:
    """GET: a tenant with no webhooks yet gets 409 not_configured in the error shape."""
    _, issued = await admin.tenant("shop-a")
    response = await admin.client.get(WEBHOOKS, headers=bearer(issued.key))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_configured"
    assert "fields" not in response.json()["error"]


async def test_first_patch_generates_the_secret_and_shows_it_once(admin: Admin) -> None:
    """PATCH: the first save generates a whsec_ secret, returned in full this once."""
    issued, saved = await admin.configured("shop-a")
    assert saved["secret"].startswith("whsec_") and len(saved["secret"]) >= 6 + 43
    assert saved["secret_masked"] == mask_secret(saved["secret"])
    assert saved["version"] == 1
    stored = await admin.store.get_config("shop-a")
    assert stored is not None and stored.secret == saved["secret"]

    again = await admin.client.get(WEBHOOKS, headers=bearer(issued.key))
    assert again.json()["secret"] is None
    assert again.json()["secret_masked"] == "whsec_…" + saved["secret"][-4:]
    later = await admin.client.patch(
        WEBHOOKS, headers=bearer(issued.key), json={"timeout_seconds": 3}
    )
    assert later.json()["secret"] is None
    assert later.json()["secret_masked"] == saved["secret_masked"]


async def test_get_shows_config_masked_secret_and_circuits(admin: Admin) -> None:
    """GET: URLs, timeout, masked secret, version and each webhook's circuit state."""
    issued, saved = await admin.configured("shop-a")
    body = (await admin.client.get(WEBHOOKS, headers=bearer(issued.key))).json()
    assert body == {
        **shop_config(SHOP_A),
        "tenant_id": "shop-a",
        "secret_masked": saved["secret_masked"],
        "secret": None,
        "version": 1,
        "updated_at": body["updated_at"],
        "circuits": {"products": "closed", "cart": "closed", "cart_get": "closed"},
        "pending_secret_masked": None,
        "pending_secret": None,
        "pending_since": None,
        "pending_promotes_at": None,
    }
    assert body["updated_at"] is not None


async def test_patch_changes_only_the_fields_sent(admin: Admin) -> None:
    """PATCH: fields not sent keep their values; the version moves by one."""
    issued, saved = await admin.configured("shop-a")
    response = await admin.client.patch(
        WEBHOOKS,
        headers=bearer(issued.key),
        json={"products_url": "https://shop-a.example/v2/products"},
    )
    body = response.json()
    assert response.status_code == 200
    assert body["products_url"] == "https://shop-a.example/v2/products"
    assert body["cart_url"] == saved["cart_url"]
    assert body["cart_get_url"] == saved["cart_get_url"]
    assert body["timeout_seconds"] == saved["timeout_seconds"]
    assert body["secret_masked"] == saved["secret_masked"]
    assert body["version"] == 2


async def test_explicit_null_clears_cart_get_url_and_omitting_keeps_it(admin: Admin) -> None:
    """PATCH: `cart_get_url: null` clears it; leaving it out keeps it."""
    issued, saved = await admin.configured("shop-a")
    kept = await admin.client.patch(
        WEBHOOKS, headers=bearer(issued.key), json={"timeout_seconds": 4}
    )
    assert kept.json()["cart_get_url"] == saved["cart_get_url"]
    cleared = await admin.client.patch(
        WEBHOOKS, headers=bearer(issued.key), json={"cart_get_url": None}
    )
    assert cleared.status_code == 200 and cleared.json()["cart_get_url"] is None
    stored = await admin.store.get_config("shop-a")
    assert stored is not None and stored.cart_get_url is None


async def test_an_own_secret_is_saved_and_shown_in_that_response(admin: Admin) -> None:
    """PATCH: a tenant's own secret (>= 24 characters) is stored and echoed once."""
    issued, _ = await admin.configured("shop-a")
    response = await admin.client.patch(
        WEBHOOKS, headers=bearer(issued.key), json={"secret": OWN_SECRET}
    )
    assert response.json()["secret"] == OWN_SECRET
    assert response.json()["secret_masked"] == "…" + OWN_SECRET[-4:]
    stored = await admin.store.get_config("shop-a")
    assert stored is not None and stored.secret == OWN_SECRET


async def test_a_patch_applies_to_the_dispatchers_next_call(admin: Admin) -> None:
    """PATCH: the save goes through dispatcher.store, so the next call uses it at once."""
    issued, _ = await admin.configured("shop-a")
    assert (await admin.dispatcher.store.get_config("shop-a")) is not None
    await admin.client.patch(
        WEBHOOKS,
        headers=bearer(issued.key),
        json={"products_url": "https://shop-a.example/moved"},
    )
    cached = await admin.dispatcher.store.get_config("shop-a")
    assert cached is not None and cached.products_url == "https://shop-a.example/moved"


LONG_URL = "https://shop-a.example/" + "a" * 2030

#: docs/webhooks.md §1, row by row: (body, field, message fragment).
INVALID = [
    ({"products_url": "http://shop-a.example/p"}, "products_url", "https://"),
    ({"products_url": "ftp://shop-a.example/p"}, "products_url", "https://"),
    ({"products_url": "/relative/path"}, "products_url", "https://"),
    ({"cart_url": "https://user:pw@shop-a.example/c"}, "cart_url", "user or password"),
    ({"cart_get_url": LONG_URL}, "cart_get_url", "2048"),
    ({"cart_url": "https://shop a.example/c"}, "cart_url", "whitespace"),
    ({"products_url": "https://127.0.0.1/p"}, "products_url", "non-public"),
    ({"products_url": "https://10.1.2.3/p"}, "products_url", "non-public"),
    ({"products_url": "https://localhost/p"}, "products_url", "localhost"),
    ({"timeout_seconds": 0.05}, "timeout_seconds", "between 0.1 and 30"),
    ({"timeout_seconds": 31}, "timeout_seconds", "between 0.1 and 30"),
    ({"timeout_seconds": "5"}, "timeout_seconds", "must be a number"),
    ({"timeout_seconds": True}, "timeout_seconds", "must be a number"),
    ({"timeout_seconds": None}, "timeout_seconds", "must not be null"),
    ({"products_url": None}, "products_url", "must not be null"),
    ({"cart_url": 42}, "cart_url", "must be a string"),
    ({"secret": "too-short-secret"}, "secret", "at least 24"),
    ({"secret": None}, "secret", "must not be null"),
    ({"secret": "x" * 300}, "secret", "at most 256"),
    ({"colour": "blue"}, "colour", "is not a known field"),
]


@pytest.mark.parametrize(("body", "field", "fragment"), INVALID)
async def test_invalid_fields_get_a_field_level_422_and_nothing_is_saved(
    admin: Admin, body: dict[str, object], field: str, fragment: str
) -> None:
    """Validation (webhooks.md §1): each broken rule is a 422 naming the field; nothing changes."""
    issued, _ = await admin.configured("shop-a")
    before = await admin.store.get_config("shop-a")
    response = await admin.client.patch(WEBHOOKS, headers=bearer(issued.key), json=body)
    assert response.status_code == 422, response.text
    fields = error_fields(response)
    assert field in fields and fragment in fields[field]
    assert await admin.store.get_config("shop-a") == before


async def test_every_broken_field_is_listed_and_the_valid_ones_are_not_saved(admin: Admin) -> None:
    """Validation: all three broken fields are listed; the valid one sent with them is not saved."""
    issued, _ = await admin.configured("shop-a")
    before = await admin.store.get_config("shop-a")
    response = await admin.client.patch(
        WEBHOOKS,
        headers=bearer(issued.key),
        json={
            "products_url": "http://shop-a.example/p",
            "cart_url": "https://shop-a.example/fine",
            "timeout_seconds": 99,
            "secret": "short",
        },
    )
    assert set(error_fields(response)) == {"products_url", "timeout_seconds", "secret"}
    assert await admin.store.get_config("shop-a") == before


async def test_first_save_needs_both_required_urls(admin: Admin) -> None:
    """Validation: a first save without products_url and cart_url names both; nothing stored."""
    _, issued = await admin.tenant("shop-a")
    response = await admin.client.patch(
        WEBHOOKS, headers=bearer(issued.key), json={"timeout_seconds": 3}
    )
    assert error_fields(response) == {
        "products_url": "is required",
        "cart_url": "is required",
    }
    assert await admin.store.get_config("shop-a") is None


@pytest.mark.parametrize(
    ("content", "content_type", "status", "field"),
    [
        (b"{not json", "application/json", 422, "body"),
        (b"[1, 2]", "application/json", 422, "body"),
        (b'"text"', "application/json", 422, "body"),
        (b'{"timeout_seconds": 3}', "text/plain", 415, None),
    ],
)
async def test_bodies_that_are_not_a_json_object_are_refused(
    admin: Admin, content: bytes, content_type: str, status: int, field: str | None
) -> None:
    """Validation: broken JSON, non-objects and non-JSON content types get the error shape."""
    issued, _ = await admin.configured("shop-a")
    response = await admin.client.patch(
        WEBHOOKS,
        headers={**bearer(issued.key), "Content-Type": content_type},
        content=content,
    )
    assert response.status_code == status
    if field is not None:
        assert field in error_fields(response)
    else:
        assert response.json()["error"]["code"] == "unsupported_media_type"


async def test_an_empty_patch_changes_nothing(admin: Admin) -> None:
    """PATCH: `{}` returns the config as it is, without a new version."""
    issued, saved = await admin.configured("shop-a")
    response = await admin.client.patch(WEBHOOKS, headers=bearer(issued.key), json={})
    assert response.status_code == 200
    assert response.json()["version"] == saved["version"]
    assert response.json()["secret"] is None


async def test_a_body_over_the_cap_is_413_and_not_read(admin: Admin) -> None:
    """Body cap: more than 16 KiB is refused with 413 in the error shape; nothing saved."""
    issued, _ = await admin.configured("shop-a")
    before = await admin.store.get_config("shop-a")
    padded = {"products_url": "https://shop-a.example/" + "p" * 17_000}
    response = await admin.client.patch(WEBHOOKS, headers=bearer(issued.key), json=padded)
    assert response.status_code == 413
    assert response.json() == {
        "error": {"code": "body_too_large", "message": "the request body is over 16384 bytes"}
    }
    assert await admin.store.get_config("shop-a") == before


async def test_a_streamed_body_over_the_cap_is_413(admin: Admin) -> None:
    """Body cap: a chunked body with no Content-Length is cut off at the cap too."""
    issued, _ = await admin.configured("shop-a")

    async def chunks():
        for _ in range(40):
            yield b" " * 1024

    response = await admin.client.patch(
        WEBHOOKS,
        headers={**bearer(issued.key), "Content-Type": "application/json"},
        content=chunks(),
    )
    assert response.status_code == 413


async def test_a_host_resolving_to_a_private_address_is_refused_at_save(admin: Admin) -> None:
    """DNS check: a name that resolves to 10.x is a 422 on its field, without the address."""
    issued, _ = await admin.configured("shop-a")
    admin.resolver.answers["inside.shop-a.example"] = [PUBLIC_ADDRESS, "10.0.0.7"]
    response = await admin.client.patch(
        WEBHOOKS,
        headers=bearer(issued.key),
        json={"cart_url": "https://inside.shop-a.example/cart"},
    )
    fields = error_fields(response)
    assert fields == {"cart_url": "resolves to a non-public address"}
    assert "10.0.0.7" not in response.text
    stored = await admin.store.get_config("shop-a")
    assert stored is not None and stored.cart_url == shop_config(SHOP_A)["cart_url"]


@pytest.mark.parametrize("answer", [["::ffff:169.254.169.254"], ["fd00::1"], ["127.0.0.1"]])
async def test_every_blocked_address_form_is_refused_at_save(
    admin: Admin, answer: list[str]
) -> None:
    """DNS check: mapped IPv6, ULA and loopback answers are all refused (the SSRF policy)."""
    issued, _ = await admin.configured("shop-a")
    admin.resolver.answers["rebind.example"] = answer
    response = await admin.client.patch(
        WEBHOOKS, headers=bearer(issued.key), json={"products_url": "https://rebind.example/p"}
    )
    assert error_fields(response) == {"products_url": "resolves to a non-public address"}


async def test_a_name_that_does_not_resolve_is_accepted(admin: Admin) -> None:
    """DNS check: an unresolvable name is saved (the connect-time guard still applies)."""
    issued, _ = await admin.configured("shop-a")
    admin.resolver.answers["not-yet.example"] = []
    response = await admin.client.patch(
        WEBHOOKS, headers=bearer(issued.key), json={"products_url": "https://not-yet.example/p"}
    )
    assert response.status_code == 200
    assert "not-yet.example" in admin.resolver.asked


async def test_only_new_urls_are_resolved(admin: Admin) -> None:
    """DNS check: a PATCH resolves the hosts it sends, not the ones already stored."""
    issued, _ = await admin.configured("shop-a")
    admin.resolver.asked.clear()
    await admin.client.patch(WEBHOOKS, headers=bearer(issued.key), json={"timeout_seconds": 7})
    assert admin.resolver.asked == []


async def test_unknown_paths_and_methods_use_the_error_shape(admin: Admin) -> None:
    """Errors: 404 and 405 come back in the same JSON shape."""
    missing = await admin.client.get("/api/v1/admin/nothing-here")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": "not found"}}
    wrong = await admin.client.delete(WEBHOOKS)
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


async def test_openapi_and_docs_are_served(admin: Admin) -> None:
    """Docs: /openapi.json lists the webhook and event operations with bearer auth, and the
    two health checks without; /docs is served (test_openapi holds the exact list)."""
    spec = (await admin.client.get("/openapi.json")).json()
    operations = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    assert operations >= {
        ("GET", WEBHOOKS),
        ("PATCH", WEBHOOKS),
        ("POST", "/api/v1/admin/webhooks/secret/rotate"),
        ("POST", "/api/v1/admin/webhooks/test"),
        ("GET", "/api/v1/admin/webhooks/calls"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/api/v1/admin/event-endpoints"),
        ("POST", "/api/v1/admin/event-endpoints"),
        ("GET", "/api/v1/admin/event-endpoints/{endpoint_id}"),
        ("PATCH", "/api/v1/admin/event-endpoints/{endpoint_id}"),
        ("DELETE", "/api/v1/admin/event-endpoints/{endpoint_id}"),
        ("GET", "/api/v1/admin/event-types"),
        ("GET", "/api/v1/admin/deliveries"),
        ("GET", "/api/v1/admin/deliveries/{delivery_id}"),
        ("POST", "/api/v1/admin/event-endpoints/{endpoint_id}/test"),
        ("POST", "/api/v1/admin/deliveries/{delivery_id}/retry"),
        ("POST", "/api/v1/admin/event-endpoints/{endpoint_id}/recover"),
    }
    assert "security" not in spec["paths"]["/healthz"]["get"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert {"WebhookConfigPublic", "WebhookConfigUpdate", "ErrorResponse"} <= set(
        spec["components"]["schemas"]
    )
    assert (await admin.client.get("/docs")).status_code == 200
