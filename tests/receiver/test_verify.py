"""``verify_request``: each refusal is precise, nothing leaks the secret, rotation works."""

from __future__ import annotations

import json

import pytest
from starlette.datastructures import Headers

from vizochok_dispatch import compute_signature
from vizochok_dispatch.receiver import (
    MalformedHeader,
    MissingHeader,
    SignatureMismatch,
    TimestampExpired,
    TimestampInFuture,
    TimestampOutOfRange,
    VerificationError,
    verify_request,
)

from ._support import NOW, OLD_SECRET, SECRET, signed_headers

BODY = b'{"skus":["milk-001"],"store_id":"store-1"}'


def test_accepts_a_request_signed_by_the_package() -> None:
    """docs/webhooks.md §2: a request signed with the secret verifies and reports its metadata."""
    verified = verify_request(signed_headers(BODY), BODY, SECRET, now=NOW)
    assert verified.timestamp == NOW
    assert verified.secret_index == 0
    assert verified.delivery_id == "delivery-0001"
    assert verified.attempt == 1


@pytest.mark.parametrize("shift", [-300, 0, 300])
def test_accepts_timestamps_up_to_the_tolerance(shift: int) -> None:
    """docs/webhooks.md §2: a timestamp within 300 s either way is accepted."""
    verify_request(signed_headers(BODY), BODY, SECRET, now=NOW + shift)


def test_refuses_a_timestamp_301_seconds_old() -> None:
    """webhooks.md §2: more than 300 s old is refused as expired, with the skew in the error."""
    with pytest.raises(TimestampExpired) as caught:
        verify_request(signed_headers(BODY), BODY, SECRET, now=NOW + 301)
    assert caught.value.skew_seconds == 301
    assert caught.value.code == "timestamp_expired"
    assert isinstance(caught.value, TimestampOutOfRange)


def test_refuses_a_timestamp_301_seconds_ahead() -> None:
    """docs/webhooks.md §2: more than 300 s in the future is refused as such."""
    with pytest.raises(TimestampInFuture) as caught:
        verify_request(signed_headers(BODY), BODY, SECRET, now=NOW - 301)
    assert caught.value.skew_seconds == -301


def test_tolerance_is_adjustable() -> None:
    """A receiver may narrow the window; the same request then expires sooner."""
    with pytest.raises(TimestampExpired):
        verify_request(signed_headers(BODY), BODY, SECRET, now=NOW + 31, tolerance=30)


@pytest.mark.parametrize("missing", ["X-VIZOCHOK-Signature", "X-VIZOCHOK-Timestamp"])
def test_refuses_a_missing_signing_header(missing: str) -> None:
    """A request without either signing header is refused, naming the header."""
    headers = {k: v for k, v in signed_headers(BODY).items() if k != missing}
    with pytest.raises(MissingHeader) as caught:
        verify_request(headers, BODY, SECRET, now=NOW)
    assert caught.value.header == missing


@pytest.mark.parametrize(
    "timestamp",
    ["", " 1763856000", "+1763856000", "01763856000", "1763856000.0", "-5", "١٧٦٣٨٥٦٠٠٠", "1e9"],
)
def test_refuses_a_timestamp_not_in_canonical_digits(timestamp: str) -> None:
    """The timestamp must be the exact digits the signer MACed; int()-tolerant forms are not."""
    headers = signed_headers(BODY)
    headers["X-VIZOCHOK-Timestamp"] = timestamp
    with pytest.raises(MalformedHeader) as caught:
        verify_request(headers, BODY, SECRET, now=NOW)
    assert caught.value.header == "X-VIZOCHOK-Timestamp"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s.removeprefix("sha256="),
        lambda s: s.upper().replace("SHA256=", "sha256="),
        lambda s: s[:-1],
        lambda s: s + "0",
        lambda s: "sha1=" + s[7:],
        lambda s: s + ",sha256=" + "0" * 64,
    ],
    ids=["no-prefix", "uppercase-hex", "short", "long", "other-algorithm", "two-values"],
)
def test_refuses_a_signature_not_in_the_contract_form(mangle) -> None:
    """webhooks.md §2: the signature is ``sha256=`` plus 64 lowercase hex digits, nothing else."""
    headers = signed_headers(BODY)
    headers["X-VIZOCHOK-Signature"] = mangle(headers["X-VIZOCHOK-Signature"])
    with pytest.raises(MalformedHeader):
        verify_request(headers, BODY, SECRET, now=NOW)


