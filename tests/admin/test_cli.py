"""The `vizochok-dispatch` CLI (click's CliRunner), on SQLite and PostgreSQL: migrate, tenants,
keys, secrets, serve, test-fire."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from vizochok_dispatch import DispatchSettings, SecretBox, SqlConfigStore, Tenant, TenantDirectory
from vizochok_dispatch._cli import main
from vizochok_dispatch.tenants._migrations import head_revision

from .support import KEY_1, KEY_2, LOOPBACK_NETWORKS, absent

ENV = {"VIZOCHOK_SECRET_KEYS": KEY_1, "VIZOCHOK_DATABASE_URL": None}


@pytest.fixture
def cli(database_url: str) -> Callable[..., Result]:
    """Run the CLI against this test's database, with test keys."""
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
        return runner.invoke(
            main, ["--database-url", database_url, *args], env={**ENV, **(env or {})}
        )

    upgraded = invoke("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    return invoke


def _authenticate(database_url: str, key: str) -> Tenant | None:
    async def check() -> Tenant | None:
        store = SqlConfigStore(database_url, auto_migrate=False)
        try:
            return await TenantDirectory.for_store(store).authenticate(key)
        finally:
            await store.close()

    return asyncio.run(check())


def test_db_upgrade_migrates_to_head_and_is_repeatable(cli: Callable[..., Result]) -> None:
    """CLI db upgrade: reaches head (0010: event operations) and can run again."""
    result = cli("db", "upgrade")
    assert result.exit_code == 0
    assert f"is at revision {head_revision()} (head)" in result.stdout
    assert head_revision() == "0010"


def test_tenants_create_prints_the_id_and_a_working_key_once(
    cli: Callable[..., Result], database_url: str
) -> None:
    """CLI tenants create: prints the tenant id and its API key, once; the key works."""
    result = cli("tenants", "create", "Fresh Market", "--id", "fresh")
    assert result.exit_code == 0, result.output
    assert "Created tenant fresh (Fresh Market)" in result.stdout
    keys = [word for word in result.stdout.split() if word.startswith("sk_")]
    assert len(keys) == 1
    tenant = _authenticate(database_url, keys[0])
    assert tenant is not None and tenant.id == "fresh"


def test_tenants_create_json_is_for_scripts(cli: Callable[..., Result], database_url: str) -> None:
    """CLI tenants create --json: one JSON document on stdout with the id, key id and key."""
    result = cli("tenants", "create", "Shop", "--json")
    created = json.loads(result.stdout)
    assert set(created) == {"tenant_id", "name", "key_id", "api_key"}
    assert created["tenant_id"].startswith("tn_") and created["key_id"].startswith("key_")
    tenant = _authenticate(database_url, created["api_key"])
    assert tenant is not None and tenant.id == created["tenant_id"]
    listed = cli("tenants", "list", "--json")
    assert [t["tenant_id"] for t in json.loads(listed.stdout)] == [created["tenant_id"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tenants", "create", "Again", "--id", "fresh"), "tenant 'fresh' already exists"),
        (("tenants", "create", "Bad", "--id", "no spaces"), "tenant id must be"),
        (("tenants", "create", "   "), "tenant name must be"),
        (("keys", "create", "nobody"), "no tenant 'nobody'"),
        (("calls", "nobody"), "no tenant 'nobody'"),
        (("keys", "revoke", "key_0000"), "no API key 'key_0000'"),
    ],
)
def test_refusals_exit_1_with_a_one_line_reason(
    cli: Callable[..., Result], args: tuple[str, ...], message: str
) -> None:
    """CLI errors: refused operations exit 1 with the reason on stderr, no traceback."""
    assert cli("tenants", "create", "Fresh", "--id", "fresh").exit_code == 0
    result = cli(*args)
    assert result.exit_code == 1
    assert message in result.stderr and "Traceback" not in result.output


def test_keys_create_and_revoke(cli: Callable[..., Result], database_url: str) -> None:
    """CLI keys: a second key works alongside the first; a revoked key stops at once."""
    first = json.loads(cli("tenants", "create", "Shop", "--id", "shop", "--json").stdout)
    second = json.loads(cli("keys", "create", "shop", "--json").stdout)
    assert second["api_key"] != first["api_key"]
    assert _authenticate(database_url, second["api_key"]) is not None
    revoked = cli("keys", "revoke", first["key_id"])
    assert revoked.exit_code == 0 and f"Revoked {first['key_id']} of tenant shop" in revoked.stdout
    assert _authenticate(database_url, first["api_key"]) is None
    assert _authenticate(database_url, second["api_key"]) is not None
    listing = cli("keys", "list", "shop").stdout
    assert f"{first['key_id']}\trevoked" in listing and f"{second['key_id']}\tactive" in listing
    assert absent(first["api_key"], listing) and absent(second["api_key"], listing)


def test_generate_key_prints_a_usable_keyring_line(cli: Callable[..., Result]) -> None:
    """CLI secrets generate-key: one `id:base64` line that loads as a 32-byte key."""
    result = cli("secrets", "generate-key", "--id", "k9")
    line = result.stdout.strip()
    assert SecretBox.from_keyring(line).key_ids == ("k9",)
    assert "secrets reencrypt" in result.stderr


def _save_config(database_url: str, keys: str, tenant_id: str, base: str) -> str:
    async def save() -> str:
        store = SqlConfigStore(
            database_url,
            auto_migrate=False,
            rules=DispatchSettings(
                allow_http=True,
                allowed_networks=LOOPBACK_NETWORKS,
            ).config_rules(),
            secret_box=SecretBox.from_keyring(keys),
        )
        try:
            saved = await store.save_config(
                tenant_id, products_url=f"{base}/products", cart_url=f"{base}/cart"
            )
            return saved.secret
        finally:
            await store.close()

    return asyncio.run(save())


def _raw_secrets(database_url: str) -> list[str]:
    async def read() -> list[str]:
        store = SqlConfigStore(database_url, auto_migrate=False)
        try:
            async with store.engine.connect() as conn:
                rows = await conn.execute(text("SELECT secret FROM webhook_configs"))
                return [str(row[0]) for row in rows]
        finally:
            await store.close()

    return asyncio.run(read())


def test_secrets_reencrypt_moves_every_secret_to_the_new_key(
    cli: Callable[..., Result], database_url: str
) -> None:
    """CLI secrets reencrypt: after putting k2 first, every row is re-encrypted with k2."""
    for tenant in ("a", "b"):
        _save_config(database_url, KEY_1, tenant, "http://127.0.0.1:9")
    assert all(value.startswith("v1.k1.") for value in _raw_secrets(database_url))
    result = cli("secrets", "reencrypt", env={"VIZOCHOK_SECRET_KEYS": f"{KEY_2},{KEY_1}"})
    assert result.exit_code == 0, result.output
    assert "2 secrets: 2 re-encrypted, 0 already current, 0 unreadable" in result.stdout
    assert all(value.startswith("v1.k2.") for value in _raw_secrets(database_url))


def test_secrets_reencrypt_fails_loudly_on_a_missing_key(
    cli: Callable[..., Result], database_url: str
) -> None:
    """CLI secrets reencrypt: rows under a key that is not configured make it exit 1, by tenant."""
    _save_config(database_url, KEY_2, "orphan", "http://127.0.0.1:9")
    result = cli("secrets", "reencrypt")
    assert result.exit_code == 1
    assert "orphan" in result.stderr


def test_a_malformed_key_setting_is_refused_without_echoing_it(cli: Callable[..., Result]) -> None:
    """CLI settings: a bad VIZOCHOK_SECRET_KEYS exits 1 and never prints the value."""
    material = KEY_1.split(":")[1]
    result = cli("tenants", "list", env={"VIZOCHOK_SECRET_KEYS": material})
    assert result.exit_code == 1
    assert "VIZOCHOK_SECRET_KEYS" in result.stderr
    assert absent(material, result.output)


def test_serve_refuses_production_without_keys() -> None:
    """CLI serve: a PostgreSQL deployment without VIZOCHOK_SECRET_KEYS refuses to start."""
    result = CliRunner().invoke(
        main,
        ["--database-url", "postgresql+asyncpg://vizochok@db.internal/vizochok", "serve"],
        env={"VIZOCHOK_SECRET_KEYS": None, "VIZOCHOK_DATABASE_URL": None},
    )
    assert result.exit_code == 1
    assert "VIZOCHOK_SECRET_KEYS is not set" in result.stderr


def test_serve_runs_the_admin_app_under_uvicorn(
    cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """CLI serve: builds the admin app and hands it to uvicorn with --host/--port; prints a hint."""
    import uvicorn  # noqa: PLC0415 - patched for this test only

    ran: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: ran.update(app=app, **options))
    result = cli("serve", "--host", "127.0.0.1", "--port", "8123")
    assert result.exit_code == 0, result.output
    assert (ran["host"], ran["port"]) == ("127.0.0.1", 8123)
    assert ran["app"].title == "VIZOCHOK webhook admin API"
    assert "tenants create NAME" in result.stdout and "/docs" in result.stdout


def test_serve_refuses_procrastinate_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CLI serve: VIZOCHOK_EVENT_WORKER=procrastinate on SQLite is refused in one line naming
    the setting, exit 1, before anything is served (docs/webhooks.md §10)."""
    import uvicorn  # noqa: PLC0415 - patched for this test only

    ran: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: ran.append(app))
    url = f"sqlite+aiosqlite:///{tmp_path / 'dispatch.db'}"
    runner = CliRunner()
    env = {**ENV, "VIZOCHOK_EVENT_WORKER": "procrastinate"}
    assert runner.invoke(main, ["--database-url", url, "db", "upgrade"], env=env).exit_code == 0
    result = runner.invoke(main, ["--database-url", url, "serve"], env=env)
    assert result.exit_code == 1, result.output
    assert "VIZOCHOK_EVENT_WORKER" in result.stderr and "PostgreSQL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert ran == []


class _Shop(BaseHTTPRequestHandler):
    """A tenant on 127.0.0.1 in a thread (the CLI runs its own event loop)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/broken/products":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps(
            {
                "products": [
                    {"sku": "milk-001", "price": 45.9, "in_stock": True},
                    {"sku": "milk-002", "price": "52.00", "in_stock": True},
                ]
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def shop() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Shop)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


LOOPBACK_ENV: dict[str, str | None] = {
    "VIZOCHOK_ALLOW_HTTP": "true",
    "VIZOCHOK_ALLOWED_NETWORKS": LOOPBACK_NETWORKS,
}


@pytest.mark.loopback
def test_test_fire_reports_a_real_call(
    cli: Callable[..., Result], database_url: str, shop: str
) -> None:
    """CLI test-fire: a real signed call on 127.0.0.1, reported with attempts and problems."""
    _save_config(database_url, KEY_1, "fresh", shop)
    result = cli("test-fire", "fresh", "--sku", "milk-001", "--sku", "milk-002", env=LOOPBACK_ENV)
    assert result.exit_code == 0, result.output
    assert f"test-fire products -> {shop}/products" in result.stdout
    assert "attempt 1: HTTP 200" in result.stdout
    assert "available:   milk-001 at 45.9" in result.stdout
    assert "problem: milk-002: price is a string, not a number" in result.stdout

    as_json = cli("test-fire", "fresh", "--json", env=LOOPBACK_ENV)
    report = json.loads(as_json.stdout)
    assert report["ok"] is True and report["status"] == 200 and len(report["attempts"]) == 1


@pytest.mark.loopback
def test_test_fire_exits_1_when_the_webhook_fails(
    cli: Callable[..., Result], database_url: str, shop: str
) -> None:
    """CLI test-fire: a 404 from the tenant is reported and exits 1."""
    _save_config(database_url, KEY_1, "broken", f"{shop}/broken")
    result = cli("test-fire", "broken", env=LOOPBACK_ENV)
    assert result.exit_code == 1
    assert "http_status: HTTP 404" in result.stdout and "FAILED" in result.stdout
