"""docs/webhooks.md §2: every request and every attempt is signed over the raw body as sent."""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx
import pytest
import respx

from tests.dispatch.conftest import PRODUCTS_URL, SECRET
from tests.support.vectors import load_vectors
from vizochok_dispatch import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    USER_AGENT,
    Dispatcher,
    InMemoryConfigStore,
    compute_signature,
    signature_headers,
)
from vizochok_dispatch.contract._signing import signature_matches

VECTORS = load_vectors()


@pytest.mark.parametrize("vector", [v for v in VECTORS if v["valid"]], ids=lambda v: v["name"])
def test_signer_reproduces_every_valid_vector(vector):
    """The signer yields the vector's exact header values."""
    body = vector["body_utf8"].encode("utf-8")
    headers = signature_headers(vector["secret"], vector["timestamp"], body)
    assert headers[SIGNATURE_HEADER] == vector["x_vizochok_signature"]
    assert headers[TIMESTAMP_HEADER] == vector["x_vizochok_timestamp"]
    signed = f"{vector['timestamp']}.".encode() + body
    assert signed == vector["signed_payload_utf8"].encode("utf-8")


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_verifier_agrees_with_every_vector(vector):
    """Valid vectors verify and every tampered one is refused."""
    ok = signature_matches(
        vector["secret"],
        int(vector["x_vizochok_timestamp"]),
        vector["body_utf8"].encode("utf-8"),
        vector["x_vizochok_signature"],
    )
    assert ok is vector["valid"]


def seed_docs_verify(headers: httpx.Headers, body: bytes, secret: str) -> None:
    """The verifier exactly as the public docs (seed 001) write it, minus FastAPI's types."""
    sig_header = headers.get("x-vizochok-signature", "")
    timestamp = headers.get("x-vizochok-timestamp", "")
    if not sig_header.startswith("sha256="):
        raise PermissionError("Missing signature")
    if abs(time.time() - int(timestamp)) > 300:
        raise PermissionError("Timestamp expired")
    signed_payload = f"{timestamp}.".encode() + body
    expected = hmac.new(secret.encode(), signed_payload, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(sig_header[7:], expected):
        raise PermissionError("Invalid signature")


async def test_dispatcher_requests_pass_the_seed_docs_verifier(router: respx.Router):
    """A tenant that copied the docs' verifier accepts what the dispatcher really sends."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        seed_docs_verify(request.headers, request.content, SECRET)
        return httpx.Response(200, json={"products": []})

    router.post(PRODUCTS_URL).mock(side_effect=handler)
    store = InMemoryConfigStore()
    await store.save_config("t1", products_url=PRODUCTS_URL, cart_url=PRODUCTS_URL, secret=SECRET)
    async with Dispatcher(store, transport=httpx.MockTransport(router.async_handler)) as d:
        result = await d.check_products("t1", skus=["milk-001", "Молоко"], store_id="s1")
    assert result.failure is None
    assert len(seen) == 1
    request = seen[0]
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["accept-encoding"] == "identity"
    assert request.content == '{"skus":["milk-001","Молоко"],"store_id":"s1"}'.encode()


def test_signature_changes_with_any_byte_of_body_or_timestamp():
    """One changed byte, or a different second, gives a different signature."""
    body = b'{"skus":["a"],"store_id":"s"}'
    base = compute_signature(SECRET, 1_763_856_000, body)
    assert compute_signature(SECRET, 1_763_856_001, body) != base
    assert compute_signature(SECRET, 1_763_856_000, body.replace(b"a", b"b")) != base
    assert base.startswith("sha256=") and len(base) == len("sha256=") + 64
