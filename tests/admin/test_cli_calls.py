"""`vizochok-dispatch calls TENANT` (issue 13): the tenant's call log for operators, on SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from itertools import count

import httpx
import pytest
import respx
from click.testing import CliRunner, Result

from tests.support.fakes import FakeTime
from vizochok_dispatch import Dispatcher
from vizochok_dispatch._cli import main

from .support import KEY_1, SHOP_A, admin_settings_for

ENV = {"VIZOCHOK_SECRET_KEYS": KEY_1, "VIZOCHOK_DATABASE_URL": None}


@pytest.fixture
def cli(database_url: str) -> Callable[..., Result]:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, ["--database-url", database_url, *args], env=ENV)

    assert invoke("db", "upgrade").exit_code == 0
    return invoke


def _log_calls(database_url: str) -> list[str]:
    """Tenant ``shop`` makes a failed call (500 twice), a sampled success and a timeout; the
    dispatcher's close writes them.  Their delivery ids, oldest first."""
    router = respx.Router()
    router.post(f"{SHOP_A}/vizochok/products").mock(
        side_effect=[
            httpx.Response(500, text="down"),
            httpx.Response(500, text="still down"),
            httpx.Response(200, json={"products": []}),
            httpx.ReadTimeout("slow"),
        ]
    )
    time = FakeTime()
    draws = count()

    async def run() -> list[str]:
        dispatcher = Dispatcher.from_settings(
            admin_settings_for(database_url, event_worker="off", call_log_sample_rate=0.5),
            transport=httpx.MockTransport(router.async_handler),
            clock=time.clock,
            sleep=time.sleep,
            call_log_random=lambda: 0.0 if next(draws) == 0 else 1.0,  # the first success only
        )
        ids = []
        async with dispatcher:
            await dispatcher.store.save_config(
                "shop",
                products_url=f"{SHOP_A}/vizochok/products",
                cart_url=f"{SHOP_A}/vizochok/cart",
            )
            for _ in range(3):
                _, delivery = await dispatcher.check_products_with_delivery(
                    "shop", skus=["a"], store_id="s"
                )
                assert delivery is not None
                ids.append(delivery.delivery_id)
                time.now += 1
        return ids

    return asyncio.run(run())


def test_calls_lists_the_log_newest_first(cli: Callable[..., Result], database_url: str) -> None:
    """CLI calls: one line per call, newest first, with detail, attempts and delivery id."""
    failed, sampled, timed_out = _log_calls(database_url)
    result = cli("calls", "shop")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert "products  timeout  attempts: timeout in 0 ms" in lines[0]
    assert lines[0].endswith(f"delivery {timed_out}")
    assert "products  ok  attempts: 200 in 0 ms" in lines[1] and sampled in lines[1]
    assert "http_status  attempts: 500 in 0 ms, 500 in 0 ms" in lines[2] and failed in lines[2]


def test_calls_failed_and_json(cli: Callable[..., Result], database_url: str) -> None:
    """CLI calls --failed --json: the failed calls only, each with its attempts and answer."""
    failed, _, timed_out = _log_calls(database_url)
    result = cli("calls", "shop", "--failed", "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [call["delivery_id"] for call in listed] == [timed_out, failed]
    assert [a["status"] for a in listed[1]["attempts"]] == [500, 500]
    assert listed[1]["response"] == "still down"
    assert listed[1]["outcome"] == "failed" and listed[1]["detail"] == "http_status"


def test_calls_of_one_webhook(cli: Callable[..., Result], database_url: str) -> None:
    """CLI calls --webhook: only that webhook's calls (an unknown name is a usage error)."""
    _log_calls(database_url)
    assert cli("calls", "shop", "--webhook", "cart").stdout == ""
    assert len(cli("calls", "shop", "--webhook", "products").stdout.splitlines()) == 3
    assert cli("calls", "shop", "--webhook", "orders").exit_code == 2


def test_calls_of_a_tenant_with_none_prints_nothing(cli: Callable[..., Result]) -> None:
    """CLI calls: a known tenant with no calls logged prints nothing and exits 0."""
    assert cli("tenants", "create", "Shop", "--id", "quiet").exit_code == 0
    result = cli("calls", "quiet")
    assert (result.exit_code, result.stdout) == (0, "")
