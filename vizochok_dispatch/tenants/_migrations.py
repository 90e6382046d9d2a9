"""Run the Alembic migrations from inside the package.

The scripts live in the repository's top-level ``alembic/`` (for the ``alembic`` CLI); a wheel
carries the same folder as ``vizochok_dispatch/_alembic``.

Two things keep concurrent migrations (several tasks, stores or processes opening the same
database at once) from corrupting the schema:

- Alembic's ``context`` is process-global state, so two commands interleaved on one event loop
  run each other's scripts (which once left a database stamped at head without its table).
  One migration runs at a time per event loop.
- Across processes, the migration transaction first takes the database's own lock
  (``BEGIN IMMEDIATE`` on SQLite, which also makes SQLite's DDL transactional; an advisory
  transaction lock on PostgreSQL), then Alembic reads the current revision under it.
"""

from __future__ import annotations

import asyncio
import weakref
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Final

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alembic import command

from .._exceptions import SchemaNotReady

#: The key of the PostgreSQL advisory lock held while migrating (any stable 32-bit number).
ADVISORY_LOCK_KEY: Final = zlib.crc32(b"vizochok_dispatch.migrations")

# Not settings or shared resources: one lock per running loop, guarding Alembic's global state.
_loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def script_location() -> Path:
    """Where the migration scripts are, installed or in a checkout."""
    package = Path(__file__).resolve().parents[1]  # vizochok_dispatch/
    for candidate in (package / "_alembic", package.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise SchemaNotReady("the migration scripts are missing from this installation")


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config that needs no ini file, optionally bound to a live connection."""
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest revision the code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _loop_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _loop_locks.get(loop)
    if lock is None:
        lock = _loop_locks[loop] = asyncio.Lock()
    return lock


async def begin_locked(connection: AsyncConnection) -> None:
    """Begin the migration transaction holding the database's migration lock until it ends.

    The ``alembic`` CLI (``alembic/env.py``) takes the same lock, so CLI runs and
    auto-migrating stores started at once (several replicas, say) migrate one at a time.
    """
    if connection.dialect.name == "sqlite":
        await connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
        )
    else:
        await connection.begin()


async def _run_locked(engine: AsyncEngine, run: Callable[[Config], None]) -> None:
    """Run one Alembic command in one transaction that holds the database's migration lock."""
    async with _loop_lock(), engine.connect() as connection:
        await begin_locked(connection)
        try:
            await connection.run_sync(lambda sync: run(alembic_config(sync)))
        except CommandError as exc:
            # e.g. the database is at a revision this code does not know (a newer release)
            raise SchemaNotReady(f"cannot migrate the database: {exc}") from exc
        await connection.commit()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate the database up to ``revision``."""
    await _run_locked(engine, lambda config: command.upgrade(config, revision))


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    """Migrate the database down to ``revision``."""
    await _run_locked(engine, lambda config: command.downgrade(config, revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, ``None`` when it was never migrated."""
    async with engine.connect() as connection:
        return await connection.run_sync(_current_revision)


async def ensure_current(engine: AsyncEngine) -> None:
    """Refuse to serve from a database whose schema the code does not match."""
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise SchemaNotReady(
            f"database schema is at revision {current or 'none (empty)'}, this code needs "
            f"{head}: run `alembic upgrade head` (or pass auto_migrate=True)"
        )
