"""``Dispatcher.events``: endpoints, publishing, delivery and the delivery log, in one service.

Event webhooks are durable: when :meth:`EventService.publish` returns, the event and one
delivery per subscribed endpoint are committed to the config store's SQL database, and from
then on they are delivered at least once (module docstrings of ``_store``, ``_delivery`` and
``_worker``).  So the service needs a SQL store (``Dispatcher.from_database_url``, or a
dispatcher built on a :class:`~vizochok_dispatch.SqlConfigStore`); on any other store every
call raises :class:`InvalidCall` saying so.
"""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Literal, cast

import structlog

from .._exceptions import FieldError, InvalidCall, InvalidConfig
from ..contract._events import event_body
from ..contract._signing import SIGNATURE_SCHEMES, event_secret_problem, generate_event_secret
from ..contract._text import TextRule, text_problem
from ..http._attempt import Clock, Sleep
from ..http._destinations import HostResolver
from ..http._wire import Sender
from ..observe import Backlog, Metrics, Tracing
from ..observe._logs import log_time
from ..tenants._config import (
    UNSET,
    ConfigRules,
    Unset,
    _tenant_id_problem,
    secret_problem,
    url_problems,
)
from ..tenants._pages import Page, decode_cursor, limit_problem
from ..tenants._rotation import (
    DEFAULT_SECRET_OVERLAP_SECONDS,
    in_effect,
    overlap_problem,
    promote,
    roll,
    same_secret_problem,
)
from ..tenants._sql_store import SqlConfigStore
from ..tenants._store import ConfigStore
from ._catalog import lookup_event_type, match_event_types, type_matches, validate_event_data
from ._delivery import DisabledHook, EventDeliverer, new_token
from ._ids import DELIVERY_PREFIX, ENDPOINT_PREFIX, EVENT_PREFIX, new_id
from ._operations import (
    BATCH_SIZE,
    MAX_RECOVERED,
    PURGE_INTERVAL_SECONDS,
    AutoDisable,
    Retention,
    test_problems,
)
from ._schedule import RandomSource, RetrySchedule
from ._store import IN_FLIGHT, Claim, EventStore, Settlement
from ._values import (
    DrainReport,
    EndpointDisabled,
    EndpointTestReport,
    EventDelivery,
    EventEndpoint,
    PublishedEvent,
    PurgeReport,
    RecoveryReport,
)
from ._worker import Worker

if TYPE_CHECKING:
    from ._procrastinate import ProcrastinateQueue

#: An attempt's time limit, in seconds: the default and the bounds.
#: The platform event announcing that delivery disabled an endpoint (``event_disabled_notice``).
DISABLED_EVENT: Final = "endpoint.disabled"
DEFAULT_TIMEOUT_SECONDS: Final = 15.0
MIN_TIMEOUT_SECONDS: Final = 1.0
MAX_TIMEOUT_SECONDS: Final = 30.0
#: At most this many type names or patterns in one subscription.
MAX_EVENT_TYPES: Final = 100
DESCRIPTION: Final = TextRule(0, 1000)
IDEMPOTENCY_KEY: Final = TextRule(1, 256, controls=False, blank=False)
#: Deliveries one ``deliveries`` call lists at most.
MAX_LISTED: Final = 1000
#: A page of the delivery log: its default and largest size.
DEFAULT_PAGE: Final = 50
MAX_PAGE: Final = 100
#: The delivery states the log filters on.
DELIVERY_STATUSES: Final = ("pending", "delivered", "failed")
#: An id given as a filter (``ep_…``, ``evt_…``, ``dlv_…``: at most 64 characters).
ID_FILTER: Final = TextRule(1, 64, controls=False)
#: The backlog metric counts due deliveries up to this many (a count stays cheap).
BACKLOG_CAP: Final = 100_000

WorkerMode = Literal["embedded", "off", "procrastinate"]
#: The setting that picks the worker, as errors name it.
WORKER_SETTING: Final = "VIZOCHOK_EVENT_WORKER"

_log = structlog.get_logger("vizochok_dispatch")


