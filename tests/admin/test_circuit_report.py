"""The admin GET reports the circuit of the URL configured now (issue 9, case 6)."""

from __future__ import annotations

import httpx
import respx

from .support import SHOP_A, SHOP_B, TEST_FIRE, WEBHOOKS, Admin, bearer


async def test_a_fixed_products_url_is_reported_closed(admin: Admin, router: respx.Router) -> None:
    """Circuits: after a broken products_url is replaced, PATCH and GET show it closed."""
    issued, _ = await admin.configured("shop-a")
    headers = bearer(issued.key)
    router.post(f"{SHOP_A}/vizochok/products").mock(return_value=httpx.Response(500))
    fixed = f"{SHOP_B}/vizochok/products"
    router.post(fixed).mock(return_value=httpx.Response(200, json={"products": []}))
    for _ in range(admin.dispatcher.settings.circuit_failure_threshold):
        await admin.client.post(TEST_FIRE, headers=headers)
    broken = (await admin.client.get(WEBHOOKS, headers=headers)).json()["circuits"]
    patched = await admin.client.patch(WEBHOOKS, headers=headers, json={"products_url": fixed})
    shown = (await admin.client.get(WEBHOOKS, headers=headers)).json()["circuits"]
    fired = (await admin.client.post(TEST_FIRE, headers=headers)).json()
    after = (await admin.client.get(WEBHOOKS, headers=headers)).json()["circuits"]
    assert broken["products"] == "open"
    assert patched.json()["circuits"]["products"] == "closed"
    assert shown == {"products": "closed", "cart": "closed", "cart_get": "closed"}
    assert fired["ok"] is True and fired["url"] == fixed
    assert after["products"] == "closed"


async def test_a_url_changed_away_and_back_is_reported_and_called_closed(
    admin: Admin, router: respx.Router
) -> None:
    """Circuits: PATCH to a working URL and back to the broken one, with no call between:
    GET shows closed and the next test-fire is sent, not circuit_open (webhooks.md §3)."""
    issued, _ = await admin.configured("shop-a")
    headers = bearer(issued.key)
    broken = f"{SHOP_A}/vizochok/products"
    route = router.post(broken).mock(return_value=httpx.Response(500))
    fixed = f"{SHOP_B}/vizochok/products"
    router.post(fixed).mock(return_value=httpx.Response(200, json={"products": []}))
    threshold = admin.dispatcher.settings.circuit_failure_threshold
    for _ in range(threshold):
        await admin.client.post(TEST_FIRE, headers=headers)
    opened = (await admin.client.get(WEBHOOKS, headers=headers)).json()["circuits"]
    await admin.client.patch(WEBHOOKS, headers=headers, json={"products_url": fixed})
    away = (await admin.client.get(WEBHOOKS, headers=headers)).json()["circuits"]
    back = await admin.client.patch(WEBHOOKS, headers=headers, json={"products_url": broken})
    shown = (await admin.client.get(WEBHOOKS, headers=headers)).json()["circuits"]
    fired = (await admin.client.post(TEST_FIRE, headers=headers)).json()
    assert opened["products"] == "open" and away["products"] == "closed"
    assert back.json()["circuits"]["products"] == "closed"
    assert shown["products"] == "closed"
    assert fired["detail"] == "http_status" and fired["url"] == broken
    assert route.call_count == 2 * threshold + 2  # each 5xx test-fire retries once
