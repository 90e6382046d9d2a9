"""The admin panel over HTTP (no browser): sessions, CSRF, the same field errors as the API,
one tenant's session seeing only its own settings (SQLite and PostgreSQL)."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import text

from tests.panel.support import csrf_of, sign_in
from vizochok_dispatch.events._catalog import EVENT_TYPES

from .support import WEBHOOKS, Admin, bearer, shop_config

PANEL_WEBHOOKS = "/panel/webhooks"


def _form(base: str) -> dict[str, str]:
    config = shop_config(base)
    return {
        "products_url": str(config["products_url"]),
        "cart_url": str(config["cart_url"]),
        "cart_get_url": str(config["cart_get_url"]),
        "timeout_seconds": "2",
    }


async def test_sign_in_sets_a_strict_http_only_cookie_without_the_key(admin: Admin) -> None:
    """Sign-in: the cookie is HttpOnly, SameSite=Strict, scoped to /panel, expiring, and
    neither it nor the sessions table holds the key."""
    _, issued = await admin.tenant("shop-a")
    form = await admin.client.get("/panel/sign-in")
    answer = await admin.client.post(
        "/panel/sign-in", data={"csrf_token": csrf_of(form.text), "api_key": issued.key}
    )
    assert answer.status_code == 303 and answer.headers["location"] == PANEL_WEBHOOKS
    cookies = answer.headers.get_list("set-cookie")
    cookie = next(value for value in cookies if value.startswith("vizochok_panel="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/panel", "max-age=28800"} <= flags
    assert "secure" not in flags  # plain http in development
    assert issued.key not in cookie and issued.key[3:20] not in cookie
    async with admin.store.engine.connect() as conn:
        rows = [tuple(row) for row in await conn.execute(text("SELECT * FROM panel_sessions"))]
    assert len(rows) == 1 and issued.key not in str(rows)
    assert cookie.split(";")[0].split("=", 1)[1] not in str(rows)  # only its hash is stored
    assert (await admin.client.get(PANEL_WEBHOOKS)).status_code == 200


async def test_cookie_is_secure_over_https(admin: Admin) -> None:
    """Sign-in over https marks the session cookie Secure."""
    _, issued = await admin.tenant("shop-a")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=admin.app), base_url="https://admin.test"
    ) as client:
        form = await client.get("/panel/sign-in")
        answer = await client.post(
            "/panel/sign-in", data={"csrf_token": csrf_of(form.text), "api_key": issued.key}
        )
    cookies = answer.headers.get_list("set-cookie")
    assert any(c.startswith("vizochok_panel=") and "; secure" in c.lower() for c in cookies)


async def test_a_wrong_key_or_a_forged_sign_in_opens_no_session(admin: Admin) -> None:
    """Sign-in: an unknown key is refused in place (401); a sign-in form without its
    cookie-bound token is refused (403); neither sets a session cookie."""
    _, issued = await admin.tenant("shop-a")
    form = await admin.client.get("/panel/sign-in")
    wrong = await admin.client.post(
        "/panel/sign-in", data={"csrf_token": csrf_of(form.text), "api_key": "sk_" + "x" * 43}
    )
    assert wrong.status_code == 401 and "That key is not valid" in wrong.text
    admin.client.cookies.clear()
    forged = await admin.client.post(
        "/panel/sign-in", data={"csrf_token": "made-up", "api_key": issued.key}
    )
    assert forged.status_code == 403
    for answer in (wrong, forged):
        assert not any(
            c.startswith("vizochok_panel=") for c in answer.headers.get_list("set-cookie")
        )
    assert (await admin.client.get(PANEL_WEBHOOKS)).headers["location"] == "/panel/sign-in"


async def test_revoking_the_key_ends_the_session_on_the_next_request(admin: Admin) -> None:
    """Sessions: once the key signed in with is revoked, the next page is the sign-in page."""
    _, issued = await admin.tenant("shop-a")
    await sign_in(admin.client, issued.key)
    await admin.tenants.revoke_key(issued.key_id)
    answer = await admin.client.get(PANEL_WEBHOOKS)
    assert answer.status_code == 303 and answer.headers["location"] == "/panel/sign-in"


async def test_a_session_expires(admin: Admin) -> None:
    """Sessions: past VIZOCHOK_PANEL_SESSION_SECONDS (8 h) the session is refused."""
    _, issued = await admin.tenant("shop-a")
    await sign_in(admin.client, issued.key)
    admin.time.now += 8 * 3600 - 1
    assert (await admin.client.get(PANEL_WEBHOOKS)).status_code == 200
    admin.time.now += 1
    assert (await admin.client.get(PANEL_WEBHOOKS)).status_code == 303


async def test_sign_out_ends_the_session_server_side(admin: Admin) -> None:
    """Sign-out deletes the session: the old cookie, sent again, opens nothing."""
    _, issued = await admin.tenant("shop-a")
    token = await sign_in(admin.client, issued.key)
    cookie = admin.client.cookies["vizochok_panel"]
    out = await admin.client.post("/panel/sign-out", data={"csrf_token": token})
    assert out.status_code == 303
    admin.client.cookies.set("vizochok_panel", cookie, path="/panel")
    assert (await admin.client.get(PANEL_WEBHOOKS)).status_code == 303


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    admin: Admin,
) -> None:
    """CSRF: a signed-in post without the form's token, or with another one, is a 403 and
    saves nothing."""
    issued, _ = await admin.configured("shop-a")
    token = await sign_in(admin.client, issued.key)
    before = (await admin.client.get(WEBHOOKS, headers=bearer(issued.key))).json()
    for data in ({}, {"csrf_token": token[:-1] + ("A" if token[-1] != "A" else "B")}):
        for path in (PANEL_WEBHOOKS, "/panel/webhooks/secret/roll", "/panel/sign-out"):
            answer = await admin.client.post(path, data={**_form("https://x.example"), **data})
            assert answer.status_code == 403, (path, answer.status_code)
            assert "security token" in answer.text
    after = (await admin.client.get(WEBHOOKS, headers=bearer(issued.key))).json()
    assert after == before
    assert (await admin.client.get(PANEL_WEBHOOKS)).status_code == 200  # still signed in


async def test_the_form_shows_the_apis_field_errors_in_place(admin: Admin) -> None:
    """Webhooks form: a bad URL and a bad timeout get the API's own messages beside their
    fields, and nothing is saved."""
    issued, saved = await admin.configured("shop-a")
    token = await sign_in(admin.client, issued.key)
    bad = {"products_url": "http://shop-a.example/p", "timeout_seconds": 99}
    api = await admin.client.patch(WEBHOOKS, headers=bearer(issued.key), json=bad)
    expected = {f["field"]: f["message"] for f in api.json()["error"]["fields"]}
    answer = await admin.client.post(
        PANEL_WEBHOOKS,
        data={
            **_form("https://shop-a.example"),
            "products_url": "http://shop-a.example/p",
            "timeout_seconds": "99",
            "csrf_token": token,
        },
    )
    assert answer.status_code == 422
    assert set(expected) == {"products_url", "timeout_seconds"}
    assert f'<p class="error" id="e-products_url">Products URL {expected["products_url"]}' in (
        answer.text
    )
    assert f'id="e-timeout_seconds">Timeout (seconds) {expected["timeout_seconds"]}' in (
        answer.text
    )
    assert 'value="http://shop-a.example/p"' in answer.text  # what was typed stays
    now = (await admin.client.get(WEBHOOKS, headers=bearer(issued.key))).json()
    assert now["version"] == saved["version"]


async def test_another_tenants_session_sees_none_of_it(admin: Admin) -> None:
    """Isolation: tenant B's session shows B's (empty) settings, never A's URLs or secret."""
    _, saved = await admin.configured("shop-a")
    _, other = await admin.tenant("shop-b")
    await sign_in(admin.client, other.key)
    page = (await admin.client.get(PANEL_WEBHOOKS)).text
    assert "shop-a.example" not in page and saved["secret_masked"] not in page
    assert "shop-b" in page


