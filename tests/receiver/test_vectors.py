"""The Python verifier against every case of the contract's ``signature-vectors.json``."""

from __future__ import annotations

from typing import Any

import pytest

from vizochok_dispatch import compute_signature
from vizochok_dispatch.receiver import (
    MalformedHeader,
    SignatureMismatch,
    VerificationError,
    verify_request,
)

from ._support import load_vectors

VECTORS = load_vectors()


def _headers(case: dict[str, Any]) -> dict[str, str]:
    return {
        "X-VIZOCHOK-Signature": case["x_vizochok_signature"],
        "X-VIZOCHOK-Timestamp": case["x_vizochok_timestamp"],
    }


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_verifier_agrees_with_every_vector(case: dict[str, Any]) -> None:
    """webhooks.md §2: each vector verifies exactly when marked valid (now = its timestamp)."""
    body = case["body_utf8"].encode("utf-8")
    if case["valid"]:
        verified = verify_request(_headers(case), body, case["secret"], now=case["timestamp"])
        assert verified.timestamp == case["timestamp"]
    else:
        with pytest.raises(VerificationError) as caught:
            verify_request(_headers(case), body, case["secret"], now=case["timestamp"])
        expected = MalformedHeader if "prefix" in case["name"] else SignatureMismatch
        assert type(caught.value) is expected
        assert case["secret"] not in repr(caught.value.args)


@pytest.mark.parametrize(
    "case", [c for c in VECTORS if c["valid"]], ids=[c["name"] for c in VECTORS if c["valid"]]
)
def test_signer_reproduces_every_valid_vector(case: dict[str, Any]) -> None:
    """webhooks.md §2: the package's signer yields the vector's signature and signed payload."""
    body = case["body_utf8"].encode("utf-8")
    assert (
        compute_signature(case["secret"], case["timestamp"], body) == case["x_vizochok_signature"]
    )
    assert f"{case['timestamp']}.".encode() + body == case["signed_payload_utf8"].encode("utf-8")


def test_vectors_cover_valid_and_invalid_cases() -> None:
    """The spec file still has both kinds of case, so the checks above prove something."""
    assert {c["valid"] for c in VECTORS} == {True, False}
    assert len(VECTORS) >= 9
