"""POST /api/v1/admin/event-endpoints/{id}/secret/roll, …/promote and …/rotate
(docs/webhooks.md §7): a pending secret shown once, what is pending shown masked with its
times, promote (409 when nothing waits), the overlap promoting by itself, rotate replacing at
once and dropping the pending secret; another tenant's endpoint is 404 like an unknown one,
and no secret reaches a log or an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from vizochok_dispatch import DispatchSettings

from .support import Admin, absent, admin_settings_for, bearer

ENDPOINTS = "/api/v1/admin/event-endpoints"
HOOK = "https://shop-a.example/events"
OWN = "whsec_" + "QmV0dGVyIHNlY3JldHMgZm9yIGV2ZXJ5b25lIQ=="
VIZOCHOK_ONLY = "tenant-own-secret-0123456789abcdef"
OVERLAP = timedelta(hours=2)


@pytest.fixture
def admin_settings(database_url: str) -> DispatchSettings:
    return admin_settings_for(
        database_url, event_worker="off", secret_overlap_seconds=OVERLAP.total_seconds()
    )


def _at(admin: Admin) -> datetime:
    return datetime.fromtimestamp(admin.time.now, UTC)


async def _endpoint(
    admin: Admin, tenant_id: str = "shop-a", **body: Any
) -> tuple[str, dict[str, Any]]:
    """A tenant's key and a new endpoint of it (as created)."""
    _, issued = await admin.tenant(tenant_id)
    response = await admin.client.post(
        ENDPOINTS,
        headers=bearer(issued.key),
        json={"url": HOOK, "event_types": ["order.*"], **body},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return issued.key, created


def _path(endpoint_id: str, action: str) -> str:
    return f"{ENDPOINTS}/{endpoint_id}/secret/{action}"


async def test_roll_shows_the_pending_secret_once_and_keeps_the_current_one(admin: Admin) -> None:
    """Roll: the new secret in full in this answer only; GET (one and list) shows it masked,
    since when and when it signs alone; the current secret is unchanged."""
    key, created = await _endpoint(admin)
    response = await admin.client.post(_path(created["id"], "roll"), headers=bearer(key))
    assert response.status_code == 200, response.text
    rolled = response.json()
    pending = rolled["pending_secret"]
    assert pending.startswith("whsec_") and pending != created["secret"]
    assert rolled["secret"] is None and rolled["secret_masked"] == created["secret_masked"]
    assert rolled["pending_secret_masked"] == "whsec_…" + pending[-4:]
    one = (await admin.client.get(f"{ENDPOINTS}/{created['id']}", headers=bearer(key))).json()
    (listed,) = (await admin.client.get(ENDPOINTS, headers=bearer(key))).json()["endpoints"]
    for shown in (one, listed):
        assert shown["pending_secret"] is None
        assert shown["pending_secret_masked"] == rolled["pending_secret_masked"]
        assert datetime.fromisoformat(shown["pending_since"]) == _at(admin)
        assert datetime.fromisoformat(shown["pending_promotes_at"]) == _at(admin) + OVERLAP
        assert shown["secret_masked"] == created["secret_masked"]


async def test_promote_switches_and_a_second_promote_is_409(admin: Admin) -> None:
    """Promote: the pending secret becomes current; nothing pending is 409 no_pending_secret."""
    key, created = await _endpoint(admin)
    nothing = await admin.client.post(_path(created["id"], "promote"), headers=bearer(key))
    assert nothing.status_code == 409
    assert nothing.json()["error"]["code"] == "no_pending_secret"
    await admin.client.post(_path(created["id"], "roll"), headers=bearer(key), json={"secret": OWN})
    response = await admin.client.post(_path(created["id"], "promote"), headers=bearer(key))
    assert response.status_code == 200, response.text
    promoted = response.json()
    assert promoted["secret"] is None and promoted["secret_masked"] == "whsec_…" + OWN[-4:]
    assert promoted["pending_secret_masked"] is None and promoted["pending_since"] is None
    again = await admin.client.post(_path(created["id"], "promote"), headers=bearer(key))
    assert again.status_code == 409 and again.json()["error"]["code"] == "no_pending_secret"


async def test_the_overlap_promotes_by_itself(admin: Admin) -> None:
    """Overlap: at its end GET shows the rolled secret as current, and promote is 409."""
    key, created = await _endpoint(admin)
    await admin.client.post(_path(created["id"], "roll"), headers=bearer(key), json={"secret": OWN})
    admin.time.now += OVERLAP.total_seconds()
    shown = (await admin.client.get(f"{ENDPOINTS}/{created['id']}", headers=bearer(key))).json()
    assert shown["secret_masked"] == "whsec_…" + OWN[-4:]
    assert shown["pending_secret_masked"] is None
    response = await admin.client.post(_path(created["id"], "promote"), headers=bearer(key))
    assert response.status_code == 409


async def test_rotate_replaces_at_once_and_drops_the_pending_secret(admin: Admin) -> None:
    """Rotate: the new secret in full this once, nothing pending any more (promote is 409)."""
    key, created = await _endpoint(admin)
    await admin.client.post(_path(created["id"], "roll"), headers=bearer(key), json={"secret": OWN})
    response = await admin.client.post(_path(created["id"], "rotate"), headers=bearer(key))
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] not in (OWN, created["secret"])
    assert rotated["pending_secret_masked"] is None and rotated["pending_secret"] is None
    own = await admin.client.post(
        _path(created["id"], "rotate"), headers=bearer(key), json={"secret": OWN}
    )
    assert own.json()["secret"] == OWN
    assert (
        await admin.client.post(_path(created["id"], "promote"), headers=bearer(key))
    ).status_code == 409


