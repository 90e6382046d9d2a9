"""The event store: endpoints, events, deliveries and attempts in the config store's database.

It runs on the :class:`~vizochok_dispatch.SqlConfigStore`'s engine and keyring: the same
database, migrations and keys as the webhook configs.  Endpoint secrets are encrypted at rest
like webhook secrets (``tenants._crypto``), bound to their tenant and endpoint, so a secret
copied into another row does not decrypt.

Transactions that write start as writes (``BEGIN IMMEDIATE`` on SQLite, which waits for the
write lock within the busy timeout instead of failing when a read turns into a write).  On a
SQLite file, this process's write transactions also take turns on an ``asyncio.Lock``: SQLite
has one writer at a time anyway, and its busy handler polls with sleeps of up to 100 ms, so
many publishers (and the worker's claims and settlements) in one process queued there waited
up to a second each and failed past the busy timeout; in the lock they wait their turn in
order.  Other processes still wait within the busy timeout.

The delivery state machine's storage half (Svix's model):

- ``publish``: the event and one ``pending`` delivery per enabled subscribed endpoint, due at
  once, in one transaction; an ordered endpoint numbers its deliveries in publish order.
- ``claim_due`` / ``claim_one``: a worker takes due deliveries with a *lease* (``claimed_until``
  = now + the endpoint's timeout + :data:`LEASE_GRACE_SECONDS`) and a token; a worker that
  dies leaves the lease to run out, and the delivery is due again.  An ordered endpoint's
  deliveries are claimable only at its head (its pending delivery with the lowest sequence),
  so they go one at a time, in order, in any number of processes.
- ``settle``: records the attempt and the delivery's next state, only if the token still holds
  the lease (a worker that lost it records nothing: the new holder makes that attempt).
  Settlements that come while another is being written are written together, in the next
  transaction (a group commit): a commit waits for the disk (2-3 ms on SQLite), so one a
  settlement capped the worker at a few hundred deliveries a second.  Each caller still
  returns only once its own settlement is committed, or gets the transaction's error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final, cast

import structlog
from sqlalchemy import (
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.engine import URL, RowMapping
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import StaticPool

from .._exceptions import SecretUnreadable, StoreError
from ..tenants._crypto import KEYS_SETTING, SecretBox, is_encrypted
from ..tenants._pages import Cursor, Page, before, newest_first, page_of
from ..tenants._sql_store import SqlConfigStore, safe_url
from ._operations import BATCH_SIZE, AutoDisable, Retention
from ._tables import (
    DELIVERED,
    FAILED,
    MANUAL,
    PENDING,
    SCHEDULED,
    TEST,
    EventAttemptRow,
    EventDeliveryRow,
    EventEndpointRow,
    EventRow,
    UtcDateTime,
    _secret_name,
)
from ._values import (
    DeliveryStatus,
    EndpointDisabled,
    EventAttempt,
    EventDelivery,
    EventEndpoint,
    PublishedEvent,
    PurgeReport,
)

_E = cast(Table, EventEndpointRow.__table__)
_V = cast(Table, EventRow.__table__)
_D = cast(Table, EventDeliveryRow.__table__)
_A = cast(Table, EventAttemptRow.__table__)

#: An attempt's columns but its answer (a page of the log leaves the answers out).
_ATTEMPT_FIELDS: Final = tuple(c.name for c in _A.c if c.name != "response")
#: How long past an attempt's own time limit its lease lasts: room to record the outcome.
LEASE_GRACE_SECONDS: Final = 5.0
#: How long an idempotency key keeps naming its event.
IDEMPOTENCY_WINDOW: Final = timedelta(hours=24)
#: The delivery's detail when its endpoint was disabled before it was delivered.
ENDPOINT_DISABLED: Final = "endpoint_disabled"
#: Why an endpoint disabled by hand (``enabled: false``) is disabled.  Its pending deliveries
#: wait, unattempted, and resume when it is enabled again; any other reason (a ``410``)
#: failed them.
MANUAL_DISABLE_REASON: Final = "disabled by hand (admin API or CLI)"

_log = structlog.get_logger("vizochok_dispatch")


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery a worker holds the lease of, with everything its attempt needs."""

    delivery_id: str
    token: str
    #: The number this attempt carries (attempts recorded so far + 1).
    attempt: int
    event_id: str
    event_type: str
    body: bytes = field(repr=False)
    tenant_id: str = ""
    endpoint_id: str = ""
    url: str = ""
    secret: str | None = field(default=None, repr=False)
    #: A rolled secret not promoted yet, and when it signs by itself.
    pending_secret: str | None = field(default=None, repr=False)
    pending_promotes_at: datetime | None = None
    signature_scheme: str = "vizochok"
    timeout_seconds: float = 15.0
    enabled: bool = True
    ordered: bool = False
    #: What started this attempt (``scheduled``, ``manual`` or ``test``).
    trigger: str = SCHEDULED
    #: An endpoint test's delivery: one attempt, never counted towards auto-disable.
    test: bool = False


@dataclass(frozen=True, slots=True)
class Settlement:
    """What one attempt (or its absence) made of a delivery."""

    status: DeliveryStatus
    next_attempt_at: datetime | None
    detail: str | None
    attempt: EventAttempt | None = None
    #: Set: disable the endpoint with this reason (it answered ``410 Gone``).
    disable_reason: str | None = None
    #: A redirect's ``Location`` (never followed; an endpoint test's report names it).
    location: str | None = None


@dataclass(frozen=True, slots=True)
class Settled:
    """What recording an attempt did: whether it was recorded, and the endpoint it disabled."""

    recorded: bool
    disabled: EndpointDisabled | None = None


#: What a claim reads: the delivery, its event and its endpoint (``EventStore._claim``).
_CLAIM_ROW: Final = (
    select(
        _D.c.id,
        _D.c.attempts,
        _D.c.event_id,
        _D.c.endpoint_id,
        _D.c.tenant_id,
        _V.c.event_type,
        _V.c.body,
        _E.c.url,
        _E.c.secret,
        _E.c.pending_secret,
        _E.c.pending_promotes_at,
        _E.c.signature_scheme,
        _E.c.timeout_seconds,
        _E.c.enabled,
        _E.c.ordered,
        _D.c.trigger,
        _D.c.test,
    )
    .join(_V, _V.c.id == _D.c.event_id)
    .join(_E, _E.c.id == _D.c.endpoint_id)
)

#: Why a delivery could not be taken for a retry (``EventStore.claim_for_retry``).
NOT_FOUND: Final = "not_found"
IN_FLIGHT: Final = "in_flight"


#: Settlements written in one transaction at most.
MAX_SETTLEMENTS_PER_COMMIT: Final = 256


@dataclass(slots=True)
class _Waiting:
    """A settlement waiting for its transaction, and the caller waiting for its outcome."""

    claim: Claim
    settlement: Settlement
    now: datetime
    outcome: asyncio.Future[Settled]


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """Where one delivery stands, for a job queue deciding what its job does next."""

    id: str
    endpoint_id: str
    #: The endpoint delivers one at a time, in publish order.
    ordered: bool
    status: DeliveryStatus
    next_attempt_at: datetime | None
    #: The lease's end while a worker holds it (it may have run out already).
    claimed_until: datetime | None
    #: An ordered endpoint's head: its pending delivery with the lowest sequence.
    head_id: str | None
    #: ``False`` while the endpoint is disabled: nothing is claimable, its job has no work
    #: (enabled again, the sweep defers a job for each due delivery).
    enabled: bool = True


