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