class EventService:
    """Event webhooks for one dispatcher (see the module docstring).

    Built by the :class:`~vizochok_dispatch.Dispatcher` with its store, sender (the same SSRF
    guard), clock and sleep; ``Dispatcher.events`` is the instance.  ``rand`` is the jitter's
    random source.
    """

    def __init__(
        self,
        store: ConfigStore,
        *,
        send: Sender,
        clock: Clock,
        sleep: Sleep,
        rules: ConfigRules,
        schedule: RetrySchedule,
        worker: WorkerMode = "embedded",
        concurrency: int = 64,
        per_endpoint: int = 4,
        poll_seconds: float = 1.0,
        stalled_seconds: float = 30.0,
        connect_timeout: float = 5.0,
        rand: RandomSource = random.random,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        secret_overlap_seconds: float = DEFAULT_SECRET_OVERLAP_SECONDS,
        auto_disable: AutoDisable | None = None,
        retention: Retention | None = None,
        on_disabled: DisabledHook | None = None,
        disabled_notice: bool = False,
    ) -> None:
        if (problem := overlap_problem(secret_overlap_seconds)) is not None:
            raise InvalidCall(f"secret_overlap_seconds {problem}")
        self._clock = clock
        self._rules = rules
        self._overlap = float(secret_overlap_seconds)
        self._mode = worker
        self._worker_started = False
        self._per_endpoint = per_endpoint
        self._poll_seconds = poll_seconds
        self._stalled_seconds = stalled_seconds
        self._connect_timeout = connect_timeout
        self._queue: ProcrastinateQueue | None = None
        self._retention = retention or Retention()
        self._store = (
            EventStore(store, auto_disable=auto_disable)
            if isinstance(store, SqlConfigStore)
            else None
        )
        self._deliverer: EventDeliverer | None = None
        self._worker: Worker | None = None
        if self._store is not None:
            self._deliverer = EventDeliverer(
                store=self._store,
                send=send,
                clock=clock,
                schedule=schedule,
                rules=rules,
                rand=rand,
                metrics=metrics,
                tracing=tracing,
                on_disabled=self._notifying(on_disabled) if disabled_notice else on_disabled,
            )
            self._worker = Worker(
                store=self._store,
                deliverer=self._deliverer,
                clock=clock,
                sleep=sleep,
                concurrency=concurrency,
                per_endpoint=per_endpoint,
                poll_seconds=poll_seconds,
                purge=self.purge_expired,
                purge_interval_seconds=PURGE_INTERVAL_SECONDS,
            )

    def _notifying(self, operator: DisabledHook | None) -> DisabledHook:
        """The disable hook that also publishes ``endpoint.disabled`` (docs/webhooks.md §10),
        then calls the operator's ``on_event_endpoint_disabled``."""

        async def hook(disabled: EndpointDisabled) -> None:
            try:
                # Fans out to the tenant's enabled endpoints only: never the disabled one.
                await self.publish(
                    disabled.tenant_id,
                    DISABLED_EVENT,
                    data={
                        "endpoint_id": disabled.endpoint_id,
                        "url": disabled.url,
                        "cause": disabled.cause,
                        "reason": disabled.reason[:1024],
                        "failed_deliveries": disabled.failed_deliveries,
                        "disabled_at": disabled.disabled_at,
                    },
                    # one notice per disabling, even if the hook runs twice around a crash
                    idempotency_key=f"{DISABLED_EVENT}:{disabled.endpoint_id}:"
                    f"{disabled.disabled_at.timestamp():.3f}",
                )
            except Exception as exc:  # the notice must not stop deliveries or the hook
                _log.warning(
                    "event_endpoint.disabled_notice_failed",
                    endpoint_id=disabled.endpoint_id,
                    error_type=type(exc).__name__,
                )
            if operator is not None:
                outcome = operator(disabled)
                if inspect.isawaitable(outcome):
                    await outcome

        return hook

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the event tables and, unless the worker is ``off``, start delivering
        (``procrastinate``: open the job queue publishing defers to; workers run apart).

        Raises :class:`InvalidConfig` naming ``VIZOCHOK_EVENT_WORKER`` for ``procrastinate``
        on a database other than PostgreSQL."""
        if self._store is None or self._worker is None:
            if self._mode == "procrastinate":
                raise needs_postgres()
            return
        if self._mode == "procrastinate" and self._store.dialect != "postgresql":
            raise needs_postgres()
        await self._store.open()
        if self._mode == "embedded":
            self._worker.start()
            self._worker_started = True
        elif self._mode == "procrastinate" and self._queue is None:
            from ._procrastinate import ProcrastinateQueue  # noqa: PLC0415 - PostgreSQL only

            queue = ProcrastinateQueue(
                store=self._store,
                deliver_due=self.deliver_due,
                clock=self._clock,
                url=self._store.sqlalchemy_url,
                connect_timeout=self._connect_timeout,
                per_endpoint=self._per_endpoint,
                poll_seconds=self._poll_seconds,
                stalled_seconds=self._stalled_seconds,
                purge=self.purge_expired,
            )
            await queue.open()
            self._queue = queue

    async def aclose(self) -> None:
        """Stop the worker (attempts on the wire are cut short and delivered again later) and
        close the event store's connections."""
        self._worker_started = False
        if self._worker is not None:
            await self._worker.stop()
        if self._queue is not None:
            queue, self._queue = self._queue, None
            await queue.close()
        if self._store is not None:
            await self._store.close()

    @property
    def queue(self) -> ProcrastinateQueue:
        """The procrastinate job queue (``VIZOCHOK_EVENT_WORKER=procrastinate``, after start)."""
        if self._queue is None:
            raise InvalidCall(
                f"the procrastinate queue runs with {WORKER_SETTING}=procrastinate on "
                "PostgreSQL, once the dispatcher is started"
            )
        return self._queue

    @property
    def worker(self) -> Worker:
        """The in-process worker (running only when embedded and started)."""
        return self._parts()[2]

    def _parts(self) -> tuple[EventStore, EventDeliverer, Worker]:
        if self._store is None or self._deliverer is None or self._worker is None:
            raise InvalidCall(
                "event webhooks need a SQL database: build the dispatcher with "
                "Dispatcher.from_database_url(...) or on a SqlConfigStore"
            )
        return self._store, self._deliverer, self._worker

    async def backlog(self, *, cap: int = BACKLOG_CAP) -> Backlog:
        """Deliveries due now and not yet taken (counted up to ``cap``), how long the oldest
        has been due, and the disabled endpoints; for ``vizochok_event_backlog_*`` metrics.
        Raises :class:`StoreError` when the database fails."""
        store = self._parts()[0]
        now = self._now()
        due, oldest, disabled = await store.backlog(now=now, cap=cap)
        age = 0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0)
        return Backlog(due=due, oldest_due_age_seconds=age, disabled_endpoints=disabled)

    @property
    def available(self) -> bool:
        """Whether event webhooks work here (a SQL store)."""
        return self._store is not None

    @property
    def worker_started(self) -> bool:
        """Whether :meth:`start` started the embedded worker (and :meth:`aclose` has not
        stopped it): from then on it should be running."""
        return self._worker_started

    @property
    def queue_open(self) -> bool:
        """Whether :meth:`start` opened the procrastinate queue: this process publishes
        (defers jobs) and ``vizochok-dispatch worker`` processes deliver."""
        return self._queue is not None

    def _now(self) -> datetime:
        """Now, in UTC, to the millisecond (what the body's timestamp says)."""
        return datetime.fromtimestamp(math.floor(self._clock.wall() * 1000) / 1000, UTC)

    # -- endpoints ---------------------------------------------------------------------------

    async def create_endpoint(
        self,
        tenant_id: str,
        *,
        url: str,
        event_types: Sequence[str],
        signature_scheme: str = "vizochok",
        secret: str | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        ordered: bool = False,
        description: str | None = None,
        resolve: HostResolver | None = None,
    ) -> EventEndpoint:
        """Register where ``tenant_id`` receives events; the endpoint, its secret included.

        - ``url``: the webhook URL rules and SSRF checks of the synchronous webhooks
          (docs/webhooks.md §1: ``https://`` unless ``VIZOCHOK_ALLOW_HTTP``, no non-public
          address unless ``VIZOCHOK_ALLOWED_NETWORKS`` lists it, a host DNS could name).
        - ``event_types``: 1 to 100 type names, ``prefix.*`` patterns or ``*``, each covering
          some type of the catalog (``EVENT_TYPES``).
        - ``signature_scheme``: ``vizochok`` (the synchronous calls' signature) or
          ``standard-webhooks`` (docs/webhooks.md §8).
        - ``secret``: ``None`` generates ``whsec_`` + 32 random bytes in base64 (it serves
          both schemes); an own secret is 24-256 printable characters for ``vizochok``,
          ``whsec_`` + base64 of 24-64 bytes for ``standard-webhooks``.
        - ``timeout_seconds``: one attempt's limit, from connecting to the answer, 1-30.
        - ``ordered``: deliveries go one at a time, in publish order.
        - ``description``: at most 1000 characters.
        - ``resolve``: given, the save-time DNS check of the webhook URLs runs too (a host
          that resolves to a non-public address is refused).

        Raises :class:`InvalidConfig` listing every broken field (never a value); nothing is
        stored then.
        """
        store = self._parts()[0]
        errors: list[FieldError] = []
        if (problem := _tenant_id_problem(tenant_id)) is not None:
            errors.append(FieldError("tenant_id", problem))
        errors += self._endpoint_problems(
            {
                "url": url,
                "event_types": event_types,
                "signature_scheme": signature_scheme,
                "timeout_seconds": timeout_seconds,
                "ordered": ordered,
                "description": description,
            },
            secret=secret,
        )
        errors += await self._dns_problems(url, errors, resolve)
        if errors:
            raise InvalidConfig(errors, what="event endpoint")
        now = self._now()
        endpoint = EventEndpoint(
            id=new_id(ENDPOINT_PREFIX, now.timestamp()),
            tenant_id=tenant_id,
            url=url,
            event_types=tuple(event_types),
            signature_scheme=signature_scheme,
            secret=secret if secret is not None else generate_event_secret(),
            timeout_seconds=float(timeout_seconds),
            ordered=ordered,
            description=description,
            enabled=True,
            created_at=now,
            updated_at=now,
        )
        saved = await store.insert_endpoint(endpoint)
        _log.info(
            "event.endpoint_created",
            tenant_id=tenant_id,
            endpoint_id=saved.id,
            event_types=list(saved.event_types),
            signature_scheme=saved.signature_scheme,
            ordered=saved.ordered,
        )
        return saved

    def _endpoint_problems(
        self, given: Mapping[str, object], *, secret: str | None
    ) -> list[FieldError]:
        """Every rule the endpoint fields in ``given`` break (the ones left out are not
        judged); ``secret`` is checked against the scheme given."""
        errors: list[FieldError] = []
        if "url" in given:
            url = given["url"]
            problems = url_problems(url, allow_http=self._rules.allow_http)
            if not problems and isinstance(url, str):
                problem = self._rules.destinations.url_problem(url)
                problems = [] if problem is None else [problem]
            if problems:
                errors.append(FieldError("url", "; ".join(problems)))
        if "event_types" in given:
            errors.extend(_event_types_problems(given["event_types"]))
        scheme = given.get("signature_scheme", "vizochok")
        if not isinstance(scheme, str) or scheme not in SIGNATURE_SCHEMES:
            errors.append(
                FieldError("signature_scheme", f"must be one of {', '.join(SIGNATURE_SCHEMES)}")
            )
        elif secret is not None and (problem := _secret_problem(scheme, secret)):
            errors.append(FieldError("secret", problem))
        if "timeout_seconds" in given and (problem := _timeout_problem(given["timeout_seconds"])):
            errors.append(FieldError("timeout_seconds", problem))
        for flag in ("ordered", "enabled"):
            if flag in given and not isinstance(given[flag], bool):
                errors.append(FieldError(flag, "must be true or false"))
        description = given.get("description")
        if description is not None and (problem := text_problem(description, DESCRIPTION)):
            errors.append(FieldError("description", problem))
        return errors

    async def _dns_problems(
        self, url: object, errors: Sequence[FieldError], resolve: HostResolver | None
    ) -> list[FieldError]:
        """The save-time DNS check of ``url`` (when ``resolve`` is given and the URL broke no
        other rule): the webhook URLs' own (docs/webhooks.md §1)."""
        if resolve is None or not isinstance(url, str) or any(e.field == "url" for e in errors):
            return []
        problem = await self._rules.destinations.resolved_url_problem(url, resolve)
        return [] if problem is None else [FieldError("url", problem)]

    async def endpoint(self, tenant_id: str, endpoint_id: str) -> EventEndpoint | None:
        """The tenant's endpoint ``endpoint_id`` (its secret included); ``None`` when the
        tenant has none of that id (another tenant's endpoint included)."""
        store = self._parts()[0]
        if _tenant_id_problem(tenant_id) is not None or text_problem(endpoint_id, ID_FILTER):
            return None
        found = await store.endpoint(tenant_id, endpoint_id)
        # a rolled secret whose overlap ended shows as the current one
        return None if found is None else in_effect(found, self._now())

    async def update_endpoint(
        self,
        tenant_id: str,
        endpoint_id: str,
        *,
        url: str | Unset = UNSET,
        event_types: Sequence[str] | Unset = UNSET,
        signature_scheme: str | Unset = UNSET,
        timeout_seconds: float | Unset = UNSET,
        ordered: bool | Unset = UNSET,
        description: str | Unset | None = UNSET,
        enabled: bool | Unset = UNSET,
        resolve: HostResolver | None = None,
    ) -> EventEndpoint | None:
        """Change what is given of the tenant's endpoint (``UNSET`` keeps a field); the
        endpoint as saved, or ``None`` when the tenant has none of that id.

        The fields follow :meth:`create_endpoint`'s rules (``description=None`` clears it).
        ``resolve`` adds the save-time DNS check of a new ``url``.  A new
        ``signature_scheme`` must suit the current secret (a ``standard-webhooks``
        endpoint needs a ``whsec_`` secret: rotate it first), and a pending one (promote or
        rotate first).

        ``enabled=False`` disables the endpoint (status ``disabled``, its
        ``disabled_reason`` :data:`MANUAL_DISABLE_REASON`, and the time): no new attempt
        starts, and its pending deliveries wait (an attempt in flight is recorded, and
        its delivery waits too).  ``enabled=True`` clears the reason and time, and the waiting
        deliveries that are due go out at once (an endpoint disabled by a ``410`` failed
        its deliveries then; they stay failed).  Raises :class:`InvalidConfig` listing
        every broken field; nothing is saved then.
        """
        store, _, worker = self._parts()
        if _tenant_id_problem(tenant_id) is not None or text_problem(endpoint_id, ID_FILTER):
            return None
        given: dict[str, object] = {
            name: value
            for name, value in (
                ("url", url),
                ("event_types", event_types),
                ("signature_scheme", signature_scheme),
                ("timeout_seconds", timeout_seconds),
                ("ordered", ordered),
                ("description", description),
                ("enabled", enabled),
            )
            if value is not UNSET
        }
        now = self._now()
        existing = await store.endpoint(tenant_id, endpoint_id)
        if existing is None:
            return None
        existing = in_effect(existing, now)
        checked = {"signature_scheme": existing.signature_scheme, **given}
        secret = existing.secret if "signature_scheme" in given else None
        errors = self._endpoint_problems(checked, secret=secret)
        errors = [
            FieldError("signature_scheme", f"the current secret does not suit it: {e.message}")
            if e.field == "secret"
            else e
            for e in errors
        ]
        pending = existing.pending_secret
        if (
            pending is not None
            and isinstance(signature_scheme, str)
            and all(error.field != "signature_scheme" for error in errors)
            and (problem := _secret_problem(signature_scheme, pending))
        ):
            errors.append(
                FieldError(
                    "signature_scheme",
                    f"the pending secret does not suit it: {problem} (promote or rotate first)",
                )
            )
        if isinstance(url, str):
            errors += await self._dns_problems(url, errors, resolve)
        if errors:
            raise InvalidConfig(errors, what="event endpoint")
        changes = dict(given)
        if "timeout_seconds" in changes:
            changes["timeout_seconds"] = float(cast(float, changes["timeout_seconds"]))
        saved = await store.update_endpoint(tenant_id, endpoint_id, changes, now=now)
        if saved is None:
            return None
        saved = in_effect(saved, now)
        if enabled is True:
            worker.wake()
        _log.info(
            "event.endpoint_updated",
            tenant_id=tenant_id,
            endpoint_id=endpoint_id,
            fields=sorted(given),
            status=saved.status,
        )
        return saved

    async def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> bool:
        """Delete the tenant's endpoint with its deliveries and their attempts (the events
        stay); ``False`` when the tenant has none of that id."""
        store = self._parts()[0]
        if _tenant_id_problem(tenant_id) is not None or text_problem(endpoint_id, ID_FILTER):
            return False
        deleted = await store.delete_endpoint(tenant_id, endpoint_id)
        if deleted:
            _log.info("event.endpoint_deleted", tenant_id=tenant_id, endpoint_id=endpoint_id)
        return deleted

    async def endpoints(self, tenant_id: str) -> list[EventEndpoint]:
        """The tenant's endpoints, oldest first (a disabled one says why and since when)."""
        store = self._parts()[0]
        if _tenant_id_problem(tenant_id) is not None:
            return []
        now = self._now()  # a rolled secret whose overlap ended shows as the current one
        return [in_effect(endpoint, now) for endpoint in await store.endpoints(tenant_id)]

    # -- rolling an endpoint's secret (docs/webhooks.md §7) ----------------------------------

    async def roll_secret(
        self, tenant_id: str, endpoint_id: str, *, secret: str | None = None
    ) -> EventEndpoint | None:
        """Make a new secret (``secret``, or a generated ``whsec_`` one) pending on the
        tenant's endpoint ``endpoint_id``: until it is promoted, or until the overlap
        (``VIZOCHOK_SECRET_OVERLAP_SECONDS``, 24 h by default) has passed, a
        ``standard-webhooks`` endpoint gets both signatures (``webhook-signature: v1,<old>
        v1,<new>``) and a ``vizochok`` one the current secret's only; after it, the new
        secret signs alone.  Rolling again replaces the pending secret.

        Returns the endpoint (``pending_secret`` holds the new secret, shown this once), or
        ``None`` when the tenant has no such endpoint.  Raises :class:`InvalidConfig`
        (field ``secret``) for an own secret the endpoint's scheme cannot use or that equals
        the current one.
        """

        def change(endpoint: EventEndpoint) -> EventEndpoint:
            current = in_effect(endpoint, now)
            if secret is not None and (
                problem := _secret_problem(endpoint.signature_scheme, secret)
                or same_secret_problem(current, secret)
            ):
                raise InvalidConfig([FieldError("secret", problem)], what="event endpoint")
            pending = generate_event_secret() if secret is None else secret
            return roll(endpoint, pending, now=now, overlap_seconds=self._overlap)

        now = self._now()
        return await self._rewrite_secrets(
            tenant_id,
            endpoint_id,
            change,
            now,
            "event.endpoint_secret_rolled",
            own=secret is not None,
        )

    async def promote_secret(self, tenant_id: str, endpoint_id: str) -> EventEndpoint | None:
        """Switch the endpoint's signing to its pending secret now (the old one stops
        signing); ``None`` when the tenant has no such endpoint.  Raises
        :class:`NoPendingSecret` when none is pending (none rolled, a rotate dropped it, or
        its overlap ended and it signs already)."""
        now = self._now()
        return await self._rewrite_secrets(
            tenant_id,
            endpoint_id,
            lambda endpoint: promote(endpoint, now=now),
            now,
            "event.endpoint_secret_promoted",
        )

    async def rotate_secret(
        self, tenant_id: str, endpoint_id: str, *, secret: str | None = None
    ) -> EventEndpoint | None:
        """Replace the endpoint's secret at once (``secret``, or a generated ``whsec_`` one),
        for a leaked secret: the old one stops signing with the next attempt, and a pending
        secret is dropped.  ``None`` when the tenant has no such endpoint; raises
        :class:`InvalidConfig` (field ``secret``) for an own secret the scheme cannot use."""

        def change(endpoint: EventEndpoint) -> EventEndpoint:
            if secret is not None and (
                problem := _secret_problem(endpoint.signature_scheme, secret)
            ):
                raise InvalidConfig([FieldError("secret", problem)], what="event endpoint")
            return replace(
                endpoint,
                secret=generate_event_secret() if secret is None else secret,
                pending_secret=None,
                pending_since=None,
                pending_promotes_at=None,
            )

        return await self._rewrite_secrets(
            tenant_id,
            endpoint_id,
            change,
            self._now(),
            "event.endpoint_secret_rotated",
            own=secret is not None,
        )

    async def _rewrite_secrets(
        self,
        tenant_id: str,
        endpoint_id: str,
        change: Callable[[EventEndpoint], EventEndpoint],
        now: datetime,
        logged_as: str,
        **details: object,
    ) -> EventEndpoint | None:
        """Apply ``change`` to the endpoint's secrets and log it as ``logged_as`` (never a
        secret: the pending one's promotion time at most)."""
        store = self._parts()[0]
        if _tenant_id_problem(tenant_id) is not None or text_problem(endpoint_id, ID_FILTER):
            return None  # an id no endpoint has (and the driver need not see)
        changed = await store.rewrite_secrets(tenant_id, endpoint_id, change, now=now)
        if changed is not None:
            _log.info(
                logged_as,
                tenant_id=tenant_id,
                endpoint_id=endpoint_id,
                promotes_at=log_time(changed.pending_promotes_at),
                **details,
            )
        return changed

    # -- publishing --------------------------------------------------------------------------

    async def publish(
        self,
        tenant_id: str,
        event_type: str,
        *,
        data: Mapping[str, object],
        idempotency_key: str | None = None,
    ) -> PublishedEvent:
        """Publish one event: when this returns, the event and one delivery per enabled
        endpoint subscribed to ``event_type`` are committed (one transaction), and the worker
        delivers them at least once.

        ``data`` is validated against the type's model in the catalog (``EVENT_TYPES``) and
        the body ``{"id", "event", "timestamp", "data"}`` is serialised once: every attempt
        sends and signs those bytes.  With ``idempotency_key`` (1-256 characters, no control
        characters), publishing again with the same key within 24 hours returns the first
        event (``duplicate=True``) and publishes nothing.

        Raises :class:`InvalidCall` naming the field (``tenant_id``, ``event_type``,
        ``data.<path>``, ``idempotency_key``); :class:`StoreError` when the database cannot
        commit it (then nothing was published).
        """
        store, _, worker = self._parts()
        if (problem := _tenant_id_problem(tenant_id)) is not None:
            raise InvalidCall(f"tenant_id {problem}")
        if idempotency_key is not None and (
            problem := text_problem(idempotency_key, IDEMPOTENCY_KEY)
        ):
            raise InvalidCall(f"idempotency_key {problem}")
        checked = validate_event_data(event_type, data)
        now = self._now()
        event_id = new_id(EVENT_PREFIX, now.timestamp())
        try:
            body = event_body(event_id, event_type, now, checked)
        except ValueError as exc:  # validated data always encodes; kept as a field error
            raise InvalidCall(f"data cannot be written as JSON: {exc}") from None
        published = await store.publish(
            event_id=event_id,
            tenant_id=tenant_id,
            event_type=event_type,
            body=body,
            idempotency_key=idempotency_key,
            now=now,
            subscribes=lambda patterns: any(type_matches(p, event_type) for p in patterns),
            new_delivery_id=lambda: new_id(DELIVERY_PREFIX, now.timestamp()),
        )
        if published.deliveries and not published.duplicate:
            if self._queue is not None:
                await self._queue.enqueue(published.deliveries)
            else:
                worker.offer(published.deliveries)
        _log.info(
            "event.published",
            tenant_id=tenant_id,
            event_id=published.id,
            event_type=event_type,
            deliveries=len(published.deliveries),
            duplicate=published.duplicate,
        )
        return published

    # -- delivering --------------------------------------------------------------------------

    async def drain(self, *, timeout: float = 10.0) -> DrainReport:  # noqa: ASYNC109 - a budget for waiting on retries too, in the injected clock
        """Deliver what is due in this process, retries included, until nothing pending
        falls due within ``timeout`` seconds (of the dispatcher's clock: an injected clock
        and sleep make retries instant in tests).  With the embedded worker running, its
        attempts count as this process's too.  Returns the attempts made and what is still
        pending; raises :class:`StoreError` when the database fails."""
        store, _, worker = self._parts()
        attempts = await worker.drain(timeout)
        return DrainReport(attempts=attempts, pending=await store.count_pending())

    async def deliver_due(self, delivery_id: str) -> Settlement | None:
        """Claim, attempt and settle one delivery by id, if it is due and free: the step a
        job queue's task runs.  ``None`` when it was not claimable or nothing was recorded."""
        return await self._parts()[1].deliver_due(delivery_id)

    async def deliveries(
        self, tenant_id: str, *, event_id: str | None = None, limit: int = MAX_LISTED
    ) -> list[EventDelivery]:
        """The tenant's deliveries (of ``event_id``), oldest first, at most ``limit``, each
        with its status and attempts (number, status, latency, detail, time, answer)."""
        store = self._parts()[0]
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LISTED:
            raise InvalidCall(f"limit must be a whole number from 1 to {MAX_LISTED}")
        if _tenant_id_problem(tenant_id) is not None:
            return []
        return await store.deliveries(tenant_id, event_id=event_id, limit=limit)

    async def delivery_log(
        self,
        tenant_id: str,
        *,
        endpoint_id: str | None = None,
        event_type: str | None = None,
        status: str | None = None,
        event_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> Page[EventDelivery]:
        """One page of the tenant's delivery log, newest first (docs/webhooks.md §9).

        Filters, all optional and combined: ``endpoint_id``; ``event_type`` (a type name of
        the catalog); ``status`` (``pending``, ``delivered``, ``failed``); ``event_id``;
        ``since`` (inclusive) and ``until`` (exclusive), aware datetimes, on when the
        delivery was created.  ``limit`` is 1-100 (50 by default).  ``cursor`` is the
        previous page's ``next_cursor``: pages stay correct while new deliveries arrive
        (newer ones sort before the first page; none is shown twice or skipped).  Each
        delivery carries its attempts without their answers; :meth:`delivery` has them.

        Raises :class:`InvalidCall` naming the argument (``cursor`` for a cursor this log
        did not give; ``event_type`` listing the known types); :class:`StoreError` when the
        database fails.
        """
        store = self._parts()[0]
        if (problem := limit_problem(limit, MAX_PAGE)) is not None:
            raise InvalidCall(f"limit {problem}")
        position = decode_cursor(cursor) if cursor is not None else None
        if event_type is not None:
            lookup_event_type(event_type)
        if status is not None and status not in DELIVERY_STATUSES:
            raise InvalidCall(f"status must be one of {', '.join(DELIVERY_STATUSES)}")
        for name, value in (("endpoint_id", endpoint_id), ("event_id", event_id)):
            if value is not None and (problem := text_problem(value, ID_FILTER)) is not None:
                raise InvalidCall(f"{name} {problem}")
        for name, moment in (("since", since), ("until", until)):
            if moment is not None and (
                not isinstance(moment, datetime) or moment.utcoffset() is None
            ):
                raise InvalidCall(f"{name} must be a timezone-aware datetime")
        if _tenant_id_problem(tenant_id) is not None:
            return Page(())
        return await store.delivery_log(
            tenant_id,
            limit=limit,
            cursor=position,
            endpoint_id=endpoint_id,
            event_type=event_type,
            status=status,
            event_id=event_id,
            since=since,
            until=until,
        )

    async def delivery(self, tenant_id: str, delivery_id: str) -> EventDelivery | None:
        """The tenant's delivery ``delivery_id``: its event body exactly as sent (``body``)
        and every attempt with the first 4 KiB of its answer; ``None`` when the tenant has
        no such delivery (another tenant's included)."""
        store = self._parts()[0]
        if _tenant_id_problem(tenant_id) is not None or text_problem(delivery_id, ID_FILTER):
            return None
        return await store.delivery(tenant_id, delivery_id)

    # -- operations: test, retry, recover, retention -------------------------------------------

    async def test_endpoint(
        self, tenant_id: str, endpoint_id: str, *, event_type: str
    ) -> EndpointTestReport | None:
        """Send ``event_type``'s catalog example to the endpoint now, through the delivery
        path itself (signing, SSRF guard, deadline), and report it (docs/webhooks.md §9).

        The test is recorded as an event and a delivery marked ``test``: one attempt (no
        retries), never counted towards auto-disable, never recovered; a ``410`` disables
        nothing.  It is sent whether or not the endpoint subscribes to ``event_type``
        (``subscribed`` says which) and whether or not it is enabled, so a receiver can be
        checked before the endpoint is enabled again.  ``None``: the tenant has no endpoint
        ``endpoint_id``.  Raises :class:`InvalidCall` naming ``event_type`` for a type not in
        the catalog (listing the known ones).
        """
        store, deliverer, _ = self._parts()
        entry = lookup_event_type(event_type)
        if _tenant_id_problem(tenant_id) is not None:
            return None
        endpoint = await store.endpoint(tenant_id, endpoint_id)
        if endpoint is None:
            return None
        now = self._now()
        event_id = new_id(EVENT_PREFIX, now.timestamp())
        data = validate_event_data(entry.name, entry.example)
        claim = await store.insert_test_delivery(
            endpoint,
            event_id=event_id,
            delivery_id=new_id(DELIVERY_PREFIX, now.timestamp()),
            event_type=entry.name,
            body=event_body(event_id, entry.name, now, data),
            now=now,
            token=new_token(),
        )
        if claim is None:  # deleted meanwhile
            return None
        settlement = await deliverer.deliver(claim)
        report = _test_report(endpoint, claim, settlement)
        _log.info(
            "event.endpoint_tested",
            tenant_id=tenant_id,
            endpoint_id=endpoint_id,
            event_type=entry.name,
            ok=report.ok,
            status=report.status,
            detail=report.detail,
        )
        return report

    async def owner(
        self, *, delivery_id: str | None = None, endpoint_id: str | None = None
    ) -> str | None:
        """The tenant a delivery (or else an endpoint) belongs to, by its id alone: for
        operators (the ``events retry`` / ``events recover`` commands), never for a tenant's
        own calls.  ``None`` when there is no such id."""
        store = self._parts()[0]
        if delivery_id is None and endpoint_id is None:
            raise InvalidCall("name a delivery_id or an endpoint_id")
        return await store.owner(delivery_id=delivery_id, endpoint_id=endpoint_id)

    async def retry_delivery(self, tenant_id: str, delivery_id: str) -> EventDelivery | str | None:
        """Make a new attempt of one of the tenant's deliveries now, whatever its status (a
        delivered one is sent again, same event id), through the delivery path; the delivery
        afterwards, with every attempt (the new one's trigger is ``manual``).

        The outcome is judged as any attempt's: a 2xx delivers; a failure goes on with the
        retry schedule from the attempt count (with the default three attempts, a delivery
        that used them fails again after this one).  ``None``: no such delivery of the
        tenant.  ``"in_flight"``: another attempt of it is under way (try again when it is
        over).  ``"endpoint_disabled"``: its endpoint is disabled (enable it first); nothing
        was sent then.
        """
        store, deliverer, _ = self._parts()
        if _tenant_id_problem(tenant_id) is not None:
            return None
        current = await store.delivery(tenant_id, delivery_id)
        if current is None:
            return None
        endpoint = await store.endpoint(tenant_id, current.endpoint_id)
        if endpoint is None or (not endpoint.enabled and not current.test):
            return "endpoint_disabled"
        claim = await store.claim_for_retry(
            tenant_id, delivery_id, now=self._now(), token=new_token()
        )
        if isinstance(claim, str):
            return None if claim != IN_FLIGHT else claim
        await deliverer.deliver(claim)
        _log.info(
            "event.delivery_retried",
            tenant_id=tenant_id,
            delivery_id=delivery_id,
            attempt=claim.attempt,
        )
        after = await store.delivery(tenant_id, delivery_id)
        later = None if after is None or after.status != "pending" else after.next_attempt_at
        if self._queue is not None and later is not None:
            # procrastinate: the next attempt's job now, not when the sweep finds it overdue
            await self._queue.enqueue_ids(
                endpoint.id, [delivery_id], ordered=endpoint.ordered, at=later
            )
        return after

    async def recover(
        self,
        tenant_id: str,
        endpoint_id: str,
        *,
        since: datetime,
        until: datetime | None = None,
        limit: int = MAX_RECOVERED,
    ) -> RecoveryReport | str | None:
        """Re-queue the endpoint's failed deliveries published from ``since`` up to (not
        including) ``until`` (``None``: up to now, included): each is pending again, due at
        once, and its next attempt is ``manual`` (it goes on with the retry schedule from its
        attempt count).

        At most ``limit`` (1 to 10,000) a call, in transactions of 500 (no long locks); the
        report says how many and whether more are left (``more``: call again with the same
        range).  The worker takes them round robin with other endpoints' deliveries, within
        the endpoint's in-flight cap, so a recovery starves no one.  With
        ``VIZOCHOK_EVENT_WORKER=procrastinate`` each batch's jobs are deferred as it commits
        (one batch insert), so workers start at once; the sweep remains the safety net for a
        defer that fails.  Test deliveries are not
        recovered.  ``None``: no such endpoint of the tenant; ``"endpoint_disabled"``: enable
        it first.  Raises :class:`InvalidCall` naming ``since``, ``until`` or ``limit``.
        """
        store, _, worker = self._parts()
        now = self._now()
        for name, value in (("since", since), ("until", until)):
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise InvalidCall(f"{name} must be a datetime with a time zone")
        if until is not None and until <= since:
            raise InvalidCall("until must be later than since")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RECOVERED:
            raise InvalidCall(f"limit must be a whole number from 1 to {MAX_RECOVERED}")
        if _tenant_id_problem(tenant_id) is not None:
            return None
        endpoint = await store.endpoint(tenant_id, endpoint_id)
        if endpoint is None:
            return None
        if not endpoint.enabled:
            return "endpoint_disabled"
        queue = self._queue

        async def defer(ids: list[str]) -> None:
            # procrastinate: each batch's jobs at once (the 5 s sweep stays the safety net)
            if queue is not None:
                await queue.enqueue_ids(endpoint_id, ids, ordered=endpoint.ordered)

        recovered, more = await store.recover(
            tenant_id,
            endpoint_id,
            since=since.astimezone(UTC),
            until=None if until is None else until.astimezone(UTC),
            now=now,
            limit=limit,
            on_batch=defer if queue is not None else None,
        )
        if recovered:
            worker.wake()
        _log.info(
            "event.endpoint_recovered",
            tenant_id=tenant_id,
            endpoint_id=endpoint_id,
            recovered=recovered,
            more=more,
        )
        return RecoveryReport(
            endpoint_id=endpoint_id,
            recovered=recovered,
            more=more,
            since=since.astimezone(UTC),
            until=None if until is None else until.astimezone(UTC),
            limit=limit,
        )

    async def purge_expired(
        self, *, batch_size: int = BATCH_SIZE, max_batches: int | None = None
    ) -> PurgeReport:
        """Delete what retention lets go (``VIZOCHOK_EVENT_RETAIN_DELIVERED`` /
        ``_FAILED``; module docstring of ``events._operations``), ``batch_size`` rows a
        transaction, all of it or ``max_batches`` batches.  The embedded worker calls this
        every hour; a deployment with another worker schedules it (e.g. a periodic
        procrastinate task).  Raises :class:`StoreError` when the database fails."""
        store = self._parts()[0]
        report = await store.purge(
            self._retention, now=self._now(), batch_size=batch_size, max_batches=max_batches
        )
        if report.deliveries or report.events:
            _log.info(
                "event.purged",
                deliveries=report.deliveries,
                attempts=report.attempts,
                events=report.events,
                more=report.more,
            )
        return report


def _test_report(
    endpoint: EventEndpoint, claim: Claim, settlement: Settlement | None
) -> EndpointTestReport:
    attempt = settlement.attempt if settlement is not None else None
    subscribed = any(type_matches(p, claim.event_type) for p in endpoint.event_types)
    if attempt is None:  # the outcome could not be recorded (its secret is unreadable)
        return EndpointTestReport(
            endpoint_id=endpoint.id,
            event_type=claim.event_type,
            url=endpoint.url,
            ok=False,
            status=None,
            latency_ms=None,
            detail="internal_error",
            delivery_id=claim.delivery_id,
            event_id=claim.event_id,
            attempts=(),
            problems=("internal_error: the test could not be sent or recorded; try again",),
            subscribed=subscribed,
        )
    problems, hint = test_problems(
        status=attempt.status,
        detail=attempt.detail,
        reason=attempt.reason,
        timeout_seconds=endpoint.timeout_seconds,
        response=attempt.response,
        location=settlement.location if settlement is not None else None,
        scheme=endpoint.signature_scheme,
    )
    if not subscribed:
        problems.append(
            f"this endpoint does not subscribe to {claim.event_type}: real events of this "
            "type are not sent to it"
        )
    return EndpointTestReport(
        endpoint_id=endpoint.id,
        event_type=claim.event_type,
        url=endpoint.url,
        ok=attempt.detail is None,
        status=attempt.status,
        latency_ms=attempt.latency_ms,
        detail=attempt.detail,
        delivery_id=claim.delivery_id,
        event_id=claim.event_id,
        attempts=(attempt,),
        problems=tuple(problems),
        hint=hint,
        response_body=None
        if attempt.response is None
        else attempt.response.decode("utf-8", "replace"),
        subscribed=subscribed,
    )


def needs_postgres() -> InvalidConfig:
    """The refusal of ``VIZOCHOK_EVENT_WORKER=procrastinate`` on a database that is not
    PostgreSQL (``serve`` says it before serving, :meth:`EventService.start` on start)."""
    return InvalidConfig(
        [
            FieldError(
                WORKER_SETTING,
                "procrastinate needs PostgreSQL (a postgresql+asyncpg:// database URL); on "
                "SQLite the embedded worker delivers events: set it to embedded",
            )
        ],
        what="settings",
    )


def _event_types_problems(event_types: object) -> list[FieldError]:
    if isinstance(event_types, str | bytes) or not isinstance(event_types, Sequence):
        return [FieldError("event_types", "must be a list of event types or patterns")]
    if not event_types:
        return [FieldError("event_types", "must name at least one event type or pattern")]
    if len(event_types) > MAX_EVENT_TYPES:
        return [FieldError("event_types", f"must hold at most {MAX_EVENT_TYPES} entries")]
    errors = []
    for index, pattern in enumerate(event_types):
        name = f"event_types[{index}]"
        try:
            match_event_types([pattern])
        except InvalidCall as exc:
            errors.append(FieldError(name, str(exc).removeprefix("event_types[0] ")))
    return errors


def _secret_problem(scheme: str, secret: object) -> str | None:
    problem = event_secret_problem(scheme, secret)
    if problem is None and scheme == "vizochok":
        problem = secret_problem(secret)
    return problem


def _timeout_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number"
    if not math.isfinite(value) or not MIN_TIMEOUT_SECONDS <= value <= MAX_TIMEOUT_SECONDS:
        return f"must be from {MIN_TIMEOUT_SECONDS:g} to {MAX_TIMEOUT_SECONDS:g} seconds"
    return None
