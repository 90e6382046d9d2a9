"""`vizochok-dispatch events` (click's CliRunner), on SQLite and PostgreSQL: endpoints list,
create (the secret printed once), disable and enable; publish with --data; the delivery log;
the same exit codes and one-line errors as the other commands."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from vizochok_dispatch import EVENT_TYPES, Dispatcher, DispatchSettings
from vizochok_dispatch._cli import main
from vizochok_dispatch.contract._json import dumps

from .support import KEY_1, absent

ENV = {"VIZOCHOK_SECRET_KEYS": KEY_1, "VIZOCHOK_DATABASE_URL": None}
URL = "https://shop.example/hooks"

Cli = Callable[..., Result]


@pytest.fixture
def cli(database_url: str) -> Cli:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, ["--database-url", database_url, *args], env=ENV)

    assert invoke("db", "upgrade").exit_code == 0
    assert invoke("tenants", "create", "Shop", "--id", "shop").exit_code == 0
    assert invoke("tenants", "create", "Other", "--id", "other").exit_code == 0
    return invoke


def _example(event_type: str) -> str:
    """The catalog's example data as JSON text, amounts as JSON numbers."""
    return dumps(EVENT_TYPES[event_type].example).decode()


def _create(cli: Cli, tenant: str = "shop", *more: str) -> dict[str, object]:
    result = cli(
        "events",
        "endpoints",
        "create",
        tenant,
        "--url",
        URL,
        "--event-type",
        "order.*",
        *more,
        "--json",
    )
    assert result.exit_code == 0, result.output
    created: dict[str, object] = json.loads(result.stdout)
    return created


def _one_line_error(result: Result, starts: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"Error: {starts}"), (
        result.stderr
    )


def test_create_prints_the_secret_once_and_list_masks_it(cli: Cli) -> None:
    """events endpoints create/list: the secret in full at creation only; list shows it masked."""
    result = cli(
        "events",
        "endpoints",
        "create",
        "shop",
        "--url",
        URL,
        "--event-type",
        "order.*",
        "--event-type",
        "chat.session.created",
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    endpoint_id = lines[0].split()[3]
    secret = lines[1].removeprefix("Secret: ")
    assert endpoint_id.startswith("ep_") and secret.startswith("whsec_")
    listed = cli("events", "endpoints", "list", "shop")
    assert listed.exit_code == 0
    assert (
        listed.stdout == f"{endpoint_id}\tactive\t{URL}\torder.*,chat.session.created\tvizochok\n"
    )
    as_json = cli("events", "endpoints", "list", "shop", "--json")
    (shown,) = json.loads(as_json.stdout)
    assert shown["secret_masked"] == f"whsec_…{secret[-4:]}" and "secret" not in shown
    assert absent(secret, listed.output, as_json.output)
    assert cli("events", "endpoints", "list", "other").stdout == ""


def test_create_refuses_bad_fields_in_one_line(cli: Cli) -> None:
    """events endpoints create: bad URL and unknown type: exit 1, one line naming both fields."""
    result = cli(
        "events", "endpoints", "create", "shop", "--url", "ftp://x", "--event-type", "refund.*"
    )
    _one_line_error(result, "invalid")
    assert result.stderr.startswith("Error: invalid event endpoint: "), result.stderr
    assert "url:" in result.stderr and "event_types[0]:" in result.stderr
    assert "known: order.created" in result.stderr


def test_disable_and_enable_switch_the_status(cli: Cli) -> None:
    """events endpoints disable/enable: the status with its reason; enable makes it active again."""
    endpoint_id = str(_create(cli)["id"])
    disabled = cli("events", "endpoints", "disable", "shop", endpoint_id)
    assert disabled.exit_code == 0, disabled.output
    assert (
        f"{endpoint_id}\tdisabled since " in disabled.stdout
        and "(disabled by hand" in disabled.stdout
    )
    enabled = cli("events", "endpoints", "enable", "shop", endpoint_id)
    assert enabled.stdout.startswith(f"{endpoint_id}\tactive\t")


@pytest.mark.parametrize("action", ["disable", "enable"])
def test_an_unknown_or_other_tenants_endpoint_is_one_line(cli: Cli, action: str) -> None:
    """events endpoints disable/enable: another tenant's endpoint is unknown, exit 1, one line."""
    theirs = str(_create(cli, "other")["id"])
    for endpoint_id in (theirs, "ep_nope"):
        result = cli("events", "endpoints", action, "shop", endpoint_id)
        _one_line_error(result, f"no event endpoint {endpoint_id!r} for tenant 'shop'")
    listed = json.loads(cli("events", "endpoints", "list", "other", "--json").stdout)
    assert listed[0]["status"] == "active"


def test_publish_reads_data_from_a_file(cli: Cli, tmp_path: Path) -> None:
    """events publish --data @file: published to the subscribed endpoints, left to the service."""
    _create(cli)
    data = tmp_path / "order.json"
    data.write_text(_example("order.created"))
    result = cli("events", "publish", "shop", "order.created", "--data", f"@{data}")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Published evt_") and result.stdout.endswith(
        "(order.created) to 1 endpoint(s)\n"
    )
    inline = cli(
        "events",
        "publish",
        "shop",
        "chat.session.created",
        "--data",
        _example("chat.session.created"),
        "--json",
    )
    assert json.loads(inline.stdout)["deliveries"] == [], "nothing subscribes to chat.*"


