"""Authentication runs before the body is read (issue 9, case 2.7): a body the API cannot parse
gets the one 401 without a valid key, and a field-level 422 with one."""

from __future__ import annotations

import pytest

from .support import ROTATE, TEST_FIRE, WEBHOOKS, Admin, bearer

HUGE = "9" * 5000
JSON = "application/json"
EVENT_ENDPOINTS = "/api/v1/admin/event-endpoints"

# (id, method, path, raw body, content type, the field a valid key's 422 names; None: a 415)
BROKEN_BODIES = [
    (
        "patch-huge-int",
        "PATCH",
        WEBHOOKS,
        f'{{"timeout_seconds": {HUGE}}}',
        JSON,
        "timeout_seconds",
    ),
    (
        "patch-huge-negative",
        "PATCH",
        WEBHOOKS,
        f'{{"timeout_seconds": -{HUGE}}}',
        JSON,
        "timeout_seconds",
    ),
    (
        "patch-bad-utf8",
        "PATCH",
        WEBHOOKS,
        b'{"products_url": "https://\xff.example/p"}',
        JSON,
        "products_url",
    ),
    ("patch-bad-json", "PATCH", WEBHOOKS, b'{"products_url": ', JSON, "body"),
    ("patch-nan", "PATCH", WEBHOOKS, b'{"timeout_seconds": NaN}', JSON, "body"),
    ("patch-deep-nesting", "PATCH", WEBHOOKS, "[" * 8000 + "]" * 8000, JSON, "body"),
    ("patch-no-content-type", "PATCH", WEBHOOKS, f'{{"timeout_seconds": {HUGE}}}', None, None),
    ("rotate-huge-int", "POST", ROTATE, f'{{"secret": {HUGE}}}', JSON, "secret"),
    (
        "rotate-bad-utf8",
        "POST",
        ROTATE,
        b'{"secret": "\xc3\x28-tenant-own-secret-0123456789"}',
        JSON,
        "secret",
    ),
    ("test-huge-int", "POST", TEST_FIRE, f'{{"skus": [{HUGE}]}}', JSON, "skus[0]"),
    ("test-bad-utf8", "POST", TEST_FIRE, b'{"store_id": "\xed\xa0\x80"}', JSON, "store_id"),
    ("test-escaped-surrogate", "POST", TEST_FIRE, b'{"skus": ["\\ud800"]}', JSON, "skus[0]"),
    ("test-bad-utf8-key", "POST", TEST_FIRE, b'{"\xff": 1}', JSON, "body"),
    ("test-bad-json", "POST", TEST_FIRE, b"[1,", JSON, "body"),
]
IDS = [case[0] for case in BROKEN_BODIES]
CASES = [case[1:] for case in BROKEN_BODIES]


async def _reference_401(admin: Admin) -> tuple[bytes, list[tuple[str, str]]]:
    """The 401 a plain GET without a key gets: every other 401 must be this, byte for byte."""
    response = await admin.client.get(WEBHOOKS)
    assert response.status_code == 401
    return response.content, sorted(response.headers.multi_items())


def _raw(body: str | bytes) -> bytes:
    return body.encode() if isinstance(body, str) else body


@pytest.mark.parametrize(("method", "path", "body", "content_type", "field"), CASES, ids=IDS)
async def test_an_unparseable_body_without_a_valid_key_is_the_one_401(
    admin: Admin,
    method: str,
    path: str,
    body: str | bytes,
    content_type: str | None,
    field: str | None,
) -> None:
    """Auth first: no key and a wrong key get the byte-identical 401 whatever the body is."""
    _, issued = await admin.tenant("shop-a")
    await admin.tenants.revoke_key(issued.key_id)
    expected = await _reference_401(admin)
    headers_by_case = {
        "no key": {},
        "unknown key": bearer("sk_" + "B" * 43),
        "revoked key": bearer(issued.key),
    }
    for name, auth in headers_by_case.items():
        headers = auth if content_type is None else {**auth, "Content-Type": content_type}
        response = await admin.client.request(method, path, headers=headers, content=_raw(body))
        assert response.status_code == 401, (name, response.status_code, response.text)
        assert (response.content, sorted(response.headers.multi_items())) == expected, name


