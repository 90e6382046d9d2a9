"""Every unusable database URL is one ``Error:`` line and exit 1 in every CLI command.

A URL that does not parse, names a database or driver the store cannot run on, gives a port
outside 1-65535, points at a SQLite folder that does not exist, a server that refuses the
connection, or a database the server does not have: each is a ``StoreError`` saying why,
with the password masked, never a traceback (README, "CLI exit codes").
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import aiosqlite
import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from vizochok_dispatch import StoreError
from vizochok_dispatch._cli import main
from vizochok_dispatch.tenants._sql_store import SqlConfigStore, database_url_problem

from .support import KEY_1, absent

ENV = {"VIZOCHOK_SECRET_KEYS": KEY_1, "VIZOCHOK_DATABASE_URL": None}

#: Every command that opens the database (``serve`` stops at its store check).
COMMANDS: list[tuple[str, ...]] = [
    ("db", "upgrade"),
    ("tenants", "list"),
    ("tenants", "create", "Shop"),
    ("keys", "list", "shop"),
    ("keys", "create", "shop"),
    ("keys", "revoke", "key_0123456789abcdef"),
    ("secrets", "reencrypt"),
    ("test-fire", "shop"),
    ("serve", "--port", "0"),
]


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _never_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve`` must stop at its store check: were it to get further, fail, do not serve."""
    import uvicorn  # noqa: PLC0415 - patched for these tests only

    def refuse(*_args: object, **_options: object) -> None:
        pytest.fail("serve got as far as starting the server")

    monkeypatch.setattr(uvicorn, "run", refuse)


#: (case, URL template with {pw} and {tmp}, what the one line must say)
URLS: list[tuple[str, str, str]] = [
    ("port-too-big", "postgresql+asyncpg://u:{pw}@127.0.0.1:99999/x", "port 99999 is not from 1"),
    ("port-not-a-number", "postgresql+asyncpg://u:{pw}@127.0.0.1:abc/x", "port is not a number"),
    ("ipv6-unclosed", "postgresql+asyncpg://u:{pw}@[::1/x", "IPv6 address goes in brackets"),
    ("not-a-url", "u:{pw}@127.0.0.1", "does not read as a database URL"),
    ("mysql", "mysql://u:{pw}@h/x", "'mysql' databases are not supported"),
    ("unknown-dialect", "nosuchdb://u:{pw}@h/x", "'nosuchdb' databases are not supported"),
    ("sync-sqlite", "sqlite:///{tmp}/x.db", "write sqlite+aiosqlite://"),
    ("sync-postgres", "postgresql://u:{pw}@127.0.0.1/x", "write postgresql+asyncpg://"),
    (
        "missing-folder",
        "sqlite+aiosqlite:///{tmp}/missing/dir/x.db",
        "missing/dir does not exist",
    ),
    ("refused", "postgresql+asyncpg://u:{pw}@127.0.0.1:{closed}/x", "nothing accepts connections"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize(("case", "template", "says"), URLS, ids=[u[0] for u in URLS])
def test_an_unusable_database_url_is_one_line_in_every_command(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
    case: str,
    template: str,
    says: str,
) -> None:
    """CLI: each kind of unusable database URL, in each command: exit 1, one masked line."""
    _never_serve(monkeypatch)
    password = "Db-Pw-" + secrets.token_hex(8)
    url = template.format(pw=password, tmp=tmp_path, closed=_closed_port())
    result = CliRunner().invoke(main, ["--database-url", url, *command], env=ENV)
    assert isinstance(result.exception, SystemExit), f"{case}: raised {result.exception!r}"
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert says in result.stderr
    assert absent(password, result.output)
    assert result.stdout == ""


@pytest.mark.postgres
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("problem", ["no-such-database", "wrong-password"])
def test_a_database_the_server_refuses_is_named_in_one_line(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...], problem: str
) -> None:
    """CLI: a database the server does not have, or a refused login, is said in words."""
    _never_serve(monkeypatch)
    password = "Db-Pw-" + secrets.token_hex(8)
    server = make_url(postgres_url)
    if problem == "no-such-database":
        url = server.set(database="vizochok_missing_" + secrets.token_hex(4))
        says = "does not exist on the server"
    else:
        url = server.set(username="vizochok_nobody", password=password)
        says = "refused the login of user 'vizochok_nobody'"
    shown = url.render_as_string(hide_password=False)
    result = CliRunner().invoke(main, ["--database-url", shown, *command], env=ENV)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot open the config store at ")
    assert result.stderr.count("\n") == 1 and says in result.stderr
    assert absent(password, result.output)


def test_db_upgrade_in_a_real_process_is_one_line() -> None:
    """CLI (a real process): db upgrade of a mysql:// URL is one line and exit 1."""
    password = "Db-Pw-" + secrets.token_hex(8)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIZOCHOK_")}
    env["VIZOCHOK_SECRET_KEYS"] = KEY_1
    done = subprocess.run(  # noqa: S603 - this interpreter, our own CLI, fixed arguments
        [
            sys.executable,
            "-c",
            "from vizochok_dispatch._cli import main; main()",
            "--database-url",
            f"mysql://u:{password}@127.0.0.1/x",
            "db",
            "upgrade",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "Error: the database URL mysql://u:***@127.0.0.1/x is not usable: 'mysql' databases "
        "are not supported: use sqlite+aiosqlite:///path/to/file.db or "
        "postgresql+asyncpg://user:password@host:port/database"
    ]
    assert absent(password, done.stdout, done.stderr)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:///x.db",
        "sqlite+aiosqlite://",
        "sqlite+aiosqlite:///:memory:",
        "postgresql+asyncpg://u:pw@db.example/x",
        "postgresql+asyncpg://u:pw@[::1]:5432/x",
        "postgresql+asyncpg://u@h:1/x",
        "postgresql+asyncpg://u@h:65535/x",
    ],
)
def test_the_supported_url_forms_pass_the_check(url: str) -> None:
    """Database URL: SQLite through aiosqlite and PostgreSQL through asyncpg pass."""
    assert database_url_problem(url) is None


