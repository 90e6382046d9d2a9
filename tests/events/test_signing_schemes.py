"""Event requests' signature schemes: ``vizochok`` is the synchronous calls' own signature plus
event labels; ``standard-webhooks`` verifies with the Standard Webhooks reference library
(docs/webhooks.md §8)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from vizochok_dispatch import compute_signature
from vizochok_dispatch.contract._signing import (
    SIGNATURE_SCHEMES,
    event_headers,
    event_secret_problem,
    generate_event_secret,
    signature_headers,
    standard_webhooks_key,
)

BODY = (
    b'{"id":"evt_01","event":"order.created","timestamp":"2026-01-31T10:30:01.234Z",'
    b'"data":{"note":"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd1\x96\xd1\x82"}}'
)
# 32 bytes 0x00..0x1f in standard base64.
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def _headers(
    scheme: str, *, secret: str = SECRET, attempt: int = 1, timestamp: int = 1_769_855_401
):
    return event_headers(
        scheme,
        secret,
        event_id="evt_01",
        event_type="order.created",
        attempt=attempt,
        timestamp=timestamp,
        body=BODY,
    )


def test_the_schemes():
    """Two schemes, the synchronous calls' own first (the default)."""
    assert SIGNATURE_SCHEMES == ("vizochok", "standard-webhooks")


def test_vizochok_scheme_is_the_synchronous_signature_plus_labels():
    """``vizochok`` signs ``"{ts}." + body`` as the synchronous calls do, and labels the event."""
    headers = _headers("vizochok", attempt=2)
    assert headers == {
        **signature_headers(SECRET, 1_769_855_401, BODY),
        "X-VIZOCHOK-Event": "order.created",
        "X-VIZOCHOK-Delivery": "evt_01",
        "X-VIZOCHOK-Attempt": "2",
    }
    expected = hmac.new(SECRET.encode(), b"1769855401." + BODY, hashlib.sha256).hexdigest()
    assert headers["X-VIZOCHOK-Signature"] == "sha256=" + expected
    assert headers["X-VIZOCHOK-Signature"] == compute_signature(SECRET, 1_769_855_401, BODY)


def test_vizochok_scheme_takes_any_secret_text():
    """The vizochok scheme keys HMAC with the secret's UTF-8 bytes, whatever its form."""
    headers = _headers("vizochok", secret="my own secret, ünïcode")
    assert headers["X-VIZOCHOK-Signature"] == compute_signature(
        "my own secret, ünïcode", 1_769_855_401, BODY
    )


def test_standard_webhooks_headers_verify_with_the_reference_library():
    """The ``standardwebhooks`` package accepts our request and returns the body."""
    now = int(time.time())
    headers = _headers("standard-webhooks", timestamp=now, attempt=3)
    assert headers["webhook-id"] == "evt_01"
    assert headers["webhook-timestamp"] == str(now)
    assert headers["X-VIZOCHOK-Event"] == "order.created"
    assert headers["X-VIZOCHOK-Attempt"] == "3"
    assert "X-VIZOCHOK-Signature" not in headers
    payload = Webhook(SECRET).verify(BODY, headers)
    assert payload["id"] == "evt_01"


def test_standard_webhooks_signature_is_the_libraries_own():
    """Byte for byte the signature the reference library computes for id, time and body."""
    headers = _headers("standard-webhooks")
    when = datetime.fromtimestamp(1_769_855_401, tz=UTC)
    assert headers["webhook-signature"] == Webhook(SECRET).sign("evt_01", when, BODY.decode())
    key = bytes(range(32))
    mac = hmac.new(key, b"evt_01.1769855401." + BODY, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"body": BODY.replace(b"order.created", b"order.updated")}, "body"),
        ({"webhook-id": "evt_02"}, "id"),
        ({"secret": "whsec_" + base64.b64encode(b"\x01" * 32).decode()}, "secret"),
    ],
)
def test_standard_webhooks_library_refuses_a_changed_request(change, what):
    """A different body, id or secret fails the reference library's check."""
    headers = _headers("standard-webhooks", timestamp=int(time.time()))
    body = change.get("body", BODY)
    if "webhook-id" in change:
        headers["webhook-id"] = change["webhook-id"]
    secret = change.get("secret", SECRET)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


def test_retries_keep_the_id_and_sign_afresh():
    """Every attempt carries the same event id; the timestamp and signature are the attempt's."""
    for scheme, id_header in [
        ("vizochok", "X-VIZOCHOK-Delivery"),
        ("standard-webhooks", "webhook-id"),
    ]:
        first = _headers(scheme, attempt=1, timestamp=1_769_855_401)
        third = _headers(scheme, attempt=3, timestamp=1_769_855_701)
        assert first[id_header] == third[id_header] == "evt_01"
        assert first["X-VIZOCHOK-Attempt"] == "1"
        assert third["X-VIZOCHOK-Attempt"] == "3"
        assert set(first) == set(third)
        assert [v for k, v in first.items() if "ignature" in k] != [
            v for k, v in third.items() if "ignature" in k
        ]


