"""Database fixtures shared by the whole suite.

- ``database_url``: an empty database, parametrised over ``sqlite`` (a file in ``tmp_path``)
  and ``postgres`` (marked ``pytest.mark.postgres``).
- ``store``: an opened :class:`~vizochok_dispatch.ConfigStore`, parametrised over ``memory``,
  ``sqlite`` and ``postgres``; the SQL ones migrate themselves (``auto_migrate=True``).
- ``sqlite_url`` / ``postgres_url``: one backend each, for tests that are about that backend.

PostgreSQL comes from ``VIZOCHOK_TEST_POSTGRES_URL`` (e.g.
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``). Unset: every ``postgres`` case is
skipped, saying why. Set but unreachable: every ``postgres`` case errors (never skips), so a CI
whose database is down goes red.

Isolation: the database named in the variable is only used to create and drop others. The
session creates ``vizochok_t_<random>`` and drops it ``WITH (FORCE)`` at the end; before each
test, connections left over in it are ended and schema ``public`` is dropped and recreated
(about 10 ms, against about 30 ms for a database per test, measured on PostgreSQL 15).

The admin work runs on its own event loop in a helper thread, so these fixtures are sync,
serve sync and async tests alike, and never touch pytest-asyncio's loops.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from vizochok_dispatch import ConfigRules, ConfigStore, InMemoryConfigStore, SqlConfigStore

POSTGRES_URL_ENV = "VIZOCHOK_TEST_POSTGRES_URL"
SKIP_POSTGRES_REASON = (
    f"{POSTGRES_URL_ENV} is not set; set it (e.g. "
    "postgresql+asyncpg://postgres@127.0.0.1:5432/test) to run the PostgreSQL cases"
)
SESSION_DATABASE_PREFIX = "vizochok_t_"
ADMIN_TIMEOUT_SECONDS = 15.0

_T = TypeVar("_T")


# -- running admin coroutines away from the test's loop -------------------------------------


def run_in_thread(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``make()`` on a fresh event loop in a helper thread and return its result."""
    outcome: dict[str, object] = {}

    def target() -> None:
        async def call() -> _T:
            return await make()

        try:
            outcome["value"] = asyncio.run(call())
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="vizochok-test-db-admin", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]  # a BaseException, checked above
    return outcome["value"]  # type: ignore[return-value]  # what make() returned


def _shown(url: str | URL) -> str:
    """A URL as it may appear in test output: password hidden."""
    return make_url(url).render_as_string(hide_password=True)


async def _admin(url: str | URL, *statements: str) -> None:
    """Run ``statements`` in autocommit mode (CREATE/DROP DATABASE need it)."""
    engine = create_async_engine(
        url, isolation_level="AUTOCOMMIT", connect_args={"timeout": ADMIN_TIMEOUT_SECONDS}
    )
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


# -- PostgreSQL -----------------------------------------------------------------------------


def skip_without_postgres() -> None:
    """Skip the running test when no PostgreSQL is configured.

    Every PostgreSQL skip is raised here, from this one line, so ``-ra`` folds them all into
    one summary line with their count instead of one line per test location.
    """
    if not os.environ.get(POSTGRES_URL_ENV):
        pytest.skip(SKIP_POSTGRES_REASON)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip every ``postgres``-marked test, with the reason, when no server is configured."""
    if item.get_closest_marker("postgres") is not None:
        skip_without_postgres()


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The URL of ``VIZOCHOK_TEST_POSTGRES_URL`` (used only to create and drop databases)."""
    skip_without_postgres()
    url = os.environ[POSTGRES_URL_ENV]
    try:
        parsed = make_url(url)
    except Exception:
        pytest.fail(f"{POSTGRES_URL_ENV} is not a SQLAlchemy URL", pytrace=False)
    if parsed.get_backend_name() != "postgresql" or parsed.get_driver_name() != "asyncpg":
        pytest.fail(
            f"{POSTGRES_URL_ENV} must be a postgresql+asyncpg:// URL, got {_shown(parsed)}",
            pytrace=False,
        )
    return url


@pytest.fixture(scope="session")
def postgres_session_url(postgres_server_url: str) -> Iterator[str]:
    """A database created for this session (dropped at the end); no test data lives elsewhere."""
    server = make_url(postgres_server_url)
    name = SESSION_DATABASE_PREFIX + secrets.token_hex(6)
    try:
        run_in_thread(lambda: _admin(server, f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(
            f"{POSTGRES_URL_ENV} is set, but creating a test database on PostgreSQL at "
            f"{_shown(server)} failed ({type(exc).__name__}: {exc}). Start the server or unset "
            f"{POSTGRES_URL_ENV} to skip the PostgreSQL cases.",
            pytrace=False,
        )
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        run_in_thread(lambda: _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_url(postgres_session_url: str) -> str:
    """The session's PostgreSQL database, emptied for this test: a bare schema ``public``
    (and no ``procrastinate``)."""
    run_in_thread(
        lambda: _admin(
            postgres_session_url,
            # connections a previous test left open must neither block nor see this one
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
            "SET lock_timeout = '10s'",
            "DROP SCHEMA IF EXISTS public CASCADE",
            # procrastinate's own schema (migration 0007) goes with ours
            "DROP SCHEMA IF EXISTS procrastinate CASCADE",
            "CREATE SCHEMA public",
        )
    )
    return postgres_session_url


# -- SQLite ---------------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file that does not exist yet, in this test's ``tmp_path``."""
    return f"sqlite+aiosqlite:///{tmp_path / 'vizochok-test.db'}"


# -- parametrised fixtures ------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database, once on SQLite and once on PostgreSQL."""
    backend: str = request.param
    url: str = request.getfixturevalue(f"{backend}_url")
    return url


@pytest.fixture
def config_rules() -> ConfigRules:
    """The rules the ``store`` fixture is built with; override to allow ``http://``."""
    return ConfigRules(allow_http=False)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(
    request: pytest.FixtureRequest, config_rules: ConfigRules
) -> AsyncIterator[ConfigStore]:
    """An opened, empty config store: in memory, on SQLite and on PostgreSQL."""
    backend: str = request.param
    opened: ConfigStore
    if backend == "memory":
        opened = InMemoryConfigStore(rules=config_rules)
    else:
        url: str = request.getfixturevalue(f"{backend}_url")
        opened = SqlConfigStore(url, rules=config_rules, auto_migrate=True)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