class EventStore:
    """Event webhooks' rows, on a :class:`SqlConfigStore`'s engine and keys."""

    def __init__(
        self, config_store: SqlConfigStore, *, auto_disable: AutoDisable | None = None
    ) -> None:
        self._config = config_store
        self._auto_disable = auto_disable or AutoDisable()
        self._own_engine: AsyncEngine | None = None
        self._serial: asyncio.Lock | None = None
        #: SQLite file: this process's write transactions, one at a time (module docstring).
        self._writer: asyncio.Lock | None = None
        #: Settlements not yet in a transaction, and the task writing them (group commit).
        self._unsettled: list[_Waiting] = []
        self._settler: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._config.url

    @property
    def dialect(self) -> str:
        """The database's SQLAlchemy dialect name (``sqlite``, ``postgresql``)."""
        return self._config.engine.dialect.name

    @property
    def sqlalchemy_url(self) -> URL:
        """The database URL as SQLAlchemy parsed it; its password is shown only by
        ``render_as_string(hide_password=False)``."""
        return self._config.engine.url

    @property
    def _engine(self) -> AsyncEngine:
        return self._own_engine or self._config.engine

    async def open(self) -> None:
        """Open (migrate, or check) the database through the config store; idempotent.

        Event work gets an engine (a pool) of its own, so a busy worker never makes a config
        lookup wait for a connection; in-memory SQLite lives in one connection, which is
        shared, one transaction at a time.
        """
        await self._config.open()
        if self._own_engine is not None or self._serial is not None:
            return
        await self._check_keys()
        if isinstance(self._config.engine.pool, StaticPool):
            self._serial = asyncio.Lock()
        else:
            self._own_engine = self._config.create_engine()
            if self._own_engine.dialect.name == "sqlite":
                self._writer = asyncio.Lock()

    async def _check_keys(self) -> None:
        """Refuse keys none of which reads any stored endpoint secret (a lost key file, or
        the wrong ``VIZOCHOK_SECRET_KEYS``): every delivery would fail to sign."""
        async with self._guard(), self._config.engine.connect() as conn:
            stored = (
                await conn.execute(
                    select(_E.c.secret)
                    .where(_E.c.secret.startswith("v1.", autoescape=True))
                    .limit(100)
                )
            ).scalars()
            needed = sorted({value.split(".")[1] for value in stored if is_encrypted(value)})
        have = self._box.key_ids if self._box is not None else ()
        if needed and not set(needed) & set(have):
            raise SecretUnreadable(
                f"the event endpoint secrets in {self.url} are encrypted with key "
                f"{', '.join(needed)}, and the keys configured hold "
                f"{', '.join(have) or 'none'}: restore the key file that belongs with this "
                f"database, or set {KEYS_SETTING} to that key's line (key_id:base64key)"
            )

    async def close(self) -> None:
        """Finish writing the settlements under way, then dispose of the engine of its own;
        idempotent."""
        if self._settler is not None:
            await asyncio.gather(self._settler, return_exceptions=True)
        if self._own_engine is not None:
            engine, self._own_engine = self._own_engine, None
            await engine.dispose()

    # -- transactions ------------------------------------------------------------------------

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        await self.open()
        async with _holding(self._serial), self._guard(), self._engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        await self.open()
        async with (
            _holding(self._serial),
            _holding(self._writer),
            self._guard(IntegrityError),
            self._engine.connect() as conn,
        ):
            if conn.dialect.name == "sqlite" and self._serial is None:
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                await conn.begin()
            try:
                yield conn
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()

    @asynccontextmanager
    async def _guard(self, *passthrough: type[BaseException]) -> AsyncIterator[None]:
        try:
            yield
        except passthrough:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(
                f"event store at {safe_url(self._config.url)} failed: {type(exc).__name__}"
            ) from exc

    # -- secrets -----------------------------------------------------------------------------

    @property
    def _box(self) -> SecretBox | None:
        return self._config.secret_box

    def _seal(self, tenant_id: str, endpoint_id: str, secret: str) -> str:
        if self._box is not None:
            return self._box.encrypt(_secret_name(tenant_id, endpoint_id), secret)
        if self._engine.dialect.name != "sqlite":
            _log.warning("secrets.stored_unencrypted", tenant_id=tenant_id, store=self.url)
        return secret

    def _unseal(self, tenant_id: str, endpoint_id: str, stored: str) -> str:
        if self._box is None:
            if is_encrypted(stored):
                raise SecretUnreadable(
                    f"the secret of event endpoint {endpoint_id!r} (tenant {tenant_id!r}) is "
                    f"encrypted, and this store has no keys: set {KEYS_SETTING}"
                )
            return stored
        try:
            return self._box.decrypt(_secret_name(tenant_id, endpoint_id), stored)
        except SecretUnreadable:
            raise SecretUnreadable(
                f"the secret of event endpoint {endpoint_id!r} (tenant {tenant_id!r}) does not "
                f"decrypt with the configured keys ({', '.join(self._box.key_ids)}): its key "
                f"is missing from {KEYS_SETTING}, or the value was copied from another row"
            ) from None

    # -- endpoints ---------------------------------------------------------------------------

    async def insert_endpoint(self, endpoint: EventEndpoint) -> EventEndpoint:
        """Store a validated endpoint (its secret encrypted)."""
        async with self._writing() as conn:
            await conn.execute(
                insert(_E).values(
                    id=endpoint.id,
                    tenant_id=endpoint.tenant_id,
                    url=endpoint.url,
                    event_types=list(endpoint.event_types),
                    signature_scheme=endpoint.signature_scheme,
                    secret=self._seal(endpoint.tenant_id, endpoint.id, endpoint.secret),
                    timeout_seconds=endpoint.timeout_seconds,
                    ordered=endpoint.ordered,
                    description=endpoint.description,
                    enabled=endpoint.enabled,
                    last_sequence=0,
                    created_at=endpoint.created_at,
                    updated_at=endpoint.updated_at,
                )
            )
        return endpoint

    async def endpoints(self, tenant_id: str) -> list[EventEndpoint]:
        """The tenant's endpoints, oldest first."""
        async with self._reading() as conn:
            rows = await conn.execute(
                select(_E).where(_E.c.tenant_id == tenant_id).order_by(_E.c.created_at, _E.c.id)
            )
            return [self._endpoint(row._mapping) for row in rows]

    async def rewrite_secrets(
        self,
        tenant_id: str,
        endpoint_id: str,
        change: Callable[[EventEndpoint], EventEndpoint],
        *,
        now: datetime,
    ) -> EventEndpoint | None:
        """Store the secret columns ``change`` makes of the tenant's endpoint ``endpoint_id``
        (a roll, promote or rotate), only if they did not change in between (compared as
        stored; tried again if they did).  ``None``: the tenant has no such endpoint."""
        for _ in range(3):
            async with self._reading() as conn:
                row = (
                    await conn.execute(
                        select(_E).where(_E.c.id == endpoint_id, _E.c.tenant_id == tenant_id)
                    )
                ).first()
            if row is None:
                return None
            stored = row._mapping
            wanted = change(self._endpoint(stored))
            pending = wanted.pending_secret
            async with self._writing() as conn:
                result = await conn.execute(
                    update(_E)
                    .where(
                        _E.c.id == endpoint_id,
                        _E.c.secret == stored["secret"],
                        _E.c.pending_secret.is_(None)
                        if stored["pending_secret"] is None
                        else _E.c.pending_secret == stored["pending_secret"],
                    )
                    .values(
                        secret=self._seal(tenant_id, endpoint_id, wanted.secret),
                        pending_secret=None
                        if pending is None
                        else self._seal(tenant_id, endpoint_id, pending),
                        pending_since=wanted.pending_since,
                        pending_promotes_at=wanted.pending_promotes_at,
                        updated_at=now,
                    )
                )
            if result.rowcount == 1:
                return replace(wanted, updated_at=now)
        raise StoreError(
            f"could not save the secret of event endpoint {endpoint_id!r}: it kept changing"
        )

    async def endpoint(self, tenant_id: str, endpoint_id: str) -> EventEndpoint | None:
        """The tenant's endpoint ``endpoint_id``, or ``None`` (another tenant's included)."""
        async with self._reading() as conn:
            row = (
                await conn.execute(
                    select(_E).where(_E.c.id == endpoint_id, _E.c.tenant_id == tenant_id)
                )
            ).first()
            return None if row is None else self._endpoint(row._mapping)

    async def update_endpoint(
        self, tenant_id: str, endpoint_id: str, changes: Mapping[str, object], *, now: datetime
    ) -> EventEndpoint | None:
        """Write validated ``changes`` (column: value) to the tenant's endpoint; ``None`` when
        the tenant has no such endpoint.  An ``enabled`` change sets or clears the disabled
        reason and time, which ``changes`` may give as ``disabled_reason``."""
        values: dict[str, object] = {**changes, "updated_at": now}
        if "event_types" in values:
            values["event_types"] = list(cast(Sequence[str], values["event_types"]))
        async with self._writing() as conn:
            row = (
                await conn.execute(
                    select(_E.c.enabled).where(_E.c.id == endpoint_id, _E.c.tenant_id == tenant_id)
                )
            ).first()
            if row is None:
                return None
            if values.get("enabled") is True:
                values.update(disabled_reason=None, disabled_at=None)
                if not row.enabled:  # enabled again: auto-disable counts afresh
                    values.update(failed_deliveries=0, failing_since=None)
            elif values.get("enabled") is False and row.enabled:
                values.setdefault("disabled_reason", MANUAL_DISABLE_REASON)
                values["disabled_at"] = now
            else:  # disabling a disabled endpoint keeps its reason and time
                values.pop("disabled_reason", None)
            await conn.execute(
                update(_E)
                .where(_E.c.id == endpoint_id, _E.c.tenant_id == tenant_id)
                .values(**values)
            )
            found = (await conn.execute(select(_E).where(_E.c.id == endpoint_id))).one()
            return self._endpoint(found._mapping)

    async def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> bool:
        """Delete the tenant's endpoint with its deliveries and their attempts (the events
        stay); ``False`` when the tenant has no such endpoint.  An attempt in flight then
        records nothing."""
        owned = select(_D.c.id).where(_D.c.endpoint_id == endpoint_id)
        async with self._writing() as conn:
            found = (
                await conn.execute(
                    select(_E.c.id).where(_E.c.id == endpoint_id, _E.c.tenant_id == tenant_id)
                )
            ).first()
            if found is None:
                return False
            # explicit, not ON DELETE CASCADE: SQLite enforces foreign keys only when asked
            await conn.execute(delete(_A).where(_A.c.delivery_id.in_(owned)))
            await conn.execute(delete(_D).where(_D.c.endpoint_id == endpoint_id))
            await conn.execute(delete(_E).where(_E.c.id == endpoint_id))
        return True

    def _endpoint(self, row: RowMapping) -> EventEndpoint:
        pending: str | None = row["pending_secret"]
        return EventEndpoint(
            id=row["id"],
            tenant_id=row["tenant_id"],
            url=row["url"],
            event_types=tuple(row["event_types"]),
            signature_scheme=row["signature_scheme"],
            secret=self._unseal(row["tenant_id"], row["id"], row["secret"]),
            timeout_seconds=float(row["timeout_seconds"]),
            ordered=bool(row["ordered"]),
            description=row["description"],
            enabled=bool(row["enabled"]),
            disabled_reason=row["disabled_reason"],
            disabled_at=row["disabled_at"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            pending_secret=None
            if pending is None
            else self._unseal(row["tenant_id"], row["id"], pending),
            pending_since=row["pending_since"],
            pending_promotes_at=row["pending_promotes_at"],
        )

    # -- publishing --------------------------------------------------------------------------

    async def publish(
        self,
        *,
        event_id: str,
        tenant_id: str,
        event_type: str,
        body: bytes,
        idempotency_key: str | None,
        now: datetime,
        subscribes: Callable[[Sequence[str]], bool],
        new_delivery_id: Callable[[], str],
    ) -> PublishedEvent:
        """Commit the event and one due delivery per enabled endpoint ``subscribes`` accepts,
        in one transaction; or, when ``idempotency_key`` names an event of the last 24 h,
        return that event (``duplicate=True``) and write nothing."""
        for _ in range(3):  # a concurrent publish with the same key wins: read its event
            try:
                return await self._publish_once(
                    event_id=event_id,
                    tenant_id=tenant_id,
                    event_type=event_type,
                    body=body,
                    idempotency_key=idempotency_key,
                    now=now,
                    subscribes=subscribes,
                    new_delivery_id=new_delivery_id,
                )
            except IntegrityError:
                continue
        raise StoreError(f"could not publish event {event_type!r}: its key kept changing")

    async def _publish_once(
        self,
        *,
        event_id: str,
        tenant_id: str,
        event_type: str,
        body: bytes,
        idempotency_key: str | None,
        now: datetime,
        subscribes: Callable[[Sequence[str]], bool],
        new_delivery_id: Callable[[], str],
    ) -> PublishedEvent:
        async with self._writing() as conn:
            if idempotency_key is not None:
                earlier = (
                    await conn.execute(
                        select(_V).where(
                            _V.c.tenant_id == tenant_id, _V.c.idempotency_key == idempotency_key
                        )
                    )
                ).first()
                if earlier is not None and earlier.created_at > now - IDEMPOTENCY_WINDOW:
                    existing = await self._deliveries(conn, tenant_id, earlier.id, limit=None)
                    return _published(earlier._mapping, existing, duplicate=True)
                if earlier is not None:  # older than the window: the key is free again
                    await conn.execute(
                        update(_V).where(_V.c.id == earlier.id).values(idempotency_key=None)
                    )
            rows = await conn.execute(
                select(_E.c.id, _E.c.event_types, _E.c.ordered)
                .where(_E.c.tenant_id == tenant_id, _E.c.enabled.is_(True))
                .order_by(_E.c.id)  # ordered endpoints are locked in one order: no deadlock
            )
            targets = [(row.id, bool(row.ordered)) for row in rows if subscribes(row.event_types)]
            await conn.execute(
                insert(_V).values(
                    id=event_id,
                    tenant_id=tenant_id,
                    event_type=event_type,
                    body=body,
                    idempotency_key=idempotency_key,
                    created_at=now,
                )
            )
            deliveries: list[EventDelivery] = []
            values: list[dict[str, object]] = []
            for endpoint_id, ordered in targets:
                sequence = None
                if ordered:
                    sequence = (
                        await conn.execute(
                            update(_E)
                            .where(_E.c.id == endpoint_id)
                            .values(last_sequence=_E.c.last_sequence + 1)
                            .returning(_E.c.last_sequence)
                        )
                    ).scalar_one()
                delivery = EventDelivery(
                    id=new_delivery_id(),
                    event_id=event_id,
                    endpoint_id=endpoint_id,
                    tenant_id=tenant_id,
                    event_type=event_type,
                    status="pending",
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                )
                deliveries.append(delivery)
                values.append(
                    {
                        "id": delivery.id,
                        "event_id": event_id,
                        "endpoint_id": endpoint_id,
                        "tenant_id": tenant_id,
                        "event_type": event_type,
                        "status": PENDING,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "sequence": sequence,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            if values:
                await conn.execute(insert(_D), values)
        return PublishedEvent(
            id=event_id,
            tenant_id=tenant_id,
            event_type=event_type,
            timestamp=now,
            body=body,
            idempotency_key=idempotency_key,
            deliveries=tuple(deliveries),
        )

    # -- reading deliveries ------------------------------------------------------------------

    async def deliveries(
        self, tenant_id: str, *, event_id: str | None, limit: int
    ) -> list[EventDelivery]:
        """The tenant's deliveries (of one event), oldest first, with their attempts."""
        async with self._reading() as conn:
            return await self._deliveries(conn, tenant_id, event_id, limit=limit)

    async def _deliveries(
        self, conn: AsyncConnection, tenant_id: str, event_id: str | None, *, limit: int | None
    ) -> list[EventDelivery]:
        query = select(_D).where(_D.c.tenant_id == tenant_id).order_by(_D.c.created_at, _D.c.id)
        if event_id is not None:
            query = query.where(_D.c.event_id == event_id)
        if limit is not None:
            query = query.limit(limit)
        rows = [row._mapping for row in await conn.execute(query)]
        attempts = await self._attempts(conn, [row["id"] for row in rows])
        return [_delivery(row, row["event_type"], attempts) for row in rows]

    async def delivery_log(
        self,
        tenant_id: str,
        *,
        limit: int,
        cursor: Cursor | None = None,
        endpoint_id: str | None = None,
        event_type: str | None = None,
        status: str | None = None,
        event_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[EventDelivery]:
        """One page of the tenant's deliveries, newest first, matching every filter given
        (``since`` inclusive, ``until`` exclusive, on the creation time), each with its
        attempts but not their answers; keyset pagination (``tenants._pages``)."""
        query = select(_D).where(_D.c.tenant_id == tenant_id)
        for column, value in (
            (_D.c.endpoint_id, endpoint_id),
            (_D.c.event_type, event_type),
            (_D.c.status, status),
            (_D.c.event_id, event_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(_D.c.created_at >= since)
        if until is not None:
            query = query.where(_D.c.created_at < until)
        if cursor is not None:
            query = query.where(before(_D.c.created_at, _D.c.id, cursor))
        found = query.order_by(*newest_first(_D.c.created_at, _D.c.id)).limit(limit + 1)
        # the page and its attempts in one statement (one round trip): the page's rows first,
        # by the index, then each one's attempts by their primary key
        paged = found.subquery("page")
        columns = [c.label(f"attempt_{c.name}") for c in _A.c if c.name != "response"]
        joined = (
            select(paged, *columns)
            .outerjoin(_A, _A.c.delivery_id == paged.c.id)
            .order_by(*newest_first(paged.c.created_at, paged.c.id), _A.c.number)
        )
        rows: dict[str, RowMapping] = {}
        attempts: dict[str, list[EventAttempt]] = {}
        async with self._reading() as conn:
            for row in await conn.execute(joined):
                mapping = row._mapping
                rows.setdefault(mapping["id"], mapping)
                tried = attempts.setdefault(mapping["id"], [])
                if mapping["attempt_number"] is not None:
                    tried.append(
                        _attempt(
                            {name: mapping[f"attempt_{name}"] for name in _ATTEMPT_FIELDS}
                            | {"response": None}
                        )
                    )
        page = page_of(list(rows.values()), limit, lambda row: (row["created_at"], row["id"]))
        return Page(
            tuple(_delivery(row, row["event_type"], attempts) for row in page.items),
            page.next_cursor,
        )

    async def delivery(self, tenant_id: str, delivery_id: str) -> EventDelivery | None:
        """The tenant's delivery ``delivery_id`` with the event body as sent and every attempt
        (answers included); ``None`` when the tenant has no such delivery."""
        async with self._reading() as conn:
            row = (
                await conn.execute(
                    select(_D, _V.c.body)
                    .join(_V, _V.c.id == _D.c.event_id)
                    .where(_D.c.id == delivery_id, _D.c.tenant_id == tenant_id)
                )
            ).first()
            if row is None:
                return None
            attempts = await self._attempts(conn, [delivery_id])
        found = row._mapping
        delivery = _delivery(found, found["event_type"], attempts)
        return replace(delivery, body=bytes(found["body"]))

    async def _attempts(
        self, conn: AsyncConnection, delivery_ids: list[str]
    ) -> dict[str, list[EventAttempt]]:
        """Each delivery's attempts, oldest first, with their answers."""
        found: dict[str, list[EventAttempt]] = {delivery_id: [] for delivery_id in delivery_ids}
        if not delivery_ids:
            return found
        rows = await conn.execute(
            select(_A)
            .where(_A.c.delivery_id.in_(delivery_ids))
            .order_by(_A.c.delivery_id, _A.c.number)
        )
        for row in rows:
            found[row.delivery_id].append(_attempt(row._mapping))
        return found

    async def count_pending(self) -> int:
        """Deliveries not yet delivered or failed, in every tenant."""
        async with self._reading() as conn:
            return int(
                (
                    await conn.execute(select(func.count()).where(_D.c.status == PENDING))
                ).scalar_one()
            )

    async def backlog(self, *, now: datetime, cap: int) -> tuple[int, datetime | None, int]:
        """Deliveries due now and free (counted up to ``cap``), the due time of the oldest,
        and the endpoints disabled; for metrics (the index on status and due time serves
        the first two)."""
        due = select(_D.c.id).where(*_claimable(now)).limit(cap).subquery()
        async with self._reading() as conn:
            count = (await conn.execute(select(func.count()).select_from(due))).scalar_one()
            oldest = (
                await conn.execute(select(func.min(_D.c.next_attempt_at)).where(*_claimable(now)))
            ).scalar_one()
            disabled = (
                await conn.execute(select(func.count()).where(_E.c.enabled.is_(False)))
            ).scalar_one()
        return int(count), oldest, int(disabled)

    # -- claiming ----------------------------------------------------------------------------

    async def claim_due(
        self,
        *,
        now: datetime,
        limit: int,
        busy: Mapping[str, int],
        per_endpoint: int,
        token: str,
    ) -> list[Claim]:
        """Lease up to ``limit`` due deliveries, at most ``per_endpoint`` in flight per
        endpoint counting ``busy`` (what this worker holds already), round robin across
        endpoints; an ordered endpoint gives only its head, one at a time."""
        saturated = [endpoint for endpoint, count in busy.items() if count >= per_endpoint]
        async with self._reading() as conn:
            candidates = (
                await conn.execute(
                    select(_D.c.id, _D.c.endpoint_id, _E.c.ordered, _E.c.timeout_seconds)
                    .join(_E, _E.c.id == _D.c.endpoint_id)
                    .where(*_claimable(now), *_not_blocked(saturated), _E.c.enabled.is_(True))
                    .order_by(_D.c.next_attempt_at, _D.c.id)
                    .limit(limit * 4)
                )
            ).all()
        picked = _round_robin(
            [(row.id, row.endpoint_id, bool(row.ordered)) for row in candidates],
            limit=limit,
            busy=busy,
            per_endpoint=per_endpoint,
        )
        if not picked:
            return []
        leases: dict[float, list[str]] = {}
        timeouts = {row.id: float(row.timeout_seconds) for row in candidates}
        for delivery_id in picked:
            leases.setdefault(timeouts[delivery_id], []).append(delivery_id)
        claimed: list[str] = []
        async with self._writing() as conn:
            for timeout, ids in leases.items():
                result = await conn.execute(
                    update(_D)
                    .where(_D.c.id.in_(ids), *_claimable(now))
                    .values(
                        claimed_until=now + timedelta(seconds=timeout + LEASE_GRACE_SECONDS),
                        claim_token=token,
                        updated_at=now,
                    )
                    .returning(_D.c.id)
                )
                claimed.extend(result.scalars())
            # read in the same transaction: one connection and commit a fill, not two
            rows = (
                (await conn.execute(_CLAIM_ROW.where(_D.c.id.in_(claimed)))).all()
                if claimed
                else []
            )
        claims = [self._claim(row, token) for row in rows]
        order = {delivery_id: index for index, delivery_id in enumerate(claimed)}
        return sorted(claims, key=lambda claim: order[claim.delivery_id])

    async def claim_one(self, delivery_id: str, *, now: datetime, token: str) -> Claim | None:
        """Lease one delivery by id if it is due and free (an ordered endpoint's only at its
        head); ``None`` otherwise (:meth:`claim_ids` of one id)."""
        found = await self.claim_ids([delivery_id], now=now, token=token)
        return found[0] if found else None

    async def claim_ids(self, ids: Sequence[str], *, now: datetime, token: str) -> list[Claim]:
        """Lease the deliveries ``ids`` that are due and free (an ordered endpoint's only at
        its head) and whose endpoint is enabled; the claims, in the order of ``ids``.

        One transaction (a job queue's hot path, and a publish handing its deliveries to the
        worker in its process): read what the attempts need, then lease what is still
        claimable.  The delivery's own fields that another worker may have changed in between
        (its attempts, trigger, test) are taken from the lease's ``RETURNING``, not the read.
        """
        if not ids:
            return []
        async with self._writing() as conn:
            rows = {
                row.id: row
                for row in await conn.execute(
                    _CLAIM_ROW.where(_D.c.id.in_(list(ids)), _E.c.enabled.is_(True))
                )
            }
            leases: dict[float, list[str]] = {}
            for row in rows.values():
                leases.setdefault(float(row.timeout_seconds), []).append(row.id)
            leased: dict[str, Any] = {}
            for timeout, batch in leases.items():
                result = await conn.execute(
                    update(_D)
                    .where(_D.c.id.in_(batch), *_claimable(now), *_not_blocked([]))
                    .values(
                        claimed_until=now + timedelta(seconds=timeout + LEASE_GRACE_SECONDS),
                        claim_token=token,
                        updated_at=now,
                    )
                    .returning(_D.c.id, _D.c.attempts, _D.c.trigger, _D.c.test)
                )
                leased.update((row.id, row) for row in result)
        return [
            self._claim(rows[delivery_id], token, leased[delivery_id])
            for delivery_id in dict.fromkeys(ids)
            if delivery_id in leased
        ]

    def _claim(
        self,
        row: Any,  # noqa: ANN401 - a row of _CLAIM_ROW
        token: str,
        leased: Any = None,  # noqa: ANN401 - the lease's RETURNING row
    ) -> Claim:
        """A :class:`Claim` from a row of :data:`_CLAIM_ROW`, the delivery's attempts, trigger
        and test taken from ``leased`` when given; an unreadable secret is logged and left
        ``None``."""
        pending: str | None = None
        try:
            secret: str | None = self._unseal(row.tenant_id, row.endpoint_id, row.secret)
            if row.pending_secret is not None:
                pending = self._unseal(row.tenant_id, row.endpoint_id, row.pending_secret)
        except SecretUnreadable as exc:
            _log.error(
                "event.secret_unreadable",
                delivery_id=row.id,
                endpoint_id=row.endpoint_id,
                error=str(exc),
            )
            secret = None
        delivery = row if leased is None else leased
        return Claim(
            delivery_id=row.id,
            token=token,
            attempt=int(delivery.attempts) + 1,
            event_id=row.event_id,
            event_type=row.event_type,
            body=bytes(row.body),
            tenant_id=row.tenant_id,
            endpoint_id=row.endpoint_id,
            url=row.url,
            secret=secret,
            pending_secret=pending,
            pending_promotes_at=row.pending_promotes_at,
            signature_scheme=row.signature_scheme,
            timeout_seconds=float(row.timeout_seconds),
            enabled=bool(row.enabled),
            ordered=bool(row.ordered),
            trigger=delivery.trigger or SCHEDULED,
            test=bool(delivery.test),
        )

    async def _claims(self, ids: list[str], token: str) -> list[Claim]:
        """The claims of leased deliveries ``ids``, read in a transaction of their own."""
        if not ids:
            return []
        async with self._reading() as conn:
            rows = (await conn.execute(_CLAIM_ROW.where(_D.c.id.in_(ids)))).all()
        return [self._claim(row, token) for row in rows]

    async def next_due(self, *, saturated: Sequence[str]) -> datetime | None:
        """When the next delivery this worker could claim falls due (a lease running out
        included), leaving out ``saturated`` endpoints; ``None``: nothing is pending."""
        due = case(
            (
                and_(_D.c.claimed_until.is_not(None), _D.c.claimed_until > _D.c.next_attempt_at),
                _D.c.claimed_until,
            ),
            else_=_D.c.next_attempt_at,
        )
        async with self._reading() as conn:
            found: datetime | None = (
                await conn.execute(
                    select(func.min(due))
                    .join_from(_D, _E, _E.c.id == _D.c.endpoint_id)
                    .where(_D.c.status == PENDING, _E.c.enabled.is_(True), *_not_blocked(saturated))
                )
            ).scalar_one()
        return found

    async def delivery_states(self, ids: Sequence[str]) -> list[DeliveryState]:
        """Where the deliveries ``ids`` stand (unknown ids are left out), in no order."""
        if not ids:
            return []
        head = _HEAD
        head_id = (
            select(head.c.id)
            .where(head.c.endpoint_id == _D.c.endpoint_id, head.c.status == PENDING)
            .order_by(head.c.sequence)
            .limit(1)
            .scalar_subquery()
        )
        async with self._reading() as conn:
            rows = await conn.execute(
                select(
                    _D.c.id,
                    _D.c.endpoint_id,
                    _E.c.ordered,
                    _D.c.status,
                    _D.c.next_attempt_at,
                    _D.c.claimed_until,
                    case((_E.c.ordered.is_(True), head_id), else_=None).label("head_id"),
                    _E.c.enabled,
                )
                .join(_E, _E.c.id == _D.c.endpoint_id)
                .where(_D.c.id.in_(list(ids)))
            )
            return [
                DeliveryState(
                    id=row.id,
                    endpoint_id=row.endpoint_id,
                    ordered=bool(row.ordered),
                    status=row.status,
                    next_attempt_at=row.next_attempt_at,
                    claimed_until=row.claimed_until,
                    head_id=row.head_id,
                    enabled=bool(row.enabled),
                )
                for row in rows
            ]

    async def overdue(self, *, before: datetime, limit: int) -> list[str]:
        """Pending deliveries due before ``before`` that no worker holds, of enabled
        endpoints, oldest first: what a job queue's sweep checks for a lost job (so the
        deliveries of an endpoint enabled again get their jobs from it)."""
        async with self._reading() as conn:
            rows = await conn.execute(
                select(_D.c.id)
                .join(_E, _E.c.id == _D.c.endpoint_id)
                .where(
                    _E.c.enabled.is_(True),
                    _D.c.status == PENDING,
                    _D.c.next_attempt_at <= before,
                    or_(_D.c.claimed_until.is_(None), _D.c.claimed_until <= before),
                )
                .order_by(_D.c.next_attempt_at, _D.c.id)
                .limit(limit)
            )
            return list(rows.scalars())

    async def release(self, claims: Sequence[Claim]) -> None:
        """Give leases back unsettled (a worker stopping mid-attempt): due again at once."""
        by_token: dict[str, list[str]] = {}
        for claim in claims:
            by_token.setdefault(claim.token, []).append(claim.delivery_id)
        async with self._writing() as conn:
            for token, ids in by_token.items():
                await conn.execute(
                    update(_D)
                    .where(_D.c.id.in_(ids), _D.c.claim_token == token)
                    .values(claimed_until=None, claim_token=None)
                )

    # -- operations: retry, test, recover, purge ----------------------------------------------

    async def owner(
        self, *, delivery_id: str | None = None, endpoint_id: str | None = None
    ) -> str | None:
        """The tenant of a delivery or an endpoint, by id alone (for operators); ``None``
        when there is none."""
        table, key = (_D, delivery_id) if delivery_id is not None else (_E, endpoint_id)
        async with self._reading() as conn:
            found: str | None = (
                await conn.execute(select(table.c.tenant_id).where(table.c.id == key))
            ).scalar_one_or_none()
        return found

    async def claim_for_retry(
        self, tenant_id: str, delivery_id: str, *, now: datetime, token: str
    ) -> Claim | str:
        """Lease one of the tenant's deliveries for a manual attempt now, whatever its status
        (a test delivery included); :data:`NOT_FOUND` or :data:`IN_FLIGHT` (another attempt
        holds it) when it cannot be taken."""
        async with self._writing() as conn:
            found = (
                await conn.execute(
                    select(_D.c.claimed_until, _E.c.timeout_seconds)
                    .join(_E, _E.c.id == _D.c.endpoint_id)
                    .where(_D.c.id == delivery_id, _D.c.tenant_id == tenant_id)
                )
            ).first()
            if found is None:
                return NOT_FOUND
            lease = now + timedelta(seconds=float(found.timeout_seconds) + LEASE_GRACE_SECONDS)
            result = await conn.execute(
                update(_D)
                .where(
                    _D.c.id == delivery_id,
                    or_(_D.c.claimed_until.is_(None), _D.c.claimed_until <= now),
                )
                .values(claimed_until=lease, claim_token=token, trigger=MANUAL, updated_at=now)
                .returning(_D.c.id)
            )
            if result.first() is None:
                return IN_FLIGHT
        claims = await self._claims([delivery_id], token)
        return claims[0] if claims else NOT_FOUND

    async def insert_test_delivery(
        self,
        endpoint: EventEndpoint,
        *,
        event_id: str,
        delivery_id: str,
        event_type: str,
        body: bytes,
        now: datetime,
        token: str,
    ) -> Claim | None:
        """Record an endpoint test's event and its one delivery, already leased to the caller
        (no worker takes it: it has no due time), and return the claim its attempt runs on;
        ``None`` if the endpoint is gone."""
        lease = now + timedelta(seconds=endpoint.timeout_seconds + LEASE_GRACE_SECONDS)
        async with self._writing() as conn:
            await conn.execute(
                insert(_V).values(
                    id=event_id,
                    tenant_id=endpoint.tenant_id,
                    event_type=event_type,
                    body=body,
                    idempotency_key=None,
                    created_at=now,
                )
            )
            await conn.execute(
                insert(_D).values(
                    id=delivery_id,
                    event_id=event_id,
                    endpoint_id=endpoint.id,
                    tenant_id=endpoint.tenant_id,
                    event_type=event_type,
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=None,
                    claimed_until=lease,
                    claim_token=token,
                    test=True,
                    trigger=TEST,
                    created_at=now,
                    updated_at=now,
                )
            )
        claims = await self._claims([delivery_id], token)
        return claims[0] if claims else None

    async def recover(
        self,
        tenant_id: str,
        endpoint_id: str,
        *,
        since: datetime,
        until: datetime | None,
        now: datetime,
        limit: int,
        batch_size: int = BATCH_SIZE,
        on_batch: Callable[[list[str]], Awaitable[None]] | None = None,
    ) -> tuple[int, bool]:
        """Make the endpoint's failed deliveries published in ``[since, until)`` (``None``:
        no end) pending and due now (a manual attempt), at most ``limit``, in transactions
        of ``batch_size``: ``(re-queued, more failed ones left in the range)``.  Test
        deliveries are left.  ``on_batch`` gets each committed batch's delivery ids (the
        procrastinate queue defers their jobs)."""
        in_range = [
            _D.c.endpoint_id == endpoint_id,
            _D.c.tenant_id == tenant_id,
            _D.c.status == FAILED,
            _D.c.test.is_(False),
            _D.c.created_at >= since,
        ]
        if until is not None:
            in_range.append(_D.c.created_at < until)
        recovered = 0
        while recovered < limit:
            async with self._writing() as conn:
                ids = list(
                    (
                        await conn.execute(
                            select(_D.c.id)
                            .where(*in_range)
                            .order_by(_D.c.created_at, _D.c.id)
                            .limit(min(batch_size, limit - recovered))
                        )
                    ).scalars()
                )
                if not ids:
                    return recovered, False
                result = await conn.execute(
                    update(_D)
                    .where(_D.c.id.in_(ids), _D.c.status == FAILED)
                    .values(
                        status=PENDING,
                        next_attempt_at=now,
                        claimed_until=None,
                        claim_token=None,
                        detail=None,
                        trigger=MANUAL,
                        updated_at=now,
                    )
                )
                recovered += result.rowcount
            if on_batch is not None:
                await on_batch(ids)
            await asyncio.sleep(0)  # between batches, let the process's other work run
        async with self._reading() as conn:
            more = (await conn.execute(select(_D.c.id).where(*in_range).limit(1))).first()
        return recovered, more is not None

    async def purge(
        self, retention: Retention, *, now: datetime, batch_size: int, max_batches: int | None
    ) -> PurgeReport:
        """Delete what ``retention`` lets go, ``batch_size`` rows a transaction: settled
        deliveries (and their attempts) past their age, then events left with no delivery
        and older than the delivered retention.  Stops after ``max_batches`` (``more``)."""
        delivered_before = now - timedelta(seconds=retention.delivered_seconds)
        failed_before = now - timedelta(seconds=retention.failed_seconds)
        expired = or_(
            and_(_D.c.status == DELIVERED, _D.c.updated_at < delivered_before),
            and_(_D.c.status == FAILED, _D.c.updated_at < failed_before),
        )
        orphan = and_(
            _V.c.created_at < delivered_before,
            ~exists().where(_D.c.event_id == _V.c.id),
        )
        deliveries = attempts = events = batches = 0
        for table, condition in ((_D, expired), (_V, orphan)):
            while max_batches is None or batches < max_batches:
                batches += 1
                async with self._writing() as conn:
                    ids = list(
                        (
                            await conn.execute(
                                select(table.c.id)
                                .where(condition)
                                .limit(batch_size)
                                .with_for_update(skip_locked=True)
                            )
                        ).scalars()
                    )
                    if not ids:
                        break
                    if table is _D:
                        # the rows are locked (PostgreSQL; SQLite's writer holds them all), so
                        # none is recovered between deleting its attempts and itself
                        attempts += (
                            await conn.execute(delete(_A).where(_A.c.delivery_id.in_(ids)))
                        ).rowcount
                        deliveries += (
                            await conn.execute(delete(_D).where(_D.c.id.in_(ids)))
                        ).rowcount
                    else:
                        events += (
                            await conn.execute(delete(_V).where(_V.c.id.in_(ids), orphan))
                        ).rowcount
                await asyncio.sleep(0)
            else:
                return PurgeReport(deliveries, attempts, events, more=True)
        return PurgeReport(deliveries, attempts, events)

    # -- settling ----------------------------------------------------------------------------

    async def settle(self, claim: Claim, settlement: Settlement, *, now: datetime) -> Settled:
        """Record the attempt and the delivery's next state, and what it makes of the endpoint
        (auto-disable, module docstring of ``_operations``); ``recorded=False`` (nothing
        written) when the lease was lost to another worker.  Returns once it is committed,
        together with the settlements that came meanwhile (module docstring); raises
        :class:`StoreError` when that transaction fails (then none of them is recorded)."""
        waiting = _Waiting(claim, settlement, now, asyncio.get_running_loop().create_future())
        self._unsettled.append(waiting)
        if self._settler is None or self._settler.done():
            self._settler = asyncio.create_task(self._write_settlements())
        # shielded: a caller cancelled now leaves its settlement to be written all the same
        return await asyncio.shield(waiting.outcome)

    async def _write_settlements(self) -> None:
        """Write what waits, in transactions of up to :data:`MAX_SETTLEMENTS_PER_COMMIT`,
        until nothing does; what comes while one is written goes into the next."""
        while self._unsettled:
            batch: list[_Waiting] = []
            try:
                async with self._writing() as conn:
                    batch = self._take_settlements()
                    written = [
                        await self._settle(conn, w.claim, w.settlement, w.now) for w in batch
                    ]
            except Exception as exc:  # handed to each caller, who raises it
                for waiting in batch or self._take_settlements():
                    if not waiting.outcome.done():
                        waiting.outcome.set_exception(exc)
                continue
            for waiting, recorded in zip(batch, written, strict=True):
                if not waiting.outcome.done():
                    waiting.outcome.set_result(recorded)

    def _take_settlements(self) -> list[_Waiting]:
        batch = self._unsettled[:MAX_SETTLEMENTS_PER_COMMIT]
        del self._unsettled[:MAX_SETTLEMENTS_PER_COMMIT]
        return batch

    async def _settle(
        self, conn: AsyncConnection, claim: Claim, settlement: Settlement, now: datetime
    ) -> Settled:
        """One settlement in ``conn``'s transaction; ``recorded=False`` (nothing written)
        when the token no longer holds the lease."""
        status: str = settlement.status
        next_at, detail = settlement.next_attempt_at, settlement.detail
        if status == PENDING and settlement.disable_reason is None:
            endpoint = (
                await conn.execute(
                    select(_E.c.enabled, _E.c.disabled_reason).where(_E.c.id == claim.endpoint_id)
                )
            ).first()
            # disabled meanwhile: no more attempts; by hand, it waits with the others
            if (
                endpoint is not None
                and not endpoint.enabled
                and endpoint.disabled_reason != MANUAL_DISABLE_REASON
            ):
                status, next_at, detail = FAILED, None, ENDPOINT_DISABLED
        attempts = claim.attempt if settlement.attempt is not None else claim.attempt - 1
        result = await conn.execute(
            update(_D)
            .where(_D.c.id == claim.delivery_id, _D.c.claim_token == claim.token)
            .values(
                status=status,
                attempts=attempts,
                next_attempt_at=next_at,
                claimed_until=None,
                claim_token=None,
                detail=detail,
                trigger=None,
                updated_at=now,
            )
        )
        if result.rowcount != 1:
            return Settled(recorded=False)  # written first: a lost claim touches nothing else
        if (attempt := settlement.attempt) is not None:
            await conn.execute(
                insert(_A).values(
                    delivery_id=claim.delivery_id,
                    number=attempt.number,
                    status_code=attempt.status,
                    latency_ms=attempt.latency_ms,
                    detail=attempt.detail,
                    reason=attempt.reason,
                    response=attempt.response,
                    attempted_at=attempt.attempted_at,
                    trigger=attempt.trigger,
                )
            )
        disabled: EndpointDisabled | None = None
        if not claim.test and settlement.attempt is not None:
            disabled = await self._count(conn, claim, settlement, status, now)
        if disabled is None and settlement.disable_reason is not None:
            disabled = EndpointDisabled(
                tenant_id=claim.tenant_id,
                endpoint_id=claim.endpoint_id,
                url=claim.url,
                cause="gone",
                reason=settlement.disable_reason,
                disabled_at=now,
            )
        if disabled is not None:
            if status == PENDING:  # disabled by this failure: no more attempts
                await conn.execute(
                    update(_D)
                    .where(_D.c.id == claim.delivery_id)
                    .values(status=FAILED, next_attempt_at=None, detail=ENDPOINT_DISABLED)
                )
            await _disable(conn, claim, disabled.reason, now)
        return Settled(recorded=True, disabled=disabled)

    async def _count(
        self,
        conn: AsyncConnection,
        claim: Claim,
        settlement: Settlement,
        status: str,
        now: datetime,
    ) -> EndpointDisabled | None:
        """Keep the endpoint's failure counts (auto-disable): a delivered attempt resets them,
        a failed one starts the clock and a failed delivery adds one; the endpoint to disable
        when a rule is crossed."""
        attempt = settlement.attempt
        assert attempt is not None  # noqa: S101 - only called with an attempt
        if attempt.detail is None:
            await conn.execute(
                update(_E)
                .where(
                    _E.c.id == claim.endpoint_id,
                    or_(_E.c.failed_deliveries != 0, _E.c.failing_since.is_not(None)),
                )
                .values(failed_deliveries=0, failing_since=None)
            )
            return None
        row = (
            await conn.execute(
                update(_E)
                .where(_E.c.id == claim.endpoint_id)
                .values(
                    failed_deliveries=_E.c.failed_deliveries + (1 if status == FAILED else 0),
                    failing_since=func.coalesce(
                        _E.c.failing_since, literal(attempt.attempted_at, UtcDateTime())
                    ),
                )
                .returning(_E.c.enabled, _E.c.failed_deliveries, _E.c.failing_since)
            )
        ).first()
        if row is None or not row.enabled or settlement.disable_reason is not None:
            return None
        failing_since: datetime | None = row.failing_since
        verdict = self._auto_disable.reason(
            failed_deliveries=int(row.failed_deliveries), failing_since=failing_since, now=now
        )
        if verdict is None:
            return None
        cause, reason = verdict
        return EndpointDisabled(
            tenant_id=claim.tenant_id,
            endpoint_id=claim.endpoint_id,
            url=claim.url,
            cause=cause,
            reason=reason,
            disabled_at=now,
            failed_deliveries=int(row.failed_deliveries),
            failing_since=failing_since,
        )


async def _disable(conn: AsyncConnection, claim: Claim, reason: str, now: datetime) -> None:
    """Disable the claim's endpoint (reason and time kept, failure counts reset so that
    enabling it again starts afresh); what waits for it fails now, what another worker holds
    fails when it settles."""
    await conn.execute(
        update(_E)
        .where(_E.c.id == claim.endpoint_id)
        .values(
            enabled=False,
            disabled_reason=reason,
            disabled_at=now,
            failed_deliveries=0,
            failing_since=None,
            updated_at=now,
        )
    )
    await conn.execute(
        update(_D)
        .where(
            _D.c.endpoint_id == claim.endpoint_id,
            _D.c.status == PENDING,
            _D.c.id != claim.delivery_id,
            _D.c.test.is_(False),
            or_(_D.c.claimed_until.is_(None), _D.c.claimed_until <= now),
        )
        .values(
            status=FAILED,
            next_attempt_at=None,
            claimed_until=None,
            claim_token=None,
            detail=ENDPOINT_DISABLED,
            updated_at=now,
        )
    )


@asynccontextmanager
async def _holding(lock: asyncio.Lock | None) -> AsyncIterator[None]:
    """Hold ``lock`` for the block (no lock: nothing to wait for)."""
    if lock is None:
        yield
        return
    async with lock:
        yield


def _claimable(now: datetime) -> list[Any]:
    return [
        _D.c.status == PENDING,
        _D.c.next_attempt_at <= now,
        or_(_D.c.claimed_until.is_(None), _D.c.claimed_until <= now),
    ]


#: The clause of :func:`_not_blocked` that never changes, built once: an alias's columns cost
#: more CPU to set up than a claim's round trip (a profile of the procrastinate worker).
_HEAD: Final = _D.alias("head")
_NOT_BEHIND: Final = or_(
    _D.c.sequence.is_(None),
    ~exists().where(
        _HEAD.c.endpoint_id == _D.c.endpoint_id,
        _HEAD.c.status == PENDING,
        _HEAD.c.sequence < _D.c.sequence,
    ),
)


def _not_blocked(saturated: Sequence[str]) -> list[Any]:
    """Not behind an earlier pending delivery of its ordered endpoint, nor ``saturated``."""
    conditions: list[Any] = [_NOT_BEHIND]
    if saturated:
        conditions.append(_D.c.endpoint_id.not_in(list(saturated)))
    return conditions


def _round_robin(
    candidates: list[tuple[str, str, bool]],
    *,
    limit: int,
    busy: Mapping[str, int],
    per_endpoint: int,
) -> list[str]:
    """Candidates (in due order) taken one per endpoint per round, within each endpoint's cap
    (one for an ordered endpoint), so one endpoint's backlog cannot crowd out the others."""
    queues: dict[str, list[str]] = {}
    caps: dict[str, int] = {}
    for delivery_id, endpoint_id, ordered in candidates:
        queues.setdefault(endpoint_id, []).append(delivery_id)
        caps[endpoint_id] = (1 if ordered else per_endpoint) - busy.get(endpoint_id, 0)
    picked: list[str] = []
    while len(picked) < limit:
        taken = False
        for endpoint_id, queue in queues.items():
            if queue and caps[endpoint_id] > 0 and len(picked) < limit:
                picked.append(queue.pop(0))
                caps[endpoint_id] -= 1
                taken = True
        if not taken:
            break
    return picked


def _delivery(
    row: Mapping[str, Any] | RowMapping, event_type: str, attempts: Mapping[str, list[EventAttempt]]
) -> EventDelivery:
    return EventDelivery(
        id=row["id"],
        event_id=row["event_id"],
        endpoint_id=row["endpoint_id"],
        tenant_id=row["tenant_id"],
        event_type=event_type,
        status=row["status"],
        attempts=tuple(attempts.get(row["id"], ())),
        next_attempt_at=row["next_attempt_at"],
        detail=row["detail"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        test=bool(row["test"]),
    )


def _attempt(row: Mapping[str, Any] | RowMapping) -> EventAttempt:
    return EventAttempt(
        number=int(row["number"]),
        status=row["status_code"],
        latency_ms=float(row["latency_ms"]),
        detail=row["detail"],
        attempted_at=row["attempted_at"],
        response=None if row["response"] is None else bytes(row["response"]),
        reason=row["reason"],
        trigger=row["trigger"],
    )


def _published(
    row: RowMapping, deliveries: list[EventDelivery], *, duplicate: bool
) -> PublishedEvent:
    return PublishedEvent(
        id=row["id"],
        tenant_id=row["tenant_id"],
        event_type=row["event_type"],
        timestamp=row["created_at"],
        body=bytes(row["body"]),
        idempotency_key=row["idempotency_key"],
        deliveries=tuple(deliveries),
        duplicate=duplicate,
    )
