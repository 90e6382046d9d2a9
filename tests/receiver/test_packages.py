"""The Node.js and Go receiver packages (``receivers/``): their own tests pass on the contract's
vectors, and their quickstart servers, started as their READMEs say, answer real signed calls
and events from the dispatcher on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.events.support import settings_for
from vizochok_dispatch import Dispatcher
from vizochok_dispatch.events._catalog import EVENT_TYPES

from ._support import (
    REPO_ROOT,
    SECRET,
    TENANT,
    dispatcher_for,
    load_vectors,
    signed_headers,
    vectors_path,
)

RECEIVERS = REPO_ROOT / "receivers"
#: Set (as CI should) to turn a missing ``node`` or ``go`` into a failure instead of a skip.
REQUIRE_ENV = "VIZOCHOK_REQUIRE_EXAMPLE_TOOLCHAINS"
#: Go offline: Debian's toolchain, no module downloads.
GO_ENV = {"GOPROXY": "off", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
EVENT_SECRET = "whsec_" + base64.b64encode(bytes(range(40, 72))).decode()
OLD_SECRET = "whsec_old_secret_being_rolled"


def _tool(name: str) -> str:
    """The tool's path; skip (or fail, under ``REQUIRE_ENV``) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed; the {name} receiver is unchecked"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{message} ({REQUIRE_ENV} is set)")
        pytest.skip(message)
    return path


def _go_env(tmp_path: Path) -> dict[str, str]:
    env = dict(GO_ENV)
    if not any(os.environ.get(name) for name in ("GOCACHE", "XDG_CACHE_HOME", "HOME")):
        env["GOCACHE"] = str(tmp_path / "gocache")  # go refuses to run without a cache dir
    return env


def _run(command: list[str], cwd: os.PathLike[str] | str, env: dict[str, str]) -> str:
    completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
        command,
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    return output


def test_node_package_passes_every_vector() -> None:
    """``node --test`` in receivers/node accepts and refuses exactly as the vectors say."""
    node = _tool("node")
    env = {"VIZOCHOK_SIGNATURE_VECTORS": str(vectors_path())}
    output = _run([node, "--test"], RECEIVERS / "node", env)
    assert output.count("ok ") - output.count("not ok ") > len(load_vectors())
    assert len(re.findall(r"^ok \d+ - vector: ", output, re.MULTILINE)) == len(load_vectors())
    assert re.search(r"^# fail 0$", output, re.MULTILINE), output


def test_go_module_passes_every_vector(tmp_path: Path) -> None:
    """``go test ./...`` in receivers/go passes every vector (offline: no module downloads)."""
    go = _tool("go")
    env = {"VIZOCHOK_SIGNATURE_VECTORS": str(vectors_path()), **_go_env(tmp_path)}
    output = _run([go, "test", "-count=1", "-v", "./..."], RECEIVERS / "go", env)
    assert output.count("--- PASS: TestEveryVector/") == len(load_vectors())
    assert "--- PASS: TestMiddlewareOnceReplaysAndAFailureKeepsNothing" in output
    assert "FAIL" not in output


# -- the quickstart servers against the real dispatcher -------------------------------------


