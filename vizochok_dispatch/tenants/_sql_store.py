"""The SQLAlchemy 2 async config store: SQLite embedded, PostgreSQL in production.

A save writes only the columns it changes (``UPDATE ... SET <given>, version = version + 1``),
so concurrent partial updates of one tenant never lose each other's fields, and no
transaction reads then upgrades to a write (which SQLite answers with "database is locked").

Secrets are encrypted on the way in and decrypted on the way out by a :class:`SecretBox`
(``_crypto``), so the ``secret`` column holds only ciphertext and configs hold plaintext in
memory.  Without an explicit box, a SQLite file keeps its key in a file beside the database;
other databases then store secrets as given (only tests do that: deployments build the store
through ``DispatchSettings.secret_box()``, which refuses production without keys).
"""

from __future__ import annotations

import asyncio
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Final, cast

import aiosqlite
import structlog
from sqlalchemy import (
    Column,
    ColumnElement,
    Table,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from .._exceptions import SecretUnreadable, StoreError
from . import _migrations
from ._config import UNSET, ConfigRules, Unset, WebhookConfig, _tenant_id_problem, merge_config
from ._crypto import (
    KEYS_SETTING,
    SecretBox,
    is_encrypted,
    key_file_for,
    key_file_kind,
    load_or_create_key_file,
)
from ._models import WebhookConfigRow, encrypted_secret_columns, secret_binding
from ._rotation import DEFAULT_SECRET_OVERLAP_SECONDS, promoted, rolled

_T = cast(Table, WebhookConfigRow.__table__)
_log = structlog.get_logger("vizochok_dispatch")


@dataclass(frozen=True, slots=True)
class ReencryptReport:
    """What ``reencrypt_secrets`` did: counts, and the tenants whose secret could not be read."""

    total: int
    reencrypted: int
    current: int
    unreadable: tuple[str, ...] = field(default=())


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL, or ``None`` (another database, or in-memory SQLite)."""
    try:
        parsed = make_url(url)
    except Exception:  # an unparsable URL fails later, as a StoreError
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


#: Seconds to wait for a database connection (TCP, TLS, login) or for a free pooled one.
DEFAULT_CONNECT_TIMEOUT_SECONDS: Final = 2.0
#: Seconds one statement may take (PostgreSQL: the client gives up and cancels it; SQLite: how
#: long a write waits for another writer's lock).
DEFAULT_STATEMENT_TIMEOUT_SECONDS: Final = 2.0
#: SQLite's lock wait for migrations and other unbounded work (the statement timeout is off).
_SQLITE_UNBOUNDED_BUSY_SECONDS: Final = 30.0


#: The drivers the store runs on, per database: SQLAlchemy's async drivers for the two
#: databases the migrations and the timeouts are written for.
DRIVERS: Final = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
_MAX_PORT: Final = 65535
_URL_FORMS: Final = (
    "sqlite+aiosqlite:///path/to/file.db or postgresql+asyncpg://user:password@host:port/database"
)


def database_url_problem(url: str) -> str | None:
    """Why ``url`` can never be the store's database, found without connecting; or ``None``.

    It must parse as SQLAlchemy's ``dialect+driver://user:password@host:port/database``, name
    one of :data:`DRIVERS` (``sqlite+aiosqlite`` or ``postgresql+asyncpg``: a sync driver
    such as ``sqlite://`` or ``mysql://`` cannot serve an async store), and give a port from
    1 to 65535 if it gives one.  The message never holds the password.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"it does not read as a database URL ({_URL_FORMS})"
    except ValueError:  # SQLAlchemy's int() of the port
        return (
            "its port is not a number from 1 to 65535 (an IPv6 address goes in brackets: "
            "[::1]:5432)"
        )
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in DRIVERS:
        return f"{backend!r} databases are not supported: use {_URL_FORMS}"
    if driver != DRIVERS[backend]:
        named = f"the driver {driver!r}" if driver else "the default (sync) driver"
        return (
            f"{named} cannot serve the store: write {backend}+{DRIVERS[backend]}:// "
            "(the store needs its async driver)"
        )
    if parsed.port is not None and not 1 <= parsed.port <= _MAX_PORT:
        return f"its port {parsed.port} is not from 1 to {_MAX_PORT}"
    return None


def checked_database_url(url: str) -> URL:
    """``url`` parsed, or :class:`StoreError` saying why it is not usable (password masked)."""
    if (problem := database_url_problem(url)) is not None:
        raise StoreError(f"the database URL {safe_url(url)} is not usable: {problem}")
    return make_url(url)


def create_engine_for(
    url: str,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
    statement_timeout: float | None = DEFAULT_STATEMENT_TIMEOUT_SECONDS,
) -> AsyncEngine:
    """An async engine tuned for the store, every wait on the database bounded.

    PostgreSQL (asyncpg): ``connect_timeout`` bounds connecting and waiting for a pooled
    connection (``pool_timeout``); ``statement_timeout`` is asyncpg's ``command_timeout``, so
    a statement (the pool's pre-ping included) on a server that stopped answering fails with
    a timeout instead of waiting for ever.  SQLite: ``statement_timeout`` is the busy timeout
    (how long a write waits for another writer).  ``statement_timeout=None`` leaves statements
    unbounded: migrations, which may wait for another process's migration lock.  In-memory
    SQLite shares one connection.

    PostgreSQL connections are pinged on checkout only when idle for
    :data:`PING_IDLE_SECONDS` or more (:func:`_ping_when_idle`), not every time.

    Raises :class:`StoreError` for a URL :func:`database_url_problem` refuses.
    """
    parsed = checked_database_url(url)
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {}
    if backend == "sqlite":
        busy = _SQLITE_UNBOUNDED_BUSY_SECONDS if statement_timeout is None else statement_timeout
        options["connect_args"] = {"timeout": busy, "async_creator_fn": _connect_aiosqlite}
        if parsed.database in (None, "", ":memory:"):
            options["poolclass"] = StaticPool
    else:
        options["pool_timeout"] = connect_timeout
        if parsed.get_driver_name() == "asyncpg":
            options["connect_args"] = {
                "timeout": connect_timeout,
                "command_timeout": statement_timeout,
            }
    engine = create_async_engine(url, **options)
    if backend != "sqlite":
        _ping_when_idle(engine)
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
        busy_ms = int(options["connect_args"]["timeout"] * 1000)
        event.listen(engine.sync_engine, "connect", partial(_sqlite_pragmas, busy_ms=busy_ms))
    return engine


#: A pooled connection used this recently is not pinged on checkout (``_ping_when_idle``).
PING_IDLE_SECONDS: Final = 1.0
_LAST_USED: Final = "vizochok_last_used"
#: The clock of those idle spells (a test replaces it).
_monotonic: Callable[[], float] = time.monotonic


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Ping a pooled connection on checkout only when it sat idle :data:`PING_IDLE_SECONDS`
    or more.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout, and asyncpg's ping is three round
    trips (begin, ``;``, rollback): more than the work of a short transaction such as an event
    claim.  What the ping guards against, a connection that died while it sat in the pool (a
    server restart, a proxy's idle cut), is caught the same way after an idle spell; a
    connection that dies within a second of its last use fails its next statement instead,
    which SQLAlchemy sees as a disconnect and invalidates the pool with (the caller gets a
    :class:`StoreError` once; every event path tries again).  A ping that fails for another
    reason (a stalled server's timeout) raises, as ``pool_pre_ping``'s does.
    """
    sync_engine = engine.sync_engine
    dialect = sync_engine.dialect

    def used(_connection: Any, record: Any) -> None:  # noqa: ANN401 - a pool event's
        record.info[_LAST_USED] = _monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:  # noqa: ANN401
        last = record.info.get(_LAST_USED)
        if last is not None and _monotonic() - last < PING_IDLE_SECONDS:
            return
        if not dialect._do_ping_w_event(dbapi_connection):  # pre-ping's own test
            raise DisconnectionError("the pooled connection is gone")
        record.info[_LAST_USED] = _monotonic()

    event.listen(sync_engine, "connect", used)
    event.listen(sync_engine, "checkin", used)
    event.listen(sync_engine, "checkout", checkout)


async def _connect_aiosqlite(*args: Any, **kwargs: Any) -> aiosqlite.Connection:  # noqa: ANN401 - the dialect's connect arguments
    """Open an aiosqlite connection; if opening fails, wait for its worker thread to end.

    aiosqlite stops the thread of a connection that failed to open without waiting for it,
    and the thread then reports back into the event loop; once ``asyncio.run`` has closed
    that loop, the report raises ``RuntimeError: Event loop is closed`` in the thread.
    Waiting here (off the loop) ends the thread while its loop still runs.
    """
    connection = aiosqlite.connect(*args, **kwargs)
    thread: threading.Thread | None = getattr(connection, "_thread", None)
    if thread is not None:
        thread.daemon = True  # as SQLAlchemy's own connect does: never blocks interpreter exit
    try:
        return await connection
    except BaseException:
        if thread is not None and thread.is_alive():
            await asyncio.shield(asyncio.to_thread(thread.join, _THREAD_STOP_SECONDS))
        raise


#: How long a failed connection's worker thread is waited for (it has one queued step left).
_THREAD_STOP_SECONDS: Final = 5.0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, busy_ms: int) -> None:  # noqa: ANN401 - DB-API objects are untyped
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_ms:d}")
    cursor.close()


#: Query parameters a driver reads as a password (``?password=...`` works on asyncpg).
_PASSWORD_PARAMETERS = frozenset({"password", "passwd", "pwd", "sslpassword"})


def safe_url(url: str) -> str:
    """The URL as it may appear in an error, a log or a ``repr``: every password as ``***``.

    That is the userinfo password (SQLAlchemy's ``render_as_string(hide_password=True)``) and
    any password given as a query parameter; a URL that does not parse is not shown at all.
    """
    try:
        parsed = make_url(url)
    except Exception:
        return _masked_unparsable(url)
    hidden = [name for name in parsed.query if name.lower() in _PASSWORD_PARAMETERS]
    shown = parsed.difference_update_query(hidden).render_as_string(hide_password=True)
    if hidden:
        shown += ("&" if "?" in shown else "?") + "&".join(f"{n}=***" for n in hidden)
    return shown


_PASSWORD_QUERY: Final = re.compile(
    r"([?&](?:" + "|".join(sorted(_PASSWORD_PARAMETERS)) + r")=)[^&]*", re.IGNORECASE
)


def _masked_unparsable(url: str) -> str:
    """A URL SQLAlchemy cannot parse, shown with everything before the host hidden.

    Without a parse there is no telling where a password ends, so the whole user part (up
    to the last ``@``) is ``***``, and so is any password query parameter; a URL without
    ``@`` shows its scheme only (what looks like a host may be a password).
    """
    scheme, sep, rest = url.partition("://")
    prefix = f"{scheme}://" if sep else ""
    after_scheme = rest if sep else url
    if "@" not in after_scheme:
        return f"{prefix}<unparsable>" if sep else "<unparsable database URL>"
    host_part = after_scheme.rpartition("@")[2]
    return _PASSWORD_QUERY.sub(r"\1***", f"{prefix}***@{host_part}")


#: SQLSTATE codes a server answers a refused connection with (PostgreSQL's appendix A).
_INVALID_CATALOG_NAME: Final = "3D000"
_LOGIN_REFUSED: Final = frozenset({"28000", "28P01"})


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (a DB-API error's ``orig``, causes, contexts), outer first."""
    found: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending and len(found) < 20:  # a bound: a chain is a few links long
        current = pending.pop(0)
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return found


def database_error_reason(exc: BaseException, url: str) -> str:
    """What went wrong reaching the database at ``url``, in words, never with the password.

    Known causes are named with what to do: a database the server does not have, a refused
    login, a host that does not resolve, a refused connection, no answer in time, a SQLite
    file whose folder is missing.  A driver's message is not quoted (an SQLAlchemy error
    carries its statement and parameters), except SQLite's, which names the condition only;
    anything else is named by its type.
    """
    causes = _causes(exc)
    parsed = make_url(url)
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    for cause in causes:
        state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if state == _INVALID_CATALOG_NAME:
            return (
                f"the database {parsed.database!r} does not exist on the server at {where}: "
                "create it (createdb), or correct the URL"
            )
        if state in _LOGIN_REFUSED:
            return (
                f"the server at {where} refused the login of user {parsed.username!r}: check "
                "the user name and password"
            )
    for cause in causes:
        if isinstance(cause, socket.gaierror):
            return f"the host name {parsed.host!r} does not resolve (DNS)"
        if isinstance(cause, ConnectionRefusedError):
            return f"nothing accepts connections at {where} (is the database server running?)"
        if isinstance(cause, TimeoutError):
            return f"the database at {where} did not answer in time"
    for cause in causes:
        if isinstance(cause, sqlite3.Error):
            # SQLite's messages name the condition only ("database is locked"), no values
            if str(cause) == "unable to open database file":
                return _sqlite_file_reason(parsed)
            return f"SQLite says: {cause}"
    for cause in causes:
        if isinstance(cause, OSError) and cause.strerror:
            return f"{type(cause).__name__}: {cause.strerror}"
    innermost = causes[-1]
    return f"{type(innermost).__name__} from the database driver"


def _sqlite_file_reason(parsed: URL) -> str:
    """Why a SQLite file cannot be opened: its folder is missing, or is no folder we may use."""
    path = Path(parsed.database or "")
    folder = path.parent
    if not folder.exists():
        return f"the folder {folder} does not exist: create it, or point the URL elsewhere"
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if path.exists() and not path.is_file():
        return f"{path} is not a database file (it is a folder or a device)"
    return f"the database file {path} cannot be opened or created here (check permissions)"


class SqlConfigStore:
    """Webhook configs in a SQL database through SQLAlchemy's async engine."""

    def __init__(
        self,
        url: str,
        *,
        rules: ConfigRules | None = None,
        auto_migrate: bool | None = None,
        engine: AsyncEngine | None = None,
        secret_box: SecretBox | None = None,
        connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
        statement_timeout_seconds: float = DEFAULT_STATEMENT_TIMEOUT_SECONDS,
    ) -> None:
        self._url = url
        self._connect_timeout = connect_timeout_seconds
        self._statement_timeout = statement_timeout_seconds
        self._box = secret_box
        self._database_file = sqlite_file(url)
        self._rules = rules or ConfigRules()
        self._auto_migrate = url.startswith("sqlite") if auto_migrate is None else auto_migrate
        self._engine = engine
        self._owns_engine = engine is None
        self._ready = False
        # Concurrent first uses of one store migrate (or check) once, not once each.
        self._open_lock = asyncio.Lock()

    @property
    def url(self) -> str:
        """The database URL, password hidden: what errors and logs may show."""
        return safe_url(self._url)

    @property
    def secret_box(self) -> SecretBox | None:
        """The keyring secrets are encrypted with (after ``open`` on the SQLite default)."""
        return self._box

    @property
    def engine(self) -> AsyncEngine:
        """The engine, created on first use."""
        if self._engine is None:
            try:
                self._engine = create_engine_for(
                    self._url,
                    connect_timeout=self._connect_timeout,
                    statement_timeout=self._statement_timeout,
                )
            except (SQLAlchemyError, ImportError, ValueError) as exc:  # past the URL's checks
                raise StoreError(
                    f"the database URL {safe_url(self._url)} is not usable: {type(exc).__name__}"
                ) from None
        return self._engine

    def create_engine(self) -> AsyncEngine:
        """A new engine on this store's database with its timeouts, for work whose connections
        must not take this store's (the event worker's); the caller disposes of it."""
        try:
            return create_engine_for(
                self._url,
                connect_timeout=self._connect_timeout,
                statement_timeout=self._statement_timeout,
            )
        except (SQLAlchemyError, ValueError) as exc:
            raise StoreError(
                f"the database URL {safe_url(self._url)} is not usable: {type(exc).__name__}"
            ) from None

    async def open(self) -> None:
        """Check (or, when allowed, migrate) the schema once."""
        if self._ready:
            return
        async with self._open_lock:
            if not self._ready:
                try:
                    await self._open_once()
                except Exception:
                    if self._engine is not None and self._owns_engine:
                        # no connection outlives a refused open (the engine stays usable)
                        await self._engine.dispose()
                    raise

    async def _open_once(self) -> None:
        try:
            if self._auto_migrate:
                await self._migrate()
            else:
                await _migrations.ensure_current(self.engine)
        except StoreError:
            raise
        except _DATABASE_ERRORS as exc:
            raise self._cannot_open(exc) from exc
        if self._box is None and self._database_file is not None:
            # the embedded default: the key lives beside the database (after the database
            # opened, so a missing folder is reported as the store's error, not the key's)
            self._box = await self._open_key_file(self._database_file)
        elif self._box is not None:
            await self._check_configured_keys(self._box)
        self._ready = True
        _log.info("config_store.opened", store=self.url)

    async def _open_key_file(self, database: Path) -> SecretBox:
        """The key file's keyring, created only for a database with no encrypted secrets.

        A missing key file beside a database whose secrets are encrypted, or a key file none
        of whose keys those secrets were encrypted with, is refused with
        :class:`SecretUnreadable`: a new key would make every stored secret unreadable.
        """
        key_file = key_file_for(database)
        try:
            kind = await asyncio.to_thread(key_file_kind, key_file)
            exists = await asyncio.to_thread(key_file.is_file)
            needed = await self._encrypted_key_ids()
            if kind is not None:
                # say what is there: "missing" would send the reader looking for a lost file
                raise (SecretUnreadable if needed else StoreError)(
                    _not_a_key_file(database, key_file, kind, needed)
                )
            if not exists and needed:
                raise SecretUnreadable(_missing_key_file(database, key_file, needed))
            box = await asyncio.to_thread(load_or_create_key_file, key_file)
        except OSError as exc:
            raise StoreError(
                f"cannot read or create the secret key file {key_file}: {type(exc).__name__}"
            ) from exc
        if needed and not await self._any_readable(box):
            raise SecretUnreadable(_wrong_key_file(database, key_file, needed, box))
        return box

    async def _check_configured_keys(self, box: SecretBox) -> None:
        """Refuse keys (``VIZOCHOK_SECRET_KEYS``) none of which reads any stored secret.

        Some unreadable rows beside readable ones stay a per-tenant failure (``secrets
        reencrypt`` lists them); none readable at all means the wrong keys were deployed.
        """
        needed = await self._encrypted_key_ids()
        if needed and not await self._any_readable(box):
            encrypted = [
                select(column.table.c.tenant_id.label("tenant_id")).where(
                    column.startswith("v1.", autoescape=True)
                )
                for column in encrypted_secret_columns()
            ]
            found = union_all(*encrypted).subquery()
            async with self._guard(), self.engine.connect() as conn:
                rows = await conn.execute(
                    select(found.c.tenant_id)
                    .distinct()
                    .order_by(found.c.tenant_id)
                    .limit(_NAMED_TENANTS + 1)
                )
                tenants = [str(tenant_id) for (tenant_id,) in rows]
            raise SecretUnreadable(_wrong_keys_setting(needed, box, tenants))

    async def _encrypted_key_ids(self) -> list[str]:
        """Some key ids stored secrets are encrypted with (none: no encrypted secret).

        Every column marked as holding encrypted secrets is read (``_models.ENCRYPTED_SECRET``:
        webhook secrets, rolled ones, event endpoints' secrets), so a database holding only
        event endpoint secrets is checked as well as one with webhook configs.
        """
        found: set[str] = set()
        async with self._guard(), self.engine.connect() as conn:
            for column in encrypted_secret_columns():
                rows = await conn.execute(
                    select(column).where(column.startswith("v1.", autoescape=True)).limit(100)
                )
                found.update(str(v).split(".")[1] for (v,) in rows if is_encrypted(str(v)))
        return sorted(found)

    async def _any_readable(self, box: SecretBox) -> bool:
        """Whether some encrypted secret was encrypted with a key ``box`` holds."""
        async with self._guard(), self.engine.connect() as conn:
            for column in encrypted_secret_columns():
                readable = or_(
                    *(column.startswith(f"v1.{key_id}.", autoescape=True) for key_id in box.key_ids)
                )
                query = select(literal(1)).select_from(column.table).where(readable).limit(1)
                if (await conn.execute(query)).first() is not None:
                    return True
        return False

    def _cannot_open(self, exc: BaseException) -> StoreError:
        reason = database_error_reason(exc, self._url)
        return StoreError(f"cannot open the config store at {safe_url(self._url)}: {reason}")

    async def upgrade(self) -> str | None:
        """Migrate the database to the newest schema; the revision it is then at.

        What ``vizochok-dispatch db upgrade`` runs: statements are not bounded (a migration
        may wait for another's lock), the connection is.  Any failure to reach or open the
        database is a :class:`StoreError` saying why (see :func:`database_error_reason`).
        """
        try:
            await self._migrate()
            return await _migrations.current_revision(self.engine)
        except StoreError:
            raise
        except _DATABASE_ERRORS as exc:
            raise self._cannot_open(exc) from exc

    async def _migrate(self) -> None:
        """Upgrade the schema on an engine of its own whose statements are not bounded: a
        migration may wait for another process's migration lock (only the connection is)."""
        in_memory = self._database_file is None and self.engine.dialect.name == "sqlite"
        if not self._owns_engine or in_memory:
            # in-memory SQLite lives in its one shared connection; an injected engine is the
            # caller's to tune
            await _migrations.upgrade(self.engine)
            return
        engine = create_engine_for(
            self._url, connect_timeout=self._connect_timeout, statement_timeout=None
        )
        try:
            await _migrations.upgrade(engine)
        finally:
            await engine.dispose()

    async def close(self) -> None:
        """Dispose of the engine if this store created it."""
        if self._engine is not None and self._owns_engine:
            await self._engine.dispose()
            self._engine = None
        self._ready = False

    async def get_config(self, tenant_id: str) -> WebhookConfig | None:
        """The tenant's config, or ``None``."""
        await self.open()
        if _tenant_id_problem(tenant_id) is not None:
            return None  # an id no save accepts has no config (and may not reach the driver)
        async with self._guard(), self.engine.connect() as conn:
            row = (await conn.execute(select(_T).where(_T.c.tenant_id == tenant_id))).first()
        return None if row is None else self._to_config(row._mapping)

    async def save_config(
        self,
        tenant_id: str,
        *,
        products_url: str | Unset = UNSET,
        cart_url: str | Unset = UNSET,
        cart_get_url: str | Unset | None = UNSET,
        timeout_seconds: float | Unset = UNSET,
        secret: str | Unset | None = UNSET,
    ) -> WebhookConfig:
        """Validate, then write only the given columns; nothing is written when refused."""
        given: dict[str, object] = {
            "products_url": products_url,
            "cart_url": cart_url,
            "cart_get_url": cart_get_url,
            "timeout_seconds": timeout_seconds,
            "secret": secret,
        }
        for _ in range(3):  # a concurrent first save turns our insert into an update
            existing = await self.get_config(tenant_id)
            merged = merge_config(tenant_id, existing, rules=self._rules, **given)  # type: ignore[arg-type]
            changed = {
                name: getattr(merged, name)
                for name, value in given.items()
                if value is not UNSET or (name == "secret" and existing is None)
            }
            if secret is not UNSET and existing is not None:
                changed.update(_NO_PENDING)  # a rotate drops a rolled secret
            try:
                saved = await (
                    self._insert(merged) if existing is None else self._update(tenant_id, changed)
                )
            except IntegrityError:
                continue
            if saved is not None:
                return saved
        raise StoreError(f"could not save the config of tenant {tenant_id!r}: it kept changing")

    async def roll_secret(
        self,
        tenant_id: str,
        *,
        now: datetime,
        overlap_seconds: float = DEFAULT_SECRET_OVERLAP_SECONDS,
        secret: str | None = None,
    ) -> WebhookConfig | None:
        """Store a pending secret beside the current one (``tenants._rotation.rolled``);
        ``None`` when the tenant has no config.  Raises what ``rolled`` raises."""
        return await self._rewrite_secrets(
            tenant_id,
            lambda config: rolled(config, now=now, overlap_seconds=overlap_seconds, secret=secret),
        )

    async def promote_secret(self, tenant_id: str, *, now: datetime) -> WebhookConfig | None:
        """Make the pending secret the one that signs (``tenants._rotation.promoted``);
        ``None`` when the tenant has no config; :class:`NoPendingSecret` when none waits."""
        return await self._rewrite_secrets(tenant_id, lambda config: promoted(config, now=now))

    async def _rewrite_secrets(
        self, tenant_id: str, change: Callable[[WebhookConfig], WebhookConfig]
    ) -> WebhookConfig | None:
        """Write the secret columns ``change`` makes of the stored config, only if no other
        save came in between (compare-and-set on the version; tried again if one did)."""
        for _ in range(3):
            existing = await self.get_config(tenant_id)
            if existing is None:
                return None
            wanted = change(existing)
            pending = wanted.pending_secret
            sealed = None if pending is None else self._seal(tenant_id, pending)
            async with self._guard(), self.engine.begin() as conn:
                row = (
                    await conn.execute(
                        update(_T)
                        .where(_T.c.tenant_id == tenant_id, _T.c.version == existing.version)
                        .values(
                            secret=self._seal(tenant_id, wanted.secret),
                            pending_secret=sealed,
                            pending_since=wanted.pending_since,
                            pending_promotes_at=wanted.pending_promotes_at,
                            version=_T.c.version + 1,
                            updated_at=func.now(),
                        )
                        .returning(_T)
                    )
                ).first()
            if row is not None:
                return self._to_config(row._mapping)
        raise StoreError(f"could not save the secret of tenant {tenant_id!r}: it kept changing")

    async def versions(self) -> dict[str, int]:
        """Every tenant's config version, in one query: how caches notice other writers."""
        await self.open()
        async with self._guard(), self.engine.connect() as conn:
            rows = await conn.execute(select(_T.c.tenant_id, _T.c.version))
            return {tenant_id: int(version) for tenant_id, version in rows}

    async def delete_config(self, tenant_id: str) -> bool:
        """Remove the tenant's row."""
        await self.open()
        if _tenant_id_problem(tenant_id) is not None:
            return False
        async with self._guard(), self.engine.begin() as conn:
            result = await conn.execute(_T.delete().where(_T.c.tenant_id == tenant_id))
        return bool(result.rowcount)

    async def reencrypt_secrets(self) -> ReencryptReport:
        """Re-encrypt every secret that is plaintext or under an older key, with the first key:
        every column marked :data:`~._models.ENCRYPTED_SECRET` (webhook configs' current and
        pending secrets, event endpoints' current and pending secrets), each bound as its
        table says (:data:`~._models.SECRET_BINDING`).  Counts are rows; an unreadable one is
        named by its tenant id (a webhook config) or ``tenant/endpoint id``.

        Each row is rewritten only if it still holds what was read (compare-and-set), so a
        rotation saved meanwhile is never overwritten.  The plaintext does not change, so
        neither does the config's version.
        """
        await self.open()
        box = self._box
        if box is None:
            raise StoreError(
                f"the config store at {safe_url(self._url)} has no encryption keys: set "
                "VIZOCHOK_SECRET_KEYS"
            )
        total, reencrypted, unreadable = 0, 0, []
        for table, columns in _by_table(encrypted_secret_columns()).items():
            keys = list(table.primary_key.columns)
            async with self._guard(), self.engine.connect() as conn:
                rows = (await conn.execute(select(table))).all()  # bindings read other columns
            for row in rows:
                found: dict[str, Any] = dict(row._mapping)
                where = [key == found[key.name] for key in keys]
                # a rolled secret is kept like the current one; a row counts once
                outcomes = [
                    await self._reencrypt(box, secret_binding(column, found), column, stored, where)
                    for column in columns
                    if (stored := found[column.name]) is not None
                ]
                total += 1
                if None in outcomes:
                    unreadable.append(_row_label(table, found))
                else:
                    reencrypted += int(any(outcomes))
        _log.info(
            "secrets.reencrypted",
            total=total,
            reencrypted=reencrypted,
            unreadable=len(unreadable),
            key_id=box.primary_key_id,
        )
        return ReencryptReport(
            total=total,
            reencrypted=reencrypted,
            current=total - reencrypted - len(unreadable),
            unreadable=tuple(unreadable),
        )

    async def _reencrypt(
        self,
        box: SecretBox,
        bound_to: str,
        column: Column[str],
        stored: str,
        where: list[ColumnElement[bool]],
    ) -> bool | None:
        """Re-encrypt one stored secret with the first key: whether it was rewritten, or
        ``None`` when it cannot be read.  Compare-and-set: a value changed meanwhile stays."""
        if not box.needs_reencryption(stored):
            return False
        try:
            plain = box.decrypt(bound_to, stored)
        except SecretUnreadable:
            return None
        table = column.table
        async with self._guard(), self.engine.begin() as conn:
            result = await conn.execute(
                update(table)
                .where(*where, column == stored)
                .values({column.name: box.encrypt(bound_to, plain)})
            )
        return bool(result.rowcount)

    def _seal(self, tenant_id: str, secret: str) -> str:
        """What the ``secret`` column gets: ciphertext when this store has keys."""
        if self._box is not None:
            return self._box.encrypt(tenant_id, secret)
        if not self._url.startswith("sqlite"):  # in-memory SQLite keeps nothing at rest
            _log.warning("secrets.stored_unencrypted", tenant_id=tenant_id, store=self.url)
        return secret

    def _to_config(self, row: Any) -> WebhookConfig:  # noqa: ANN401 - a SQLAlchemy row mapping
        pending: str | None = row["pending_secret"]
        return _to_config(
            row,
            self._unseal(row["tenant_id"], row["secret"]),
            None if pending is None else self._unseal(row["tenant_id"], pending),
        )

    def _unseal(self, tenant_id: str, stored: str) -> str:
        if self._box is not None:
            return self._box.decrypt(tenant_id, stored)
        if is_encrypted(stored):
            raise SecretUnreadable(
                f"the webhook secret of tenant {tenant_id!r} is encrypted, and this "
                "store has no keys: set VIZOCHOK_SECRET_KEYS"
            )
        return stored

    async def _insert(self, config: WebhookConfig) -> WebhookConfig:
        async with self._guard(IntegrityError), self.engine.begin() as conn:
            row = (
                await conn.execute(
                    insert(_T)
                    .values(
                        tenant_id=config.tenant_id,
                        products_url=config.products_url,
                        cart_url=config.cart_url,
                        cart_get_url=config.cart_get_url,
                        timeout_seconds=config.timeout_seconds,
                        secret=self._seal(config.tenant_id, config.secret),
                        version=1,
                    )
                    .returning(_T)
                )
            ).one()
        return self._to_config(row._mapping)

    async def _update(self, tenant_id: str, changed: dict[str, object]) -> WebhookConfig | None:
        if isinstance(changed.get("secret"), str):
            changed = {**changed, "secret": self._seal(tenant_id, cast(str, changed["secret"]))}
        async with self._guard(), self.engine.begin() as conn:
            row = (
                await conn.execute(
                    update(_T)
                    .where(_T.c.tenant_id == tenant_id)
                    .values(**changed, version=_T.c.version + 1, updated_at=func.now())
                    .returning(_T)
                )
            ).first()
        return None if row is None else self._to_config(row._mapping)

    def _guard(self, *passthrough: type[BaseException]) -> _StoreErrors:
        return _StoreErrors(self._url, passthrough)


class _StoreErrors:
    """Turns driver errors into :class:`StoreError` without leaking the URL's password."""

    def __init__(self, url: str, passthrough: tuple[type[BaseException], ...]) -> None:
        self._url = url
        self._passthrough = passthrough

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, _tb: object
    ) -> None:
        if exc is None or isinstance(exc, self._passthrough):
            return
        if isinstance(exc, _DATABASE_ERRORS):
            raise StoreError(
                f"config store at {safe_url(self._url)} failed: "
                f"{database_error_reason(exc, self._url)}"
            ) from exc


#: What reaching a database can raise: the driver's errors (wrapped by SQLAlchemy, or raw
#: from a connect: OSError, TimeoutError) and SQLite's own.
_DATABASE_ERRORS: Final = (SQLAlchemyError, OSError, sqlite3.Error)


#: The columns a rotate clears: a new secret replaces at once and drops a rolled one.
_NO_PENDING: Final = {"pending_secret": None, "pending_since": None, "pending_promotes_at": None}


def _utc(value: Any) -> Any:  # noqa: ANN401 - what the driver returns
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # SQLite keeps no zone; we write UTC
    return value


def _to_config(row: Any, secret: str, pending: str | None) -> WebhookConfig:  # noqa: ANN401 - a SQLAlchemy row mapping
    return WebhookConfig(
        tenant_id=row["tenant_id"],
        products_url=row["products_url"],
        cart_url=row["cart_url"],
        cart_get_url=row["cart_get_url"],
        timeout_seconds=float(row["timeout_seconds"]),
        secret=secret,
        version=int(row["version"]),
        updated_at=_utc(row["updated_at"]),
        pending_secret=pending,
        pending_since=_utc(row["pending_since"]),
        pending_promotes_at=_utc(row["pending_promotes_at"]),
    )


_LOST_KEY_ADVICE = (
    "No new key was made: it would leave every stored secret unreadable. If the key is lost "
    "for good, so are those secrets: delete the rows of webhook_configs and event_endpoints "
    "and have each tenant save its webhooks and endpoints again (tenants and API keys are "
    "kept)."
)


def _missing_key_file(database: Path, key_file: Path, key_ids: list[str]) -> str:
    return (
        f"the webhook and event endpoint secrets stored in {database} are encrypted with key "
        f"{', '.join(key_ids)}, and "
        f"its key file {key_file} is missing. Restore {key_file.name} from the backup of the "
        f"database (they belong together), or set {KEYS_SETTING} to that key's line "
        f"(key_id:base64key). {_LOST_KEY_ADVICE}"
    )


def _not_a_key_file(database: Path, key_file: Path, kind: str, key_ids: list[str]) -> str:
    if key_ids:
        return (
            f"the webhook and event endpoint secrets stored in {database} are encrypted with "
            f"key {', '.join(key_ids)}, "
            f"and where its key file belongs, {key_file} is {kind}, not a key file. Move it "
            f"away and restore {key_file.name} from the database's backup, or set "
            f"{KEYS_SETTING} to that key's line (key_id:base64key). {_LOST_KEY_ADVICE}"
        )
    return (
        f"{key_file} is {kind}, not the key file of {database.name}: move it away (a new key "
        f"file is then made there, as no stored secret is encrypted yet), or set {KEYS_SETTING}"
    )


def _wrong_key_file(database: Path, key_file: Path, key_ids: list[str], box: SecretBox) -> str:
    return (
        f"the webhook and event endpoint secrets stored in {database} are encrypted with key "
        f"{', '.join(key_ids)}, and "
        f"the key file {key_file} holds only {', '.join(box.key_ids)}. Restore the key file "
        f"that belongs with this database, or set {KEYS_SETTING} to its key's line "
        f"(key_id:base64key). {_LOST_KEY_ADVICE}"
    )


#: Tenants named in a refusal: enough to recognise the deployment, bounded for the log line.
_NAMED_TENANTS = 5


def _wrong_keys_setting(key_ids: list[str], box: SecretBox, tenants: list[str]) -> str:
    named = ", ".join(tenants[:_NAMED_TENANTS]) + (", ..." if len(tenants) > _NAMED_TENANTS else "")
    return (
        f"the webhook and event endpoint secrets stored in the config store (tenants {named}) "
        f"are encrypted with key "
        f"{', '.join(key_ids)}, "
        f"and {KEYS_SETTING} holds only {', '.join(box.key_ids)}. Add that key's line "
        f"(key_id:base64key) to {KEYS_SETTING}: the first key encrypts, every key decrypts. "
        f"{_LOST_KEY_ADVICE}"
    )


def _by_table(columns: list[Column[str]]) -> dict[Table, list[Column[str]]]:
    """The marked columns grouped by their table, in table order."""
    grouped: dict[Table, list[Column[str]]] = {}
    for column in columns:
        grouped.setdefault(column.table, []).append(column)
    return grouped


def _row_label(table: Table, row: dict[str, Any]) -> str:
    """How ``secrets reencrypt`` names an unreadable row: the tenant id for its webhook
    config, ``tenant/id`` for a row of another table (an event endpoint)."""
    if list(table.primary_key.columns) == [table.c.tenant_id]:
        return str(row["tenant_id"])
    return f"{row['tenant_id']}/{row['id']}"