async def test_another_tenants_endpoint_and_delivery_are_not_found(admin: Admin) -> None:
    """Isolation: tenant B's session gets 404 for tenant A's endpoint and delivery pages,
    and A's endpoint is not in B's list."""
    _, issued_a = await admin.tenant("shop-a")
    endpoint = await admin.dispatcher.events.create_endpoint(
        "shop-a", url="https://events.shop-a.example/hook", event_types=["order.*"]
    )
    _, other = await admin.tenant("shop-b")
    await sign_in(admin.client, other.key)
    assert (await admin.client.get(f"/panel/endpoints/{endpoint.id}")).status_code == 404
    listed = await admin.client.get("/panel/endpoints")
    assert endpoint.id not in listed.text and "events.shop-a.example" not in listed.text
    missing = await admin.client.get("/panel/deliveries/dlv_00000000000000000000000000")
    assert missing.status_code == 404
    del issued_a


async def test_the_endpoint_form_shows_the_services_field_errors(admin: Admin) -> None:
    """Event endpoint form: no event type and a bad URL are refused beside their fields."""
    _, issued = await admin.tenant("shop-a")
    token = await sign_in(admin.client, issued.key)
    answer = await admin.client.post(
        "/panel/endpoints/new",
        data={"csrf_token": token, "url": "ftp://x", "timeout_seconds": "15"},
    )
    assert answer.status_code == 422
    assert 'id="e-url">Endpoint URL' in answer.text
    assert 'id="e-event_types">Event types' in answer.text
    assert await admin.dispatcher.events.endpoints("shop-a") == []