@contextlib.asynccontextmanager
async def _serve(
    argv: list[str], cwd: Path, env: dict[str, str]
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """Start a quickstart server on a free loopback port; its base URL, then stop it."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env={**os.environ, "PORT": "0", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(120):  # go run compiles first
            first = (await process.stdout.readline()).decode()
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+)\s*", first)
        assert match, first
        yield match.group(1), process
    finally:
        if process.returncode is None:
            process.terminate()
        async with asyncio.timeout(30):
            await process.wait()


async def _event_lines(process: asyncio.subprocess.Process, count: int) -> list[str]:
    """The next ``count`` lines the server printed (bounded in time)."""
    assert process.stdout is not None
    async with asyncio.timeout(30):
        return [(await process.stdout.readline()).decode().strip() for _ in range(count)]


async def _exercise(base: str, process: asyncio.subprocess.Process, scheme: str, tmp: Path):
    """Products, cart (a retried delivery id applied once), cart GET, a forged call, events."""
    async with dispatcher_for(base) as dispatcher:
        products = await dispatcher.check_products(
            TENANT, skus=["milk-001", "caviar-001"], store_id="store-1"
        )
        added = await dispatcher.cart_add(
            TENANT,
            store_id="store-1",
            session_id="u 1 ß",
            sku="milk-001",
            name="Молоко",
            quantity=2,
            price="45.90",
        )
        refused = await dispatcher.cart_add(
            TENANT,
            store_id="store-1",
            session_id="u 1 ß",
            sku="caviar-001",
            name="Ікра",
            quantity=1,
            price=999,
        )
        loaded = await dispatcher.load_cart(TENANT, store_id="store-1", session_id="u 1 ß")
    assert [(o.sku, o.price) for o in products.available] == [("milk-001", Decimal("45.90"))]
    assert products.unavailable == ("caviar-001",)
    assert added.as_payload() == {"ok": True}
    assert refused.as_payload() == {"ok": False, "reason": "out_of_stock"}
    assert loaded.loaded
    assert [(i.sku, i.quantity, i.price) for i in loaded.items] == [
        ("milk-001", Decimal(2), Decimal("45.90"))
    ]

    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        forged = await client.post(
            "/api/vizochok/check-products",
            content=b'{"skus":["milk-001"],"store_id":"store-1"}',
            headers={
                "X-VIZOCHOK-Timestamp": "1763856000",
                "X-VIZOCHOK-Signature": "sha256=" + "0" * 64,
            },
        )
    assert forged.status_code == 401
    assert forged.json()["error"] in {"timestamp_expired", "signature_mismatch"}

    settings = settings_for(f"sqlite+aiosqlite:///{tmp / 'events.db'}", event_worker="off")
    async with Dispatcher.from_settings(settings) as events:
        await events.events.create_endpoint(
            TENANT,
            url=base + "/api/vizochok/events",
            event_types=["order.*"],
            signature_scheme=scheme,
            secret=EVENT_SECRET,
        )
        published = await events.events.publish(
            TENANT, "order.created", data=dict(EVENT_TYPES["order.created"].example)
        )
        report = await events.events.drain(timeout=60)
        [delivery] = await events.events.deliveries(TENANT)
    assert (report.attempts, delivery.status) == (1, "delivered")
    assert await _event_lines(process, 1) == [f"event order.created {published.id}"]


def _server_env(scheme: str) -> dict[str, str]:
    return {
        "VIZOCHOK_WEBHOOK_SECRET": f"{SECRET},{OLD_SECRET}",
        "VIZOCHOK_EVENT_SECRET": EVENT_SECRET,
        "VIZOCHOK_EVENT_SCHEME": scheme,
    }


SCHEMES = ["vizochok", "standard-webhooks"]


@pytest.mark.loopback
@pytest.mark.parametrize("scheme", SCHEMES)
async def test_node_quickstart_serves_the_dispatcher(scheme: str, tmp_path: Path) -> None:
    """``node examples/server.js`` (the README's quickstart) answers the dispatcher's calls and
    events, refuses a forged call, and loads the cart it was given."""
    node = _tool("node")
    argv = [node, "examples/server.js"]
    async with _serve(argv, RECEIVERS / "node", _server_env(scheme)) as (base, process):
        await _exercise(base, process, scheme, tmp_path)


@pytest.mark.loopback
@pytest.mark.parametrize("scheme", SCHEMES)
async def test_go_quickstart_serves_the_dispatcher(scheme: str, tmp_path: Path) -> None:
    """``go run ./examples/quickstart`` (the README's quickstart) answers the dispatcher's calls
    and events, refuses a forged call, and loads the cart it was given."""
    go = _tool("go")
    binary = tmp_path / "quickstart"
    _run(
        [go, "build", "-o", str(binary), "./examples/quickstart"],
        RECEIVERS / "go",
        _go_env(tmp_path),
    )
    env = {**_go_env(tmp_path), **_server_env(scheme)}
    async with _serve([str(binary)], RECEIVERS / "go", env) as (base, process):
        await _exercise(base, process, scheme, tmp_path)


@pytest.mark.loopback
async def test_a_retried_cart_delivery_is_applied_once_by_both_servers(tmp_path: Path) -> None:
    """The same signed cart call sent twice with one delivery id gets the same answer, and the
    cart holds the quantity once (Node and Go quickstarts)."""
    servers: list[tuple[list[str], Path, dict[str, str]]] = []
    if shutil.which("node"):
        servers.append(([_tool("node"), "examples/server.js"], RECEIVERS / "node", {}))
    if shutil.which("go"):
        binary = tmp_path / "quickstart"
        _run(
            [_tool("go"), "build", "-o", str(binary), "./examples/quickstart"],
            RECEIVERS / "go",
            _go_env(tmp_path),
        )
        servers.append(([str(binary)], RECEIVERS / "go", _go_env(tmp_path)))
    if not servers:
        _tool("node")
    body = (
        b'{"action":"add","store_id":"s","session_id":"u","sku":"milk-001",'
        b'"name":"M","quantity":1,"price":45.9}'
    )
    for argv, cwd, env in servers:
        async with _serve(argv, cwd, {**env, **_server_env("vizochok")}) as (base, _):
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                answers = []
                for _ in range(2):
                    headers = signed_headers(body, timestamp=int(time.time()), delivery_id="d-77")
                    answers.append(
                        await client.post("/api/vizochok/cart", content=body, headers=headers)
                    )
            assert [a.json() for a in answers] == [{"ok": True}, {"ok": True}], argv
            assert answers[1].headers["idempotent-replay"] == "true"
            async with dispatcher_for(base) as dispatcher:
                loaded = await dispatcher.load_cart(TENANT, store_id="s", session_id="u")
            assert [i.quantity for i in loaded.items] == [Decimal(1)], argv
