"""Alembic environment: runs on a connection handed in by the package, or from the CLI.

The package passes a live connection in ``config.attributes["connection"]`` (how the SQLite
default migrates itself on first use); the CLI builds an async engine from ``-x url=...`` or
the ``VIZOCHOK_DATABASE_URL`` setting.
"""

import asyncio
from logging.config import fileConfig

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import context
from vizochok_dispatch.tenants._migrations import begin_locked
from vizochok_dispatch.tenants._models import Base
from vizochok_dispatch.webhooks._settings import DispatchSettings

target_metadata = Base.metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _cli_url() -> str:
    return context.get_x_argument(as_dictionary=True).get("url") or DispatchSettings().database_url


async def _run_cli() -> None:
    engine = create_async_engine(_cli_url())
    try:
        async with engine.connect() as connection:
            await begin_locked(connection)  # the lock the package's auto-migration takes
            await connection.run_sync(_configure_and_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_cli_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := context.config.attributes.get("connection")) is not None:
    _configure_and_run(given)
else:
    if context.config.config_file_name is not None:
        # the CLI's own logging ("Running upgrade ..."); never when the package migrates
        fileConfig(context.config.config_file_name, disable_existing_loggers=False)
    asyncio.run(_run_cli())
