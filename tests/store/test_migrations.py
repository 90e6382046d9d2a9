"""The Alembic migrations, on SQLite and PostgreSQL: up, down, agreement with the models, the
package's auto-migration and the ``alembic`` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from vizochok_dispatch import SchemaNotReady, SqlConfigStore, StoreError
from vizochok_dispatch.tenants._migrations import (
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from vizochok_dispatch.tenants._models import Base

from .helpers import TENANT, save_minimal

REPO = Path(__file__).resolve().parents[2]
ALEMBIC = Path(sys.executable).parent / "alembic"
TABLE = "webhook_configs"
COLUMNS = {
    "tenant_id",
    "products_url",
    "cart_url",
    "cart_get_url",
    "timeout_seconds",
    "secret",
    "version",
    "created_at",
    "updated_at",
    "pending_secret",
    "pending_since",
    "pending_promotes_at",
}


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def _columns(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        columns = await conn.run_sync(lambda sync: inspect(sync).get_columns(TABLE))
    return {column["name"] for column in columns}


def _diff(sync: Connection) -> list[Any]:
    context = MigrationContext.configure(
        sync, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, Base.metadata))


async def _model_diff(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return await conn.run_sync(_diff)


async def _stamp(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = :rev"), {"rev": revision})


@pytest.fixture
async def engine(database_url: str) -> Any:
    created = create_async_engine(database_url)
    try:
        yield created
    finally:
        await created.dispose()


# -- up and down ------------------------------------------------------------------------------


async def test_upgrade_from_empty_to_head(engine: AsyncEngine) -> None:
    """Migrations: an empty database upgrades to head and gets the webhook_configs table."""
    assert await current_revision(engine) is None
    assert TABLE not in await _tables(engine)
    await upgrade(engine)
    assert await current_revision(engine) == head_revision()
    assert head_revision() is not None
    assert await _columns(engine) == COLUMNS


async def test_downgrade_to_base_and_up_again(engine: AsyncEngine) -> None:
    """Migrations: head downgrades to base (table gone, no revision) and upgrades again."""
    await upgrade(engine)
    await downgrade(engine)
    assert await current_revision(engine) is None
    assert TABLE not in await _tables(engine)
    await upgrade(engine)
    assert await current_revision(engine) == head_revision()
    assert await _columns(engine) == COLUMNS


async def test_upgrade_twice_is_a_no_op(engine: AsyncEngine) -> None:
    """Migrations: upgrading a database already at head changes nothing and keeps the data."""
    await upgrade(engine)
    store = SqlConfigStore(str(engine.url.render_as_string(hide_password=False)), engine=engine)
    saved = await save_minimal(store)
    await upgrade(engine)
    assert await store.get_config(TENANT) == saved


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    """Migrations: compare_metadata on a migrated database finds no difference from the models."""
    await upgrade(engine)
    assert await _model_diff(engine) == []


async def test_model_comparison_can_see_a_difference(engine: AsyncEngine) -> None:
    """Migrations: the comparison is live, it reports the missing table on an empty database."""
    diff = await _model_diff(engine)
    assert TABLE in {entry[1].name for entry in diff if entry[0] == "add_table"}


# -- the package migrating itself -------------------------------------------------------------


async def test_sqlite_migrates_itself_on_first_use(sqlite_url: str, tmp_path: Path) -> None:
    """Auto-migrate: SQLite with the default auto_migrate=None creates its schema on first use."""
    assert not (tmp_path / "vizochok-test.db").exists()
    store = SqlConfigStore(sqlite_url)
    try:
        saved = await save_minimal(store)
        assert await store.get_config(TENANT) == saved
        assert await current_revision(store.engine) == head_revision()
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgres_default_refuses_an_unmigrated_database(postgres_url: str) -> None:
    """Auto-migrate: PostgreSQL does not migrate by default; SchemaNotReady says what to run."""
    store = SqlConfigStore(postgres_url)
    try:
        with pytest.raises(SchemaNotReady, match=r"alembic upgrade head") as caught:
            await store.get_config(TENANT)
        assert isinstance(caught.value, StoreError)
        with pytest.raises(SchemaNotReady):
            await save_minimal(store)
        assert await current_revision(store.engine) is None, "the default migrated PostgreSQL"
    finally:
        await store.close()


async def test_auto_migrate_false_refuses_an_unmigrated_database(database_url: str) -> None:
    """Auto-migrate: auto_migrate=False never migrates, on SQLite too, and says what to run."""
    store = SqlConfigStore(database_url, auto_migrate=False)
    try:
        with pytest.raises(SchemaNotReady, match=r"alembic upgrade head"):
            await store.open()
        assert await current_revision(store.engine) is None
    finally:
        await store.close()


async def test_migrated_database_opens_without_auto_migrate(database_url: str) -> None:
    """Auto-migrate: once at head, a store with auto_migrate=False opens and serves."""
    migrating = SqlConfigStore(database_url, auto_migrate=True)
    saved = await save_minimal(migrating)
    await migrating.close()
    checking = SqlConfigStore(database_url, auto_migrate=False)
    try:
        assert await checking.get_config(TENANT) == saved
    finally:
        await checking.close()


@pytest.mark.parametrize("auto_migrate", [True, False])
async def test_database_from_a_newer_release_is_refused(
    engine: AsyncEngine, database_url: str, auto_migrate: bool
) -> None:
    """Auto-migrate: a database at a revision this code does not know gives SchemaNotReady."""
    await upgrade(engine)
    await _stamp(engine, "9999_from_the_future")
    store = SqlConfigStore(database_url, auto_migrate=auto_migrate)
    try:
        with pytest.raises(SchemaNotReady, match="9999_from_the_future"):
            await store.open()
    finally:
        await store.close()


# -- the alembic CLI --------------------------------------------------------------------------


def _cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIZOCHOK_DATABASE")}
    env["PYTHONWARNINGS"] = "error"
    return env


def _alembic(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own alembic, fixed arguments
        [str(ALEMBIC), "-x", f"url={url}", *args],
        cwd=REPO,
        env=_cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _check(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"alembic failed:\n{result.stderr[-2000:]}"
    return result.stdout


async def test_alembic_cli_upgrade_and_downgrade(database_url: str) -> None:
    """CLI: `alembic -x url=... upgrade head` migrates, `current` agrees, downgrade base undoes."""
    _check(_alembic(database_url, "upgrade", "head"))
    assert f"{head_revision()} (head)" in _check(_alembic(database_url, "current"))

    store = SqlConfigStore(database_url, auto_migrate=False)
    try:
        saved = await save_minimal(store)
        assert await store.get_config(TENANT) == saved
    finally:
        await store.close()

    _check(_alembic(database_url, "downgrade", "base"))
    assert "(head)" not in _check(_alembic(database_url, "current"))


def test_alembic_cli_runs_in_parallel(database_url: str) -> None:
    """CLI: several `alembic upgrade head` started at once (replicas) all succeed, one migrates."""
    processes = [
        subprocess.Popen(  # noqa: S603 - our own alembic, fixed arguments
            [str(ALEMBIC), "-x", f"url={database_url}", "upgrade", "head"],
            cwd=REPO,
            env=_cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    failures = []
    for process in processes:
        _, stderr = process.communicate(timeout=60)
        if process.returncode != 0:
            failures.append(stderr[-1500:])
    assert not failures, "a parallel alembic run failed:\n" + "\n---\n".join(failures)
    assert f"{head_revision()} (head)" in _check(_alembic(database_url, "current"))


def test_alembic_cli_offline_sql_names_the_table(sqlite_url: str) -> None:
    """CLI: `upgrade head --sql` renders the DDL without touching a database."""
    sql = _check(_alembic(sqlite_url, "upgrade", "head", "--sql"))
    assert "CREATE TABLE webhook_configs" in sql
    assert not Path(sqlite_url.removeprefix("sqlite+aiosqlite:///")).exists()
