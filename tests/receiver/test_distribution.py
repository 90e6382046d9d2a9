"""receivers/python (the ``vizochok-receiver`` distribution) is the one verifier and signer:
the main package re-exports it, and it needs nothing beyond the standard library."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from decimal import Decimal

import httpx
import pytest
import vizochok_receiver

from vizochok_dispatch import compute_signature
from vizochok_dispatch.contract import _signing
from vizochok_dispatch.receiver import VerificationError, verify_request
from vizochok_dispatch.receiver.testing import serve_on_loopback

from ._support import REPO_ROOT, SECRET, TENANT, dispatcher_for


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


def _readme_block(framework: str) -> str:
    """The python block after ``**{framework}**`` in receivers/python/README.md."""
    text = (REPO_ROOT / "receivers" / "python" / "README.md").read_text("utf-8")
    start = text.index(f"**{framework}")
    match = re.compile(r"```python\n(.*?)\n```", re.DOTALL).search(text, start)
    assert match is not None
    return match.group(1)


@pytest.mark.loopback
async def test_the_readmes_fastapi_quickstart_serves_the_dispatcher(tmp_path, monkeypatch) -> None:
    """The FastAPI block of receivers/python/README.md, pasted, answers a signed products call
    from the real dispatcher and refuses a forged one with 401 and its code."""
    path = tmp_path / "quickstart_fastapi.py"
    path.write_text(_readme_block("FastAPI"), "utf-8")
    monkeypatch.setenv("VIZOCHOK_WEBHOOK_SECRET", f"{SECRET},whsec_old_secret_being_rolled")
    spec = importlib.util.spec_from_file_location("quickstart_fastapi", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    async with serve_on_loopback(module.app) as base:
        async with dispatcher_for(base) as dispatcher:
            products = await dispatcher.check_products(TENANT, skus=["milk-001"], store_id="s-1")
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            forged = await client.post(
                "/api/vizochok/check-products",
                content=b'{"skus":["a"],"store_id":"s"}',
                headers={"X-VIZOCHOK-Timestamp": "1", "X-VIZOCHOK-Signature": "sha256=" + "0" * 64},
            )
    assert [(p.sku, p.price) for p in products.available] == [("milk-001", Decimal("45.9"))]
    assert (forged.status_code, forged.json()) == (401, {"error": "timestamp_expired"})