def test_a_generated_secret_serves_both_schemes():
    """``generate_event_secret`` is ``whsec_`` + standard base64 of 32 random bytes."""
    secret = generate_event_secret()
    assert secret.startswith("whsec_")
    assert len(standard_webhooks_key(secret)) == 32
    assert generate_event_secret() != secret
    now = int(time.time())
    headers = _headers("standard-webhooks", secret=secret, timestamp=now)
    Webhook(secret).verify(BODY, headers)
    assert event_secret_problem("vizochok", secret) is None


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("plain-secret-of-enough-length-1234567890", "must start with whsec_"),
        # URL-safe base64 (the synchronous webhooks' secrets) would be mis-read as another key
        ("whsec_" + base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode(), "standard base64"),
        ("whsec_" + base64.b64encode(b"k" * 23).decode(), "24 to 64 bytes"),
        ("whsec_" + base64.b64encode(b"k" * 65).decode(), "24 to 64 bytes"),
        ("whsec_" + "A" * 100_000, "24 to 64 bytes"),
        ("whsec_" + base64.b64encode(b"k" * 32).decode() + "!", "standard base64"),
        ("", "non-empty"),
    ],
)
def test_a_standard_webhooks_secret_must_be_whsec_base64(secret, problem):
    """standard-webhooks needs ``whsec_`` + standard base64 of 24-64 bytes; the error names
    the rule and never the secret."""
    found = event_secret_problem("standard-webhooks", secret)
    assert found is not None
    assert problem in found
    with pytest.raises(ValueError, match="secret ") as caught:
        _headers("standard-webhooks", secret=secret)
    if secret:
        assert secret.removeprefix("whsec_")[:12] not in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scheme": "svix"}, "unknown signature scheme"),
        ({"event_id": "evt_1\r\nX-Evil: 1"}, "event_id must be 1 to 256 printable ASCII"),
        ({"event_id": ""}, "event_id must be"),
        ({"event_type": "order created"}, "event_type must be"),
        ({"attempt": 0}, "attempt must be an integer from 1"),
        ({"attempt": True}, "attempt must be"),
    ],
)
def test_event_headers_refuse_what_cannot_go_into_a_header(kwargs, message):
    """Header values never carry CR/LF or spaces; attempts count from 1; schemes are known."""
    args = {
        "scheme": "vizochok",
        "secret": SECRET,
        "event_id": "evt_01",
        "event_type": "order.created",
        "attempt": 1,
        "timestamp": 1,
        "body": BODY,
    }
    args.update(kwargs)
    scheme, secret = args.pop("scheme"), args.pop("secret")
    with pytest.raises(ValueError, match=message):
        event_headers(scheme, secret, **args)  # type: ignore[arg-type]


# -- a rolled secret (docs/webhooks.md §7) ------------------------------------------------------

NEXT = "whsec_" + base64.b64encode(bytes(range(32, 64))).decode()


def test_standard_webhooks_carries_the_pending_secrets_signature_after_the_current_one() -> None:
    """Rolling: ``webhook-signature`` is ``v1,<current> v1,<pending>``, each verifying alone."""
    now = int(time.time())
    headers = event_headers(
        "standard-webhooks",
        SECRET,
        event_id="evt_01",
        event_type="order.created",
        attempt=1,
        timestamp=now,
        body=BODY,
        pending_secret=NEXT,
    )
    current, pending = headers["webhook-signature"].split(" ")
    alone = _headers("standard-webhooks", timestamp=now)["webhook-signature"]
    assert current == alone
    assert Webhook(SECRET).verify(BODY, headers)["id"] == "evt_01"
    assert Webhook(NEXT).verify(BODY, headers)["id"] == "evt_01"
    assert pending == Webhook(NEXT).sign("evt_01", datetime.fromtimestamp(now, UTC), BODY.decode())


@pytest.mark.parametrize(
    ("scheme", "pending", "says"),
    [
        ("vizochok", NEXT, "signs with one secret"),
        ("standard-webhooks", "not-a-whsec-secret-0123456789", "pending_secret must start"),
    ],
)
def test_a_pending_secret_the_scheme_cannot_carry_is_refused(
    scheme: str, pending: str, says: str
) -> None:
    """Rolling: vizochok carries one signature; a pending secret must suit the scheme."""
    with pytest.raises(ValueError, match=says) as caught:
        event_headers(
            scheme,
            SECRET,
            event_id="evt_01",
            event_type="order.created",
            attempt=1,
            timestamp=1,
            body=BODY,
            pending_secret=pending,
        )
    assert pending not in str(caught.value)
