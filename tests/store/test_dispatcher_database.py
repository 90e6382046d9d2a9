"""``Dispatcher.from_database_url``: the embedded SQLite default migrates itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from vizochok_dispatch import Dispatcher, SqlConfigStore

from .helpers import TENANT


@pytest.fixture(autouse=True)
def _no_deployment_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VIZOCHOK_DATABASE_URL", "VIZOCHOK_AUTO_MIGRATE", "VIZOCHOK_ALLOW_HTTP"):
        monkeypatch.delenv(name, raising=False)


async def test_from_database_url_migrates_and_round_trips(tmp_path: Path) -> None:
    """Dispatcher: from_database_url(sqlite) as `async with` migrates; its store saves and reads."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    async with Dispatcher.from_database_url(url, allow_http=True) as dispatcher:
        saved = await dispatcher.store.save_config(
            TENANT,
            products_url="http://shop.example:8080/products",
            cart_url="http://shop.example:8080/cart",
            timeout_seconds=2.5,
        )
        assert saved.version == 1
        assert await dispatcher.store.get_config(TENANT) == saved

    # The data is on disk, in a migrated database another store can read without migrating.
    reader = SqlConfigStore(url, auto_migrate=False)
    try:
        assert await reader.get_config(TENANT) == saved
    finally:
        await reader.close()