@pytest.mark.parametrize("action", ["roll", "rotate"])
async def test_an_own_secret_the_scheme_cannot_use_is_a_field_error(
    admin: Admin, action: str
) -> None:
    """Roll and rotate: a secret the endpoint's scheme cannot use is a 422 on `secret`, the
    value never echoed; nothing changes."""
    key, created = await _endpoint(admin, signature_scheme="standard-webhooks")
    response = await admin.client.post(
        _path(created["id"], action), headers=bearer(key), json={"secret": VIZOCHOK_ONLY}
    )
    assert response.status_code == 422
    (field,) = response.json()["error"]["fields"]
    assert field["field"] == "secret" and "whsec_" in field["message"]
    assert absent(VIZOCHOK_ONLY, response.text)
    shown = (await admin.client.get(f"{ENDPOINTS}/{created['id']}", headers=bearer(key))).json()
    assert shown["secret_masked"] == created["secret_masked"]
    assert shown["pending_secret_masked"] is None


async def test_rolling_to_the_current_secret_is_refused(admin: Admin) -> None:
    """Roll: the secret that signs already is a 422 on `secret` (nothing would change)."""
    key, created = await _endpoint(admin, secret=OWN)
    response = await admin.client.post(
        _path(created["id"], "roll"), headers=bearer(key), json={"secret": OWN}
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == [
        {"field": "secret", "message": "must differ from the current secret"}
    ]


async def test_a_scheme_change_must_suit_the_pending_secret(admin: Admin) -> None:
    """PATCH: standard-webhooks needs a whsec_ pending secret too (promote or rotate first)."""
    key, created = await _endpoint(admin, secret=OWN)
    await admin.client.post(
        _path(created["id"], "roll"), headers=bearer(key), json={"secret": VIZOCHOK_ONLY}
    )
    response = await admin.client.patch(
        f"{ENDPOINTS}/{created['id']}",
        headers=bearer(key),
        json={"signature_scheme": "standard-webhooks"},
    )
    assert response.status_code == 422
    (field,) = response.json()["error"]["fields"]
    assert field["field"] == "signature_scheme"
    assert "pending secret does not suit it" in field["message"]
    assert absent(VIZOCHOK_ONLY, response.text)


async def test_another_tenants_endpoint_is_404_like_an_unknown_one(admin: Admin) -> None:
    """Isolation: shop B's key gets 404 for shop A's endpoint on every secret route, exactly
    as for an id that does not exist; shop A's secret and pending secret are untouched."""
    key_a, created = await _endpoint(admin)
    await admin.client.post(
        _path(created["id"], "roll"), headers=bearer(key_a), json={"secret": OWN}
    )
    before = (await admin.client.get(f"{ENDPOINTS}/{created['id']}", headers=bearer(key_a))).json()
    _, issued_b = await admin.tenant("shop-b")
    for action in ("roll", "promote", "rotate"):
        theirs = await admin.client.post(_path(created["id"], action), headers=bearer(issued_b.key))
        unknown = await admin.client.post(
            _path("ep_01kazzzzzzzzzzzzzzzzzzzzzz", action), headers=bearer(issued_b.key)
        )
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.json() == unknown.json()
        assert (await admin.client.post(_path(created["id"], action))).status_code == 401
    after = (await admin.client.get(f"{ENDPOINTS}/{created['id']}", headers=bearer(key_a))).json()
    assert after == before


async def test_the_secret_routes_log_no_secret(admin: Admin) -> None:
    """Secrecy: roll, promote and rotate log what happened, never a secret."""
    key, created = await _endpoint(admin)
    with capture_logs() as logs:
        rolled = (await admin.client.post(_path(created["id"], "roll"), headers=bearer(key))).json()
        await admin.client.post(_path(created["id"], "promote"), headers=bearer(key))
        rotated = (
            await admin.client.post(_path(created["id"], "rotate"), headers=bearer(key))
        ).json()
    events = {log["event"] for log in logs}
    assert {
        "event.endpoint_secret_rolled",
        "event.endpoint_secret_promoted",
        "event.endpoint_secret_rotated",
    } <= events
    for secret in (created["secret"], rolled["pending_secret"], rotated["secret"]):
        assert absent(secret, logs)
