"""``python -m vizochok_dispatch.demo`` runs end to end and its checks really check."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from vizochok_dispatch.demo import _events, _shop, run_demo
from vizochok_dispatch.demo._run import _open_dispatcher
from vizochok_dispatch.demo._transcript import Transcript

pytestmark = pytest.mark.loopback

KEY_LINES = [
    "== Setup: tenants configure their webhooks through the admin API",
    "/panel/ (sign in with a tenant's API key; HTTP 200)",
    "PATCH /api/v1/admin/webhooks as fresh-market  -> HTTP 200, secret whsec_…",
    "full secret: None",
    "PATCH refused -> HTTP 422 timeout_seconds: must be between 0.1 and 30.0 seconds",
    "GET with an unknown key -> HTTP 401 unauthorized",
    "== 1. Product check at fresh-market",
    "unavailable kefir-003",
    "52.00 -> 42.00 (-19%)",
    'add 1 x kefir-003 (out of stock) -> {"ok": false, "reason": "out_of_stock"}',
    "attempt 1: HTTP 503",
    "attempt 2: HTTP 200",
    "cut off after 1.",
    "failure=timeout",
    "load again -> loaded=True, 0 items",
    "HTTP 401",
    "== 7. Test-fire through the admin API",
    "POST /api/v1/admin/webhooks/test as sloppy-market -> HTTP 200",
    "problem: milk-002: price is a string, not a number",
    "== Conformance check of fresh-market's backend",
    "12 passed, 0 failed, 0 skipped: all passed",
    "== The call log: each tenant reads its own failed calls",
    "products timeout: timeout after 1",
    "no API key appears anywhere in this transcript",
    "== 8. Event webhooks: fresh-market subscribes to order.*",
    "publish chat.session.created -> 0 deliveries",
    "the tenant's on_event got OrderCreatedEvent ORD-DEMO-0001",
    "== 9. Event webhooks: flaky-market's handler fails twice (retries 50ms,50ms)",
    "attempt 3: HTTP 200",
    "endpoint: enabled=False, reason: the endpoint answered 410 Gone",
    "== 11. Event webhooks: a worker restart loses nothing",
    "delivery pending; the dispatcher closes",
]


def test_the_demo_module_exits_0_with_a_full_transcript(tmp_path: Path) -> None:
    """The real entry point: exit 0, every step (admin API included) shown, no failed check."""
    completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [sys.executable, "-m", "vizochok_dispatch.demo", "--db-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=90,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    transcript = completed.stdout
    assert completed.returncode == 0, transcript + completed.stderr
    for line in KEY_LINES:
        assert line in transcript
    assert "✗" not in transcript
    assert transcript.rstrip().endswith(" passed, 0 failed")
    assert (tmp_path / "vizochok.db").is_file()
    assert (tmp_path / "vizochok.db.keys").is_file(), "the embedded default's key file"
    assert completed.stderr == ""


async def test_the_demo_fails_when_the_tenant_breaks_the_contract(monkeypatch) -> None:
    """The demo's checks bite: with kefir in stock, its out-of-stock checks fail and it exits 1."""
    kefir = dataclasses.replace(_shop.CATALOG["kefir-003"], stock=5, price=Decimal("38.50"))
    monkeypatch.setitem(_shop.CATALOG, "kefir-003", kefir)
    lines: list[str] = []
    assert await run_demo(lines.append) == 1
    failed = [line for line in lines if "✗" in line]
    assert any("out of stock (kefir-003)" in line for line in failed)
    assert any("refusal reason is passed on" in line for line in failed)
    assert lines[-1].endswith("failed") and not lines[-1].endswith(" 0 failed")


async def test_the_event_checks_fail_when_retries_run_out(monkeypatch, tmp_path: Path) -> None:
    """The event steps' checks bite: with one retry only, the flaky shop's event is not
    delivered and the retry checks fail, while the other event checks still hold."""
    monkeypatch.setattr(_events, "RETRY_SCHEDULE", "50ms")
    monkeypatch.setattr(_events, "WAIT_SECONDS", 1.0)
    lines: list[str] = []
    transcript = Transcript(lines.append)
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    await _events.run_events(transcript, _events.EventTenants(), url, _open_dispatcher)
    assert transcript.failed == [
        "two failures are retried on the schedule; attempt 3 is delivered",
        "all three attempts carry the same delivery id, numbered 1, 2, 3",
        "the tenant's handler ran to the end once",
    ]
    assert any("410 disables the endpoint at once" in line for line in lines)
    assert any("the new worker delivered the pending event" in line for line in lines)
