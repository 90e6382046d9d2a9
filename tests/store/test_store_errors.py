"""Store failures surface as ``StoreError`` and never leak the database password."""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from vizochok_dispatch import DispatchError, SchemaNotReady, SqlConfigStore, StoreError

from .helpers import TENANT, leaks, save_minimal


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def _let_aiosqlite_threads_finish() -> None:
    """Wait, without blocking the loop, for aiosqlite's worker threads to end.

    When a SQLite connect fails, aiosqlite stops the connection's worker thread without awaiting
    it; if the test's loop closed first, that thread raises "Event loop is closed" into a later
    test. Joining it while the loop still runs makes the ending deterministic.
    """
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name:
            await asyncio.to_thread(thread.join, 10)
            assert not thread.is_alive(), "an aiosqlite connection was left open"


@pytest.fixture
def password() -> str:
    return "Db-Pw-" + secrets.token_hex(8)


@pytest.mark.parametrize("auto_migrate", [True, False])
@pytest.mark.parametrize("operation", ["open", "get", "save", "delete"])
async def test_unreachable_database_is_a_store_error_without_the_password(
    password: str, auto_migrate: bool, operation: str
) -> None:
    """Store errors: a refused connection is StoreError, its text free of the URL's password."""
    url = f"postgresql+asyncpg://vizochok:{password}@127.0.0.1:{_closed_port()}/vizochok"
    store = SqlConfigStore(url, auto_migrate=auto_migrate)
    calls = {
        "open": store.open,
        "get": lambda: store.get_config(TENANT),
        "save": lambda: save_minimal(store),
        "delete": lambda: store.delete_config(TENANT),
    }
    try:
        with pytest.raises(StoreError) as caught:
            await calls[operation]()
    finally:
        await store.close()
    error = caught.value
    assert not isinstance(error, SchemaNotReady)
    assert isinstance(error, DispatchError)
    assert not leaks(password, error), "the database password is in the error text"
    assert "127.0.0.1" in str(error), "the error should say which database failed"
    assert "***" in str(error)


@pytest.mark.postgres
async def test_refused_login_is_a_store_error_without_the_password(
    postgres_url: str, password: str
) -> None:
    """Store errors: a login the server refuses is StoreError without the password in it."""
    url = make_url(postgres_url).set(username="no_such_role_vizochok", password=password)
    store = SqlConfigStore(url.render_as_string(hide_password=False), auto_migrate=True)
    try:
        with pytest.raises(StoreError) as caught:
            await store.get_config(TENANT)
    finally:
        await store.close()
    assert not leaks(password, caught.value), "the database password is in the error text"


async def test_sqlite_file_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    """Store errors: a SQLite path in a missing directory is StoreError, not a driver error."""
    store = SqlConfigStore(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}")
    try:
        with pytest.raises(StoreError, match="cannot open the config store"):
            await store.open()
    finally:
        await store.close()
        await _let_aiosqlite_threads_finish()


async def test_store_recovers_after_the_database_appears(tmp_path: Path) -> None:
    """Store errors: a failed open is not cached; the next call tries again and can succeed."""
    folder = tmp_path / "later"
    store = SqlConfigStore(f"sqlite+aiosqlite:///{folder / 'x.db'}")
    try:
        with pytest.raises(StoreError):
            await store.get_config(TENANT)
        folder.mkdir()
        assert await store.get_config(TENANT) is None
    finally:
        await store.close()
        await _let_aiosqlite_threads_finish()


async def test_open_and_close_are_idempotent(database_url: str) -> None:
    """Lifecycle: open and close may be repeated; a closed store reopens on next use."""
    store = SqlConfigStore(database_url, auto_migrate=True)
    await store.open()
    await store.open()
    saved = await save_minimal(store)
    await store.close()
    await store.close()
    assert await store.get_config(TENANT) == saved
    await store.close()