def test_refuses_a_signing_header_sent_twice() -> None:
    """Two signature headers are ambiguous, so the request is refused."""
    signed = signed_headers(BODY)
    headers = Headers(
        raw=[(k.lower().encode(), v.encode()) for k, v in signed.items()]
        + [(b"x-vizochok-signature", ("sha256=" + "0" * 64).encode())]
    )
    with pytest.raises(MalformedHeader, match="once"):
        verify_request(headers, BODY, SECRET, now=NOW)


@pytest.mark.parametrize("index", [0, len(BODY) // 2, len(BODY) - 1])
def test_refuses_a_body_with_one_byte_changed(index: int) -> None:
    """docs/webhooks.md §2: the MAC covers every body byte; any single change is refused."""
    tampered = bytearray(BODY)
    tampered[index] ^= 0x01
    with pytest.raises(SignatureMismatch):
        verify_request(signed_headers(BODY), bytes(tampered), SECRET, now=NOW)


def test_refuses_reserialised_json() -> None:
    """The raw bytes are verified: the same JSON written again by a parser does not verify."""
    pretty = b'{\n  "skus": ["a", "b"],\n  "store_id": "s"\n}'
    headers = signed_headers(pretty)
    verify_request(headers, pretty, SECRET, now=NOW)
    rewritten = json.dumps(json.loads(pretty)).encode()
    with pytest.raises(SignatureMismatch):
        verify_request(headers, rewritten, SECRET, now=NOW)


def test_refuses_a_wrong_secret() -> None:
    """A request signed with another secret is refused; the error says how many were tried."""
    with pytest.raises(SignatureMismatch) as caught:
        verify_request(signed_headers(BODY, secret=OLD_SECRET), BODY, SECRET, now=NOW)
    assert caught.value.secrets_tried == 1


def test_rotation_accepts_old_and_new_secret_and_says_which() -> None:
    """Secret rolling: with [new, old] both verify, and ``secret_index`` tells them apart."""
    both = [SECRET, OLD_SECRET]
    assert verify_request(signed_headers(BODY), BODY, both, now=NOW).secret_index == 0
    old = verify_request(signed_headers(BODY, secret=OLD_SECRET), BODY, both, now=NOW)
    assert old.secret_index == 1
    with pytest.raises(SignatureMismatch) as caught:
        verify_request(
            signed_headers(BODY, secret="whsec_some_third_secret_xx"), BODY, both, now=NOW
        )
    assert caught.value.secrets_tried == 2


def test_header_names_are_case_insensitive() -> None:
    """HTTP header names have no case; a lower-cased dict (as Node or ASGI give) verifies."""
    lowered = {k.lower(): v for k, v in signed_headers(BODY).items()}
    verify_request(lowered, BODY, SECRET, now=NOW)


def test_an_empty_get_body_verifies() -> None:
    """docs/webhooks.md §2: a GET is signed over ``"{timestamp}."`` alone."""
    headers = {
        "X-VIZOCHOK-Timestamp": str(NOW),
        "X-VIZOCHOK-Signature": compute_signature(SECRET, NOW, b""),
    }
    verify_request(headers, b"", SECRET, now=NOW)


def test_errors_never_carry_the_secret_or_the_expected_signature() -> None:
    """No refusal's message, args or attributes contain the secret or the right signature."""
    expected = compute_signature(SECRET, NOW, BODY)
    cases = [
        ({}, NOW),
        ({**signed_headers(BODY), "X-VIZOCHOK-Timestamp": "x"}, NOW),
        (signed_headers(BODY), NOW + 999),
        (signed_headers(BODY, secret=OLD_SECRET), NOW),
    ]
    for headers, now in cases:
        with pytest.raises(VerificationError) as caught:
            verify_request(headers, BODY, SECRET, now=now)
        shown = repr(caught.value) + str(caught.value) + repr(vars(caught.value))
        assert SECRET not in shown
        assert expected[7:] not in shown


def test_refuses_misuse_loudly() -> None:
    """Programming errors raise TypeError/ValueError, not a verification failure."""
    headers = signed_headers(BODY)
    with pytest.raises(TypeError, match="raw request bytes"):
        verify_request(headers, BODY.decode(), SECRET, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one secret"):
        verify_request(headers, BODY, [], now=NOW)
    with pytest.raises(TypeError, match="secret #1"):
        verify_request(headers, BODY, [SECRET, ""], now=NOW)
    with pytest.raises(ValueError, match="tolerance"):
        verify_request(headers, BODY, SECRET, now=NOW, tolerance=-1)


def test_uses_the_wall_clock_when_now_is_not_given() -> None:
    """Without ``now`` the real clock is used, so a 2025 timestamp is long expired."""
    with pytest.raises(TimestampExpired):
        verify_request(signed_headers(BODY), BODY, SECRET)