@pytest.mark.parametrize(("method", "path", "body", "content_type", "field"), CASES, ids=IDS)
async def test_an_unparseable_body_with_a_valid_key_is_a_422_naming_the_field(
    admin: Admin,
    method: str,
    path: str,
    body: str | bytes,
    content_type: str | None,
    field: str | None,
) -> None:
    """Auth first: with a valid key the same body is a 422 naming its field (or `body`)."""
    issued, _ = await admin.configured("shop-a")
    before = await admin.store.get_config("shop-a")
    headers = bearer(issued.key)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await admin.client.request(method, path, headers=headers, content=_raw(body))
    assert HUGE[:50] not in response.text, "the value sent is echoed"
    assert await admin.store.get_config("shop-a") == before
    if field is None:
        assert response.status_code == 415, response.text
        assert response.json()["error"]["code"] == "unsupported_media_type"
        return
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in {entry["field"] for entry in error["fields"]}, error
    assert all(entry["message"] for entry in error["fields"])


async def test_a_body_that_is_not_json_with_a_valid_key_says_where_it_broke(admin: Admin) -> None:
    """Broken JSON: the 422 on `body` says what was expected, and where."""
    issued, _ = await admin.configured("shop-a")
    response = await admin.client.patch(
        WEBHOOKS,
        headers={**bearer(issued.key), "Content-Type": JSON},
        content=b'{"timeout_seconds": 3,\n "cart_url" "x"}',
    )
    assert response.status_code == 422
    (entry,) = response.json()["error"]["fields"]
    assert entry["field"] == "body"
    assert entry["message"].startswith("is not valid JSON")
    assert "line 2" in entry["message"], entry


async def test_every_route_checks_the_key_before_the_body(admin: Admin) -> None:
    """Auth first, whole kind: every operation the app serves answers the one 401 first
    (but the health checks, which take no key)."""
    expected = await _reference_401(admin)
    operations = [
        (method.upper(), path)
        for path, item in admin.app.openapi()["paths"].items()
        for method in item
        if path not in {"/healthz", "/readyz"}
    ]
    assert len(operations) >= 4
    for method, path in operations:
        response = await admin.client.request(
            method, path, headers={"Content-Type": JSON}, content=b'{"x": ' + HUGE.encode() + b"}"
        )
        assert (response.content, sorted(response.headers.multi_items())) == expected, path


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", ROTATE, b'{"secret": "\xff\xfe-tenant-own-secret-0123456789"}', "secret"),
        ("POST", TEST_FIRE, b'{"skus": ["\xff\xfe"]}', "skus[0]"),
        (
            "POST",
            EVENT_ENDPOINTS,
            b'{"url": "https://shop.example/h", "event_types": ["*"], "description": "\xff\xfe"}',
            "description",
        ),
    ],
    ids=["rotate", "test-fire", "event-endpoints"],
)
async def test_bytes_that_are_not_utf8_are_said_to_be_so(
    admin: Admin, method: str, path: str, body: bytes, field: str
) -> None:
    """Bad UTF-8: a field holding bytes that are not UTF-8 must be 'valid UTF-8 text', by name
    (no talk of lone surrogates, the decoder's inside)."""
    issued, _ = await admin.configured("shop-a")
    headers = {**bearer(issued.key), "Content-Type": JSON}
    response = await admin.client.request(method, path, headers=headers, content=body)
    assert response.status_code == 422, response.text
    messages = {entry["field"]: entry["message"] for entry in response.json()["error"]["fields"]}
    assert messages[field] == "must be valid UTF-8 text", messages
    assert "surrogate" not in response.text