@pytest.mark.parametrize(
    ("data", "starts"),
    [
        ("@/nonexistent/order.json", "--data cannot read /nonexistent/order.json"),
        ("{not json", "--data: the value given is not valid JSON"),
        ("[1, 2]", "--data: the value given must hold a JSON object"),
        ('{"id": 5}', "invalid order.created data: data.id:"),
    ],
)
def test_publish_refuses_bad_data_in_one_line(cli: Cli, data: str, starts: str) -> None:
    """events publish: unreadable, invalid or non-object data, data the schema refuses: exit 1."""
    _one_line_error(cli("events", "publish", "shop", "order.created", "--data", data), starts)


def test_publish_of_an_unknown_type_lists_the_known_ones(cli: Cli) -> None:
    """events publish: an unknown type is one line listing the known ones."""
    result = cli("events", "publish", "shop", "refund.created", "--data", "{}")
    _one_line_error(
        result, "event_type 'refund.created' is not an event type; known: order.created"
    )


def _fail_everything(database_url: str) -> None:
    """Deliver what is due once, every answer a 500, no retry (what the service would do)."""

    async def run() -> None:
        settings = DispatchSettings(
            database_url=database_url,
            secret_keys=KEY_1,
            event_worker="off",
            event_retry_schedule="none",
        )
        transport = httpx.MockTransport(lambda _request: httpx.Response(500))
        async with Dispatcher.from_settings(settings, transport=transport) as d:
            await d.events.drain(timeout=1)

    asyncio.run(run())


def test_deliveries_lists_newest_first_and_filters(cli: Cli, database_url: str) -> None:
    """events deliveries: newest first, --status failed, --json; another tenant's never shown."""
    endpoint_id = str(_create(cli)["id"])
    example = _example("order.created")
    first = json.loads(
        cli("events", "publish", "shop", "order.created", "--data", example, "--json").stdout
    )
    _fail_everything(database_url)
    second = json.loads(
        cli("events", "publish", "shop", "order.created", "--data", example, "--json").stdout
    )
    listed = cli("events", "deliveries", "shop")
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert [line.split("\t")[1] for line in lines] == [
        second["deliveries"][0]["id"],
        first["deliveries"][0]["id"],
    ]
    assert lines[0].split("\t")[2:] == [
        "pending",
        "order.created",
        endpoint_id,
        "attempts 0",
        "last -",
    ]
    assert lines[1].split("\t")[2:] == [
        "failed",
        "order.created",
        endpoint_id,
        "attempts 1",
        "last 500",
        "http_status",
    ]
    failed = json.loads(cli("events", "deliveries", "shop", "--status", "failed", "--json").stdout)
    assert [d["event_id"] for d in failed] == [first["event_id"]]
    assert failed[0]["attempts"][0]["status"] == 500
    assert cli("events", "deliveries", "other").stdout == ""


def test_a_bad_status_is_a_usage_error(cli: Cli) -> None:
    """events deliveries --status lost: click's usage error, exit 2."""
    result = cli("events", "deliveries", "shop", "--status", "lost")
    assert result.exit_code == 2 and "Usage:" in result.stderr
