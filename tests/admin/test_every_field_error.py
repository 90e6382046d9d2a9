"""Validation lists every broken field in one answer (issue 9, section 3): a wrong JSON type or an
unknown field does not hide the contract's rules on the other fields."""

from __future__ import annotations

from typing import Any

from .support import ROTATE, WEBHOOKS, Admin, bearer


def listed(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    entries = response.json()["error"]["fields"]
    names = [entry["field"] for entry in entries]
    assert len(names) == len(set(names)), f"a field is listed twice: {names}"
    return {entry["field"]: entry["message"] for entry in entries}


async def test_the_readmes_example_lists_both_fields(admin: Admin) -> None:
    """One answer: an out-of-range timeout and an unknown field are both listed."""
    issued, _ = await admin.configured("shop-a")
    before = await admin.store.get_config("shop-a")
    response = await admin.client.patch(
        WEBHOOKS, headers=bearer(issued.key), json={"timeout_seconds": 60, "colour": "red"}
    )
    assert listed(response) == {
        "timeout_seconds": "must be between 0.1 and 30.0 seconds",
        "colour": "is not a known field",
    }
    assert await admin.store.get_config("shop-a") == before


async def test_type_errors_nulls_rules_and_dns_come_in_one_answer(admin: Admin) -> None:
    """One answer: a wrong type, a refused null, a broken rule and a DNS refusal together."""
    issued, _ = await admin.configured("shop-a")
    admin.resolver.answers["inside.shop-a.example"] = ["10.0.0.7"]
    before = await admin.store.get_config("shop-a")
    response = await admin.client.patch(
        WEBHOOKS,
        headers=bearer(issued.key),
        json={
            "timeout_seconds": "5",
            "cart_url": None,
            "products_url": "https://shop..example/p",
            "cart_get_url": "https://inside.shop-a.example/items",
            "secret": "short",
            "colour": "red",
        },
    )
    fields = listed(response)
    assert set(fields) == {
        "timeout_seconds",
        "cart_url",
        "products_url",
        "cart_get_url",
        "secret",
        "colour",
    }
    assert fields["timeout_seconds"] == "must be a number"
    assert fields["cart_url"] == "must not be null"
    assert "empty label" in fields["products_url"]
    assert fields["cart_get_url"] == "resolves to a non-public address"
    assert "at least 24" in fields["secret"]
    assert await admin.store.get_config("shop-a") == before


async def test_a_first_save_names_the_missing_urls_beside_an_unknown_field(admin: Admin) -> None:
    """One answer: on a first save, required URLs are named even when another field is unknown."""
    _, issued = await admin.tenant("shop-a")
    response = await admin.client.patch(
        WEBHOOKS, headers=bearer(issued.key), json={"colour": "red", "cart_url": 5}
    )
    assert listed(response) == {
        "colour": "is not a known field",
        "cart_url": "must be a string",
        "products_url": "is required",
    }
    assert await admin.store.get_config("shop-a") is None


async def test_rotate_lists_a_short_secret_beside_an_unknown_field(admin: Admin) -> None:
    """One answer: rotation names the too-short secret and the unknown field together."""
    issued, _ = await admin.configured("shop-a")
    before = await admin.store.get_config("shop-a")
    response = await admin.client.post(
        ROTATE, headers=bearer(issued.key), json={"secret": "too-short", "colour": 1}
    )
    fields = listed(response)
    assert set(fields) == {"secret", "colour"}
    assert "at least 24" in fields["secret"]
    assert await admin.store.get_config("shop-a") == before


async def test_a_blank_secret_is_refused_naming_the_field(admin: Admin) -> None:
    """PATCH and rotate: a secret of 24 spaces is a 422 naming secret; nothing changes."""
    issued, _ = await admin.configured("shop-a")
    before = await admin.store.get_config("shop-a")
    patched = await admin.client.patch(
        WEBHOOKS, headers=bearer(issued.key), json={"secret": " " * 24}
    )
    rotated = await admin.client.post(ROTATE, headers=bearer(issued.key), json={"secret": " " * 24})
    for response in (patched, rotated):
        assert listed(response) == {"secret": "must not contain spaces or other whitespace"}
    assert await admin.store.get_config("shop-a") == before
