"""POST /api/v1/admin/webhooks/secret/roll and …/promote (docs/webhooks.md §7): a pending secret
shown once, the current one signing until promote or the overlap's end, GET showing what is
pending (masked) and since when, rotate dropping it, each tenant's key reaching its own config
only, and no secret in any log or error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from structlog.testing import capture_logs

from .support import PROMOTE, ROLL, ROTATE, SHOP_B, WEBHOOKS, Admin, absent, bearer

OWN_SECRET = "rolled-by-the-tenant-0123456789"
DAY = timedelta(hours=24)


def _at(admin: Admin) -> datetime:
    return datetime.fromtimestamp(admin.time.now, UTC)


async def test_roll_shows_the_new_secret_once_and_keeps_the_current_one(admin: Admin) -> None:
    """Roll: the pending secret in full in this answer only; GET shows it masked, since
    when and when it promotes itself (24 h later by default); the current secret stays."""
    issued, saved = await admin.configured("shop-a")
    response = await admin.client.post(ROLL, headers=bearer(issued.key))
    assert response.status_code == 200, response.text
    rolled = response.json()
    pending = rolled["pending_secret"]
    assert pending.startswith("whsec_") and pending != saved["secret"]
    assert rolled["secret"] is None
    assert rolled["secret_masked"] == saved["secret_masked"]
    assert rolled["pending_secret_masked"] == "whsec_…" + pending[-4:]
    shown = (await admin.client.get(WEBHOOKS, headers=bearer(issued.key))).json()
    assert shown["pending_secret"] is None
    assert shown["pending_secret_masked"] == rolled["pending_secret_masked"]
    assert datetime.fromisoformat(shown["pending_since"]) == _at(admin)
    assert datetime.fromisoformat(shown["pending_promotes_at"]) == _at(admin) + DAY
    stored = await admin.store.get_config("shop-a")
    assert stored is not None and stored.secret == saved["secret"]
    assert stored.pending_secret == pending


async def test_promote_switches_to_the_pending_secret(admin: Admin) -> None:
    """Promote: the pending secret becomes current (masked as such), nothing stays pending."""
    issued, _ = await admin.configured("shop-a")
    await admin.client.post(ROLL, headers=bearer(issued.key), json={"secret": OWN_SECRET})
    response = await admin.client.post(PROMOTE, headers=bearer(issued.key))
    assert response.status_code == 200, response.text
    promoted = response.json()
    assert promoted["secret"] is None, "a promote shows no secret: the roll did"
    assert promoted["secret_masked"] == "…" + OWN_SECRET[-4:]
    assert promoted["pending_secret_masked"] is None
    assert promoted["pending_since"] is None and promoted["pending_promotes_at"] is None
    stored = await admin.store.get_config("shop-a")
    assert stored is not None and stored.secret == OWN_SECRET and stored.pending_secret is None


async def test_promote_with_nothing_pending_is_a_clear_409(admin: Admin) -> None:
    """Promote: with no pending secret, 409 no_pending_secret saying what to do; a second
    promote after the first is the same."""
    issued, _ = await admin.configured("shop-a")
    response = await admin.client.post(PROMOTE, headers=bearer(issued.key))
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "no_pending_secret"
    assert "roll one first" in error["message"]
    await admin.client.post(ROLL, headers=bearer(issued.key))
    assert (await admin.client.post(PROMOTE, headers=bearer(issued.key))).status_code == 200
    again = await admin.client.post(PROMOTE, headers=bearer(issued.key))
    assert again.status_code == 409 and again.json()["error"]["code"] == "no_pending_secret"


async def test_the_overlap_promotes_by_itself(admin: Admin) -> None:
    """Overlap: at its end GET shows the rolled secret as current and nothing pending, and
    promote has nothing left to do (409)."""
    issued, _ = await admin.configured("shop-a")
    await admin.client.post(ROLL, headers=bearer(issued.key), json={"secret": OWN_SECRET})
    admin.time.now += DAY.total_seconds() - 1
    before = (await admin.client.get(WEBHOOKS, headers=bearer(issued.key))).json()
    assert before["pending_secret_masked"] == "…" + OWN_SECRET[-4:]
    admin.time.now += 1
    after = (await admin.client.get(WEBHOOKS, headers=bearer(issued.key))).json()
    assert after["secret_masked"] == "…" + OWN_SECRET[-4:]
    assert after["pending_secret_masked"] is None
    response = await admin.client.post(PROMOTE, headers=bearer(issued.key))
    assert response.status_code == 409


async def test_rotate_drops_the_pending_secret(admin: Admin) -> None:
    """Rotate: replaces the secret at once and drops a pending one (promote is then 409)."""
    issued, _ = await admin.configured("shop-a")
    await admin.client.post(ROLL, headers=bearer(issued.key), json={"secret": OWN_SECRET})
    rotated = (await admin.client.post(ROTATE, headers=bearer(issued.key))).json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["pending_secret_masked"] is None and rotated["pending_secret"] is None
    shown = (await admin.client.get(WEBHOOKS, headers=bearer(issued.key))).json()
    assert shown["pending_secret_masked"] is None and shown["pending_since"] is None
    assert (await admin.client.post(PROMOTE, headers=bearer(issued.key))).status_code == 409


async def test_a_refused_own_secret_is_a_field_error_that_changes_nothing(admin: Admin) -> None:
    """Roll: a short own secret, or the current one, is a 422 on `secret` (the value not
    echoed); nothing is stored."""
    issued, saved = await admin.configured("shop-a")
    before = await admin.store.get_config("shop-a")
    for secret, says in (
        ("short-secret", "must be at least 24 characters"),
        (saved["secret"], "must differ from the current secret"),
    ):
        response = await admin.client.post(
            ROLL, headers=bearer(issued.key), json={"secret": secret}
        )
        assert response.status_code == 422
        assert response.json()["error"]["fields"] == [{"field": "secret", "message": says}]
        assert absent(secret, response.text)
    assert await admin.store.get_config("shop-a") == before


async def test_roll_and_promote_before_any_config_are_409(admin: Admin) -> None:
    """Roll and promote need a saved configuration (409 not_configured); nothing is stored."""
    _, issued = await admin.tenant("shop-a")
    for path in (ROLL, PROMOTE):
        response = await admin.client.post(path, headers=bearer(issued.key))
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "not_configured"
    assert await admin.store.get_config("shop-a") is None


async def test_each_key_rolls_and_promotes_its_own_tenant_only(admin: Admin) -> None:
    """Isolation: shop B's roll and promote never touch shop A's secret or pending secret."""
    issued_a, _ = await admin.configured("shop-a")
    issued_b, _ = await admin.configured("shop-b", base=SHOP_B)
    await admin.client.post(ROLL, headers=bearer(issued_a.key), json={"secret": OWN_SECRET})
    a_before = await admin.store.get_config("shop-a")
    rolled_b = (await admin.client.post(ROLL, headers=bearer(issued_b.key))).json()
    assert rolled_b["tenant_id"] == "shop-b"
    assert (await admin.client.post(PROMOTE, headers=bearer(issued_b.key))).status_code == 200
    assert await admin.store.get_config("shop-a") == a_before
    b_after = await admin.store.get_config("shop-b")
    assert b_after is not None and b_after.secret == rolled_b["pending_secret"]
    unauthenticated = await admin.client.post(PROMOTE)
    assert unauthenticated.status_code == 401
    assert await admin.store.get_config("shop-a") == a_before


async def test_roll_and_promote_log_no_secret(admin: Admin) -> None:
    """Secrecy: roll (generated and own) and promote log what happened, never a secret."""
    issued, saved = await admin.configured("shop-a")
    with capture_logs() as logs:
        generated = (await admin.client.post(ROLL, headers=bearer(issued.key))).json()
        await admin.client.post(ROLL, headers=bearer(issued.key), json={"secret": OWN_SECRET})
        await admin.client.post(PROMOTE, headers=bearer(issued.key))
    events = [log["event"] for log in logs]
    assert events.count("admin.secret_rolled") == 2 and "admin.secret_promoted" in events
    for secret in (saved["secret"], generated["pending_secret"], OWN_SECRET):
        assert absent(secret, logs)
