"""vizochok-receiver verifies as docs/webhooks.md §2 says (standard library only: unittest).

Run from the repository root: ``python -m unittest discover -s receivers/python/tests -v``.
The vectors: ``$VIZOCHOK_SIGNATURE_VECTORS``, else the repository's docs/signature-vectors.json.
"""

from __future__ import annotations

import json
import os
import unittest
from pathlib import Path

from vizochok_receiver import (
    MalformedHeader,
    MissingHeader,
    SignatureMismatch,
    TimestampExpired,
    TimestampInFuture,
    VerificationError,
    signature_headers,
    verify_request,
)

VECTORS = Path(
    os.environ.get("VIZOCHOK_SIGNATURE_VECTORS")
    or Path(__file__).resolve().parents[3] / "docs" / "signature-vectors.json"
)
SECRET = "whsec_python_receiver_secret_01"
BODY = b'{"skus":["milk-001"],"store_id":"store-1"}'
NOW = 1_763_856_000


class Vectors(unittest.TestCase):
    """Every published vector is accepted or refused as it says."""

    def test_every_vector(self) -> None:
        """Valid vectors verify at their own time; every other one is refused."""
        vectors = json.loads(VECTORS.read_text("utf-8"))["vectors"]
        self.assertTrue(vectors)
        for vector in vectors:
            with self.subTest(vector["name"]):
                headers = {
                    "X-VIZOCHOK-Signature": vector["x_vizochok_signature"],
                    "X-VIZOCHOK-Timestamp": vector["x_vizochok_timestamp"],
                }
                body = vector["body_utf8"].encode()
                if vector["valid"]:
                    now = vector["timestamp"]
                    verified = verify_request(headers, body, vector["secret"], now=now)
                    self.assertEqual(verified.timestamp, now)
                else:
                    with self.assertRaises(VerificationError):
                        verify_request(headers, body, vector["secret"], now=vector["timestamp"])


class Rules(unittest.TestCase):
    """The clock window, secret rolling and the header rules."""

    def test_the_window_is_300_seconds_both_ways(self) -> None:
        """300 s old verifies; 301 s old or ahead is refused with its own error."""
        headers = signature_headers(SECRET, NOW, BODY)
        verify_request(headers, BODY, SECRET, now=NOW + 300)
        with self.assertRaises(TimestampExpired):
            verify_request(headers, BODY, SECRET, now=NOW + 301)
        with self.assertRaises(TimestampInFuture):
            verify_request(headers, BODY, SECRET, now=NOW - 301)

    def test_a_list_of_secrets_says_which_matched(self) -> None:
        """While rolling, the old secret still verifies, as index 1."""
        headers = signature_headers("whsec_old_secret_00000000", NOW, BODY)
        verified = verify_request(headers, BODY, [SECRET, "whsec_old_secret_00000000"], now=NOW)
        self.assertEqual(verified.secret_index, 1)

    def test_refusals_name_their_code(self) -> None:
        """A changed body, a missing or malformed header each get their code."""
        headers = signature_headers(SECRET, NOW, BODY)
        with self.assertRaises(SignatureMismatch) as caught:
            verify_request(headers, BODY + b" ", SECRET, now=NOW)
        self.assertEqual(caught.exception.code, "signature_mismatch")
        self.assertNotIn(SECRET, str(caught.exception))
        with self.assertRaises(MissingHeader):
            verify_request({"X-VIZOCHOK-Timestamp": str(NOW)}, BODY, SECRET, now=NOW)
        with self.assertRaises(MalformedHeader):
            verify_request({**headers, "X-VIZOCHOK-Timestamp": f"0{NOW}"}, BODY, SECRET, now=NOW)

    def test_a_parsed_body_is_a_programming_error(self) -> None:
        """Only the raw bytes verify: a str body raises TypeError."""
        with self.assertRaises(TypeError):
            text: object = BODY.decode()
            verify_request(signature_headers(SECRET, NOW, BODY), text, SECRET, now=NOW)  # type: ignore[arg-type]


if __name__ == "__main__":
    unittest.main()
