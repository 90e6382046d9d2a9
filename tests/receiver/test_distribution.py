"""receivers/python (the ``vizochok-receiver`` distribution) is the one verifier and signer:
the main package re-exports it, and it needs nothing beyond the standard library."""

from __future__ import annotations

import json
import subprocess
import sys

import vizochok_receiver

from vizochok_dispatch import compute_signature
from vizochok_dispatch.contract import _signing
from vizochok_dispatch.receiver import VerificationError, verify_request

from ._support import REPO_ROOT


def test_the_main_package_uses_the_distribution_not_a_copy() -> None:
    """The kit's verifier, its errors and the dispatcher's signer are the distribution's."""
    assert verify_request is vizochok_receiver.verify_request
    assert VerificationError is vizochok_receiver.VerificationError
    assert compute_signature is vizochok_receiver.compute_signature
    assert _signing.signature_headers is vizochok_receiver.signature_headers
    assert (
        not (REPO_ROOT / "vizochok_dispatch" / "receiver" / "_verify.py")
        .read_text("utf-8")
        .count("def ")
    )


def test_the_distribution_imports_only_the_standard_library() -> None:
    """Importing vizochok_receiver loads no module outside the standard library."""
    probe = (
        "import sys, json; before = set(sys.modules); import vizochok_receiver; "
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [sys.executable, "-I", "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(json.loads(completed.stdout))
    assert "vizochok_receiver" in loaded
    outside = loaded - {"vizochok_receiver"} - set(sys.stdlib_module_names)
    assert outside == set(), outside
