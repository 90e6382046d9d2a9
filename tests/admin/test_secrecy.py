"""Secrets and API keys never appear in logs, error bodies or reprs; unexpected errors are
one generic shape."""

from __future__ import annotations

import httpx
import pytest
import respx
from structlog.testing import capture_logs

from vizochok_dispatch import StoreError

from .support import ROTATE, SHOP_A, TEST_FIRE, WEBHOOKS, Admin, absent, bearer

OWN_SECRET = "tenant-own-secret-0123456789abcdef"


async def test_a_whole_session_logs_no_secret_and_no_key(
    admin: Admin, router: respx.Router
) -> None:
    """Secrecy: create, PATCH, rotate, test-fire, failed auth: no key or secret in any log."""
    router.post(f"{SHOP_A}/vizochok/products").mock(
        return_value=httpx.Response(200, json={"products": []})
    )
    shown: list[str] = []
    with capture_logs() as logs:
        issued, saved = await admin.configured("shop-a")
        shown += [issued.key, saved["secret"]]
        own = await admin.client.patch(
            WEBHOOKS, headers=bearer(issued.key), json={"secret": OWN_SECRET}
        )
        rotated = await admin.client.post(ROTATE, headers=bearer(issued.key))
        shown += [OWN_SECRET, rotated.json()["secret"]]
        await admin.client.post(TEST_FIRE, headers=bearer(issued.key))
        await admin.client.get(WEBHOOKS, headers=bearer(issued.key[:-1] + "x"))
        await admin.client.patch(
            WEBHOOKS, headers=bearer(issued.key), json={"secret": "x" * 10 + "short"}
        )
    assert own.status_code == rotated.status_code == 200
    events = {event["event"] for event in logs}
    assert {"admin.webhooks_updated", "admin.secret_rotated", "admin.test_fire"} <= events
    assert "admin.auth_failed" in events
    leaked = [value for value in shown if not absent(value, logs)]
    assert not leaked, f"{len(leaked)} secret value(s) reached the logs"
    assert absent(issued.key.removeprefix("sk_")[:16], logs)


@pytest.mark.parametrize(
    "body",
    [
        {"secret": "short-secret-value"},
        {"secret": "\x00control-characters-secret-0000"},
        {"secret": "y" * 300},
        {"secret": 123456789},
    ],
)
async def test_a_refused_secret_is_not_echoed_in_the_error(
    admin: Admin, body: dict[str, object]
) -> None:
    """Secrecy: a 422 for a bad secret names the field and rule, never the value sent."""
    issued, _ = await admin.configured("shop-a")
    with capture_logs() as logs:
        response = await admin.client.patch(WEBHOOKS, headers=bearer(issued.key), json=body)
    assert response.status_code == 422
    sent = str(body["secret"])
    assert absent(sent[:12], response.text, logs)
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["secret"]


async def test_reprs_hide_keys_and_secrets(admin: Admin) -> None:
    """Secrecy: an issued key, a stored config and the app context show neither key nor secret."""
    tenant, issued = await admin.tenant("shop-a")
    await admin.client.patch(
        WEBHOOKS,
        headers=bearer(issued.key),
        json={"products_url": f"{SHOP_A}/p", "cart_url": f"{SHOP_A}/c"},
    )
    config = await admin.store.get_config("shop-a")
    assert config is not None
    texts = [repr(issued), str(issued), repr(config), repr(tenant), repr(admin.app.state.admin)]
    assert absent(issued.key, *texts) and absent(config.secret, *texts)


async def test_an_unexpected_error_is_a_generic_500(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Errors: an unexpected exception is a generic 500; its text is neither sent nor logged."""
    issued, saved = await admin.configured("shop-a")

    def boom(tenant_id: str, config: object = None) -> dict[str, str]:
        raise RuntimeError(f"boom {saved['secret']}")

    monkeypatch.setattr(admin.dispatcher, "circuit_states", boom)
    with capture_logs() as logs:
        response = await admin.client.get(WEBHOOKS, headers=bearer(issued.key))
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "something went wrong on our side"}
    }
    assert [e["error_type"] for e in logs if e["event"] == "admin.internal_error"] == [
        "RuntimeError"
    ]
    assert absent(saved["secret"], response.text, logs)


async def test_a_store_failure_is_a_503_without_details(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Errors: the config store failing is 503 store_unavailable, no database detail sent."""
    issued, _ = await admin.configured("shop-a")

    async def down(tenant_id: str) -> None:
        raise StoreError("config store at postgresql://user:***@db/x failed: OSError")

    monkeypatch.setattr(admin.store, "get_config", down)
    response = await admin.client.get(WEBHOOKS, headers=bearer(issued.key))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "store_unavailable"
    assert "postgresql" not in response.text
