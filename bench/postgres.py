"""PostgreSQL for the benchmark: the local server on 127.0.0.1:5432, and a database of its own.

``make bench`` stays self-contained: when nothing answers on 127.0.0.1:5432, the installed
cluster is started; when PostgreSQL is not installed, Debian's package is installed and a
throw-away cluster (trust on loopback, in a temporary folder) serves the run instead.
Each run creates its own database and drops it at the end, so it never touches another's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

#: The server the bench uses unless VIZOCHOK_BENCH_POSTGRES_URL names another (its database
#: part is ignored: the bench makes its own).
DEFAULT_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
SERVER_ENV = "VIZOCHOK_BENCH_POSTGRES_URL"


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _wait_for(port: int, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _answers(port):
            return True
        time.sleep(0.2)
    return False


def _pg_bin() -> Path | None:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


@contextlib.contextmanager
def server() -> Iterator[str]:
    """The URL of a PostgreSQL server on loopback, started (or installed) if need be."""
    configured = os.environ.get(SERVER_ENV)
    if configured:
        yield configured
        return
    if _answers(5432):
        yield DEFAULT_SERVER
        return
    clusters = sorted(os.listdir("/etc/postgresql")) if Path("/etc/postgresql").is_dir() else []
    if clusters and shutil.which("pg_ctlcluster"):
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1], "main", "start"],
            check=False,
        )
        if _wait_for(5432):
            yield DEFAULT_SERVER
            return
    with _throwaway_cluster() as url:
        yield url


@contextlib.contextmanager
def _throwaway_cluster() -> Iterator[str]:
    """A cluster of our own in a temporary folder, trust on loopback, on a free port."""
    if _pg_bin() is None:
        if os.geteuid() != 0:
            raise SystemExit("bench needs PostgreSQL (apt-get install postgresql)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env)
    bin_dir = _pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL's initdb was not found after installing it")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tmp = tempfile.mkdtemp(prefix="vizochok-bench-pg-")
    # initdb refuses root: the cluster belongs to the postgres user Debian's package made.
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(tmp, user="postgres")
    data = f"{tmp}/data"
    subprocess.run(
        [*as_postgres, str(bin_dir / "initdb"), "-D", data, "-U", "postgres", "--auth=trust"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    options = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1"
    pg_ctl = [*as_postgres, str(bin_dir / "pg_ctl"), "-D", data]
    subprocess.run(
        [*pg_ctl, "-l", f"{tmp}/log", "-o", options, "-w", "start"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*pg_ctl, "-m", "fast", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
        )
        shutil.rmtree(tmp, ignore_errors=True)


async def _admin(server_url: str, statement: str) -> None:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def database(server_url: str, *, prefix: str = "vizochok_bench_") -> AsyncIterator[str]:
    """A fresh database on ``server_url`` for the block, dropped after it."""
    name = prefix + secrets.token_hex(4)
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await asyncio.shield(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