async def test_a_store_on_a_missing_folder_leaves_no_sqlite_thread_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Store: when a SQLite file cannot be opened, aiosqlite's worker thread has ended by the
    time the StoreError arrives, so it never reports into a closed event loop."""
    threads: list[threading.Thread] = []
    released = threading.Event()

    class Recorded(threading.Thread):
        """aiosqlite's worker thread, recorded; its last step waits until someone joins it
        (so a thread nobody waits for is still alive when the error arrives)."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            threads.append(self)

        def join(self, timeout: float | None = None) -> None:
            released.set()
            super().join(timeout)

    original_stop = aiosqlite.Connection.stop

    def gated_stop(self: aiosqlite.Connection) -> asyncio.Future[object] | None:
        self._tx.put_nowait((None, lambda: released.wait(10)))
        return original_stop(self)

    monkeypatch.setattr(aiosqlite.core, "Thread", Recorded)
    monkeypatch.setattr(aiosqlite.Connection, "stop", gated_stop)
    store = SqlConfigStore(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}")
    try:
        with pytest.raises(StoreError, match="missing does not exist"):
            await store.open()
        alive = [thread for thread in threads if thread.is_alive()]
    finally:
        released.set()
        await store.close()
    assert threads, "aiosqlite made no connection attempt"
    assert alive == []


def _serve_missing_folder(tmp_path: Path) -> Callable[[], subprocess.CompletedProcess[str]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIZOCHOK_")}

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - this interpreter, our own CLI, fixed arguments
            [
                sys.executable,
                "-c",
                "from vizochok_dispatch._cli import main; main()",
                "--database-url",
                url,
                "serve",
                "--port",
                "0",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


def test_serve_on_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    """CLI (a real process): serve on a SQLite file whose folder is missing: exit 1, one line
    (no "Event loop is closed" from aiosqlite's thread after it)."""
    done = _serve_missing_folder(tmp_path)()
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Error: cannot open the config store at sqlite+aiosqlite:///{tmp_path}/missing/x.db: "
        f"the folder {tmp_path}/missing does not exist: create it, or point the URL elsewhere"
    ]
