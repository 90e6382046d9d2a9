"""Run the Alembic migrations from inside the package.

The scripts live in the repository's top-level ``alembic/`` (for the ``alembic`` CLI); a wheel
carries the same folder as ``vizochok_dispatch/_alembic``.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from alembic import command

from ._exceptions import SchemaNotReady


def script_location() -> Path:
    """Where the migration scripts are, installed or in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_alembic", here.parent / "alembic"):
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


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate the database up to ``revision``."""
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    """Migrate the database down to ``revision``."""
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), revision))


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