async def test_health_counts_the_days_failures_by_detail(admin: Admin, router) -> None:
    """Health: the call log's failed calls of the last 24 h are counted by detail; older
    ones are not."""
    issued, _ = await admin.configured("shop-a")
    router.post("https://shop-a.example/vizochok/products").respond(404)
    await admin.dispatcher.check_products("shop-a", skus=["a"], store_id="s")
    await admin.dispatcher.call_log.flush()
    admin.time.now += 24 * 3600 + 1  # that call is a day old now
    for _ in range(2):
        await admin.dispatcher.check_products("shop-a", skus=["a"], store_id="s")
    await admin.dispatcher.call_log.flush()
    await sign_in(admin.client, issued.key)
    page = (await admin.client.get("/panel/health")).text
    products = page.split('id="h-products"', 1)[1].split("</section>", 1)[0]
    assert "<dt>Failures</dt><dd>2: http_status 2</dd>" in products
    assert products.count('fill="#a61b1b"') == 1  # one hour's bar, red


async def test_another_tenant_cannot_test_retry_or_recover(admin: Admin) -> None:
    """Isolation: tenant B's session cannot test, recover or retry tenant A's endpoint and
    delivery: each is a 404, as for ids that do not exist."""
    await admin.tenant("shop-a")
    endpoint = await admin.dispatcher.events.create_endpoint(
        "shop-a", url="https://events.shop-a.example/hook", event_types=["order.*"]
    )
    published = await admin.dispatcher.events.publish(
        "shop-a", "order.created", data=EVENT_TYPES["order.created"].example
    )
    delivery = published.deliveries[0]
    _, other = await admin.tenant("shop-b")
    token = await sign_in(admin.client, other.key)
    for path, data in (
        (f"/panel/endpoints/{endpoint.id}/test", {"event_type": "order.created"}),
        (f"/panel/endpoints/{endpoint.id}/recover", {"hours": "24"}),
        (f"/panel/deliveries/{delivery.id}/retry", {}),
    ):
        answer = await admin.client.post(path, data={"csrf_token": token, **data})
        assert answer.status_code == 404, path


async def test_expired_sessions_are_purged_at_the_next_sign_in(admin: Admin) -> None:
    """Sessions: a sign-in deletes the sessions that have expired (bounded), not live ones."""
    _, issued = await admin.tenant("shop-a")
    await sign_in(admin.client, issued.key)
    admin.time.now += 8 * 3600 + 1
    admin.client.cookies.clear()
    await sign_in(admin.client, issued.key)
    async with admin.store.engine.connect() as conn:
        left = (await conn.execute(text("SELECT count(*) FROM panel_sessions"))).scalar_one()
    assert left == 1


async def test_pages_carry_their_security_headers_and_local_assets(admin: Admin) -> None:
    """Pages: a CSP that allows this origin only, no framing, no caching; the style sheet
    and script come from the package."""
    page = await admin.client.get("/panel/sign-in")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "http" not in page.text.split("<body>", 1)[0]  # nothing loaded from elsewhere
    css = await admin.client.get("/panel/static/panel.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert (await admin.client.get("/panel/static/../_web.py")).status_code == 404


async def test_every_form_control_has_a_label(admin: Admin) -> None:
    """Accessibility: every visible input and select of every page has a label naming it."""
    issued, _ = await admin.configured("shop-a")
    await admin.dispatcher.events.create_endpoint(
        "shop-a", url="https://events.shop-a.example/hook", event_types=["order.*"]
    )
    await sign_in(admin.client, issued.key)
    endpoint = (await admin.dispatcher.events.endpoints("shop-a"))[0]
    pages = [
        "/panel/webhooks",
        "/panel/test",
        "/panel/health",
        "/panel/endpoints",
        "/panel/endpoints/new",
        f"/panel/endpoints/{endpoint.id}",
        "/panel/calls",
        "/panel/deliveries",
    ]
    for path in pages:
        html = (await admin.client.get(path)).text
        labelled = set(re.findall(r'<label[^>]* for="([^"]+)"', html))
        controls = re.findall(r"<(?:input|select|textarea)\b[^>]*>", html)
        for control in controls:
            if 'type="hidden"' in control:
                continue
            found = re.search(r'\bid="([^"]+)"', control)
            assert found is not None and found.group(1) in labelled, (path, control)
