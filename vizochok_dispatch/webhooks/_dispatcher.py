"""The dispatcher the chat backend embeds: config lookup, then one webhook call, never a raise.

Everything it uses is passed in (store, transport or client, clock, sleep, retry policy), so
tests neither sleep nor touch the network unless they mean to.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Hashable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import httpx
import structlog
from aiohttp.abc import AbstractResolver

from .._exceptions import InvalidCall, StoreError
from ..contract._text import SESSION_ID, STORE_ID, checked_text
from ..events._delivery import DisabledHook
from ..events._operations import AutoDisable, Retention
from ..events._service import EventService
from ..http._transport import AiohttpTransport
from ..http._wire import Sender, httpx_sender
from ..observe import (
    INTERNAL,
    NO_SPAN,
    CacheStats,
    CallLogStats,
    Metrics,
    Tracing,
    WebhookSeries,
    end_call,
)
from ..tenants._cache import CachedConfigStore
from ..tenants._config import WebhookConfig, _tenant_id_problem, url_problem
from ..tenants._rotation import in_effect
from ..tenants._sql_store import SqlConfigStore
from ..tenants._store import ConfigStore
from . import _cart, _products
from ._calllog import RESPONSE_BYTES, CallLog, RandomSource
from ._calllog_store import CallLogStore
from ._delivery import Clock, Deliverer, RetryPolicy, Sleep
from ._guards import Admission, BreakerKey, BreakerPolicy, Breakers, Bulkhead, CircuitState
from ._results import (
    BLOCKED_DESTINATION,
    BULKHEAD_FULL,
    CIRCUIT_OPEN,
    INTERNAL_ERROR,
    NOT_CONFIGURED,
    STORE_ERROR,
    TIMEOUT,
    CartLoad,
    CartResult,
    Delivery,
    ProductsResult,
)
from ._settings import DispatchSettings

Webhook = Literal["products", "cart", "cart_get"]
Amount = Decimal | int | float | str

_log = structlog.get_logger("vizochok_dispatch")
_R = TypeVar("_R")
_MAX_LOGGED_PROBLEMS = 20
_MAX_CACHED_URLS = 10_000
_WEBHOOKS: tuple[Webhook, ...] = ("products", "cart", "cart_get")
_SPAN_NAMES = {webhook: f"webhook {webhook}" for webhook in _WEBHOOKS}


class Dispatcher:
    """Signed, bounded calls to tenants' webhooks; failures come back as values.

    Use as ``async with``: entering opens the store, leaving closes what the dispatcher
    created itself (an injected transport, client or store is left to its owner).
    """

    def __init__(
        self,
        store: ConfigStore,
        *,
        settings: DispatchSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
        retry: RetryPolicy | None = None,
        resolver: AbstractResolver | None = None,
        owns_store: bool = False,
        call_log_random: RandomSource | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        on_event_endpoint_disabled: DisabledHook | None = None,
    ) -> None:
        if transport is not None and client is not None:
            raise InvalidCall("pass a transport or a client, not both")
        self.settings = settings or DispatchSettings()
        if metrics is None and self.settings.metrics:
            metrics = Metrics(tenant_labels=self.settings.metrics_tenant_labels)
        #: The Prometheus series (``None`` when ``VIZOCHOK_METRICS`` is off): serve
        #: ``await metrics.exposition()``, or mount or merge ``metrics.registry``.
        self.metrics = metrics
        self._tracing = tracing if tracing is not None else Tracing(enabled=self.settings.tracing)
        self._clock = clock or Clock()
        #: Reads and writes go through the cache, so a save here is seen by the next call.
        self.store = CachedConfigStore(
            store,
            ttl_seconds=self.settings.config_cache_seconds,
            stale_if_error_seconds=self.settings.config_stale_if_error_seconds,
            clock=self._clock.monotonic,
        )
        self._owns_store = owns_store
        self._destinations = self.settings.destination_policy()
        self._destination_problems: dict[str, str | None] = {}
        self._breakers = Breakers(
            BreakerPolicy(
                failure_threshold=self.settings.circuit_failure_threshold,
                window_seconds=self.settings.circuit_window_seconds,
                cooldown_seconds=self.settings.circuit_cooldown_seconds,
            ),
            on_change=self._circuit_changed,
        )
        self._bulkhead = Bulkhead(self.settings.max_in_flight_per_tenant)
        self._owned_transport: httpx.AsyncBaseTransport | None = None
        send: Sender
        if client is not None:
            send = httpx_sender(client=client)
            _warn_unguarded("client", client)
        elif transport is not None:
            # An AiohttpTransport (the default, or the caller's own) takes the fast path,
            # and guards its connections itself.
            if isinstance(transport, AiohttpTransport):
                send = transport.send_wire
            else:
                send = httpx_sender(transport=transport)
                _warn_unguarded("transport", transport)
        else:
            self._owned_transport = AiohttpTransport(
                max_connections=self.settings.max_connections,
                keepalive_seconds=self.settings.keepalive_seconds,
                allowed_networks=self._destinations.allowed_networks,
                resolver=resolver,
                dns_cache_seconds=self.settings.dns_cache_seconds,
            )
            send = self._owned_transport.send_wire
        #: The one sender every call goes through (the SSRF-guarded transport by default).
        self.wire_sender: Sender = send
        settings = self.settings
        self._call_log = CallLog(
            CallLogStore(store) if isinstance(store, SqlConfigStore) else None,
            clock=self._clock,
            enabled=settings.call_log,
            sample_rate=settings.call_log_sample_rate,
            queue_size=settings.call_log_queue_size,
            batch_size=settings.call_log_batch_size,
            flush_seconds=settings.call_log_flush_seconds,
            max_age_seconds=settings.call_log_max_age_seconds,
            max_per_tenant=settings.call_log_max_per_tenant,
            purge_seconds=settings.call_log_purge_seconds,
            **({} if call_log_random is None else {"rand": call_log_random}),
            on_dropped=None if metrics is None else metrics.call_log_dropped.inc,
        )
        #: The hot path's one check: ``None`` when nothing is logged.
        self._calls: CallLog | None = self._call_log if self._call_log.enabled else None
        self._deliverer = Deliverer(
            send=send,
            clock=self._clock,
            sleep=sleep,
            max_response_bytes=self.settings.max_response_bytes,
            retry=retry or RetryPolicy(),
            error_prefix_bytes=RESPONSE_BYTES if self._calls is not None else 0,
            tracing=self._tracing,
        )
        # Event webhooks go out through the same sender (and SSRF guard), clock and sleep.
        self._events = EventService(
            store,
            send=send,
            clock=self._clock,
            sleep=sleep,
            rules=self.settings.config_rules(),
            schedule=self.settings.event_retry_schedule,
            worker=self.settings.event_worker,
            concurrency=self.settings.event_worker_concurrency,
            per_endpoint=self.settings.event_max_in_flight_per_endpoint,
            poll_seconds=self.settings.event_poll_seconds,
            metrics=metrics,
            tracing=self._tracing,
            secret_overlap_seconds=self.settings.secret_overlap_seconds,
            stalled_seconds=self.settings.event_worker_stalled_seconds,
            connect_timeout=self.settings.database_connect_timeout_seconds,
            auto_disable=AutoDisable(
                after_seconds=self.settings.event_disable_after,
                after_failures=self.settings.event_disable_after_failures,
            ),
            retention=Retention(
                delivered_seconds=self.settings.event_retain_delivered,
                failed_seconds=self.settings.event_retain_failed,
            ),
            on_disabled=on_event_endpoint_disabled,
            disabled_notice=self.settings.event_disabled_notice,
        )
        if metrics is not None:
            cache = self.store
            metrics.watch_circuits(self._breakers.states)
            metrics.watch_config_cache(
                lambda: CacheStats(cache.hits, cache.misses, cache.refresh_lag())
            )
            if self._events.available:
                metrics.watch_event_backlog(self._events.backlog)
            if (calls := self._calls) is not None:
                metrics.watch_call_log(lambda: CallLogStats(calls.written, calls.queued))

    @classmethod
    def from_database_url(cls, url: str | None = None, /, **overrides: Any) -> Self:  # noqa: ANN401 - settings fields
        """A dispatcher on a SQL store; ``overrides`` beat ``VIZOCHOK_*`` environment settings.

        Production (a database other than SQLite) needs ``VIZOCHOK_SECRET_KEYS``.
        """
        if url is not None:
            overrides["database_url"] = url
        return cls.from_settings(DispatchSettings(**overrides))

    @classmethod
    def from_settings(cls, settings: DispatchSettings, **options: Any) -> Self:  # noqa: ANN401 - Dispatcher keywords
        """A dispatcher on the SQL store ``settings`` describe, secrets encrypted at rest.

        Raises :class:`SettingsError` for a production deployment without
        ``VIZOCHOK_SECRET_KEYS`` (see ``DispatchSettings.secret_box``).
        """
        store = SqlConfigStore(
            settings.database_url,
            rules=settings.config_rules(),
            auto_migrate=settings.migrates_automatically(),
            secret_box=settings.secret_box(),
            connect_timeout_seconds=settings.database_connect_timeout_seconds,
            statement_timeout_seconds=settings.database_statement_timeout_seconds,
        )
        return cls(store, settings=settings, owns_store=True, **options)

    @property
    def events(self) -> EventService:
        """Event webhooks: endpoints, ``publish``, ``drain``, ``deliveries`` (needs a SQL
        store; the embedded worker starts with ``async with`` unless VIZOCHOK_EVENT_WORKER=off)."""
        return self._events

    @property
    def call_log(self) -> CallLog:
        """The synchronous call log: ``calls(tenant_id, …)`` pages, ``flush()``, and the
        ``dropped`` / ``written`` counts (needs a SQL store; written by a task started with
        ``async with``, flushed on close)."""
        return self._call_log

    async def __aenter__(self) -> Self:
        await self.store.open()
        try:
            await self._events.start()
            self._call_log.start()
        except BaseException:
            await self.aclose()  # a refused start leaves nothing open
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the event worker and write the call log's queue, then close the transport and
        store this dispatcher created."""
        await self._events.aclose()
        await self._call_log.aclose()
        if self._owned_transport is not None:
            await self._owned_transport.aclose()
        await self.store.stop_refreshing()
        if self._owns_store:
            await self.store.inner.close()

    # -- products (webhooks.md §4) -------------------------------------------------------------

    async def check_products(
        self,
        tenant_id: str,
        *,
        skus: Iterable[str],
        store_id: str,
        deadline: float | None = None,
    ) -> ProductsResult:
        """Live prices and stock; on any failure every requested SKU is unavailable."""
        result, _ = await self.check_products_with_delivery(
            tenant_id, skus=skus, store_id=store_id, deadline=deadline
        )
        return result

    async def check_products_with_delivery(
        self,
        tenant_id: str,
        *,
        skus: Iterable[str],
        store_id: str,
        deadline: float | None = None,
    ) -> tuple[ProductsResult, Delivery | None]:
        """:meth:`check_products` plus the delivery record (attempts, timings) for reports."""
        _check_call(tenant_id, deadline)
        wanted = _products.unique_skus(skus)
        _require_text(store_id, "store_id")
        if not wanted:
            return ProductsResult(available=(), unavailable=()), None
        body = _products.request_body(wanted, store_id)

        def on_failure(detail: str) -> ProductsResult:
            return _products.all_unavailable(wanted, detail)

        return await self._call(
            tenant_id,
            "products",
            target=lambda config: ("POST", config.products_url, body),
            on_failure=on_failure,
            parse=lambda payload: _products.parse_reply(wanted, payload),
            deadline=deadline,
        )

    # -- cart operations (webhooks.md §5) ------------------------------------------------------

    async def cart_add(
        self,
        tenant_id: str,
        *,
        store_id: str,
        session_id: str,
        sku: str,
        name: str,
        quantity: Amount,
        price: Amount,
        deadline: float | None = None,
    ) -> CartResult:
        """Add ``quantity`` of ``sku`` at ``price``."""
        body = _cart.operation_body(
            "add",
            store_id=store_id,
            session_id=session_id,
            sku=sku,
            name=name,
            quantity=quantity,
            price=price,
        )
        return await self._cart(tenant_id, body, deadline)

    async def cart_remove(
        self,
        tenant_id: str,
        *,
        store_id: str,
        session_id: str,
        sku: str,
        deadline: float | None = None,
    ) -> CartResult:
        """Remove ``sku`` from the cart."""
        body = _cart.operation_body("remove", store_id=store_id, session_id=session_id, sku=sku)
        return await self._cart(tenant_id, body, deadline)

    async def cart_update(
        self,
        tenant_id: str,
        *,
        store_id: str,
        session_id: str,
        sku: str,
        quantity: Amount,
        deadline: float | None = None,
    ) -> CartResult:
        """Set the quantity of ``sku``."""
        body = _cart.operation_body(
            "update", store_id=store_id, session_id=session_id, sku=sku, quantity=quantity
        )
        return await self._cart(tenant_id, body, deadline)

    async def cart_clear(
        self, tenant_id: str, *, store_id: str, session_id: str, deadline: float | None = None
    ) -> CartResult:
        """Empty the cart."""
        body = _cart.operation_body("clear", store_id=store_id, session_id=session_id)
        return await self._cart(tenant_id, body, deadline)

    async def cart_operation_with_delivery(
        self, tenant_id: str, body: bytes, *, deadline: float | None = None
    ) -> tuple[CartResult, Delivery | None]:
        """Send a prepared cart body (see the ``cart_*`` methods); for reports and tools."""
        return await self._call(
            tenant_id,
            "cart",
            target=lambda config: ("POST", config.cart_url, body),
            on_failure=_cart.failed,
            parse=_cart.parse_operation_reply,
            deadline=deadline,
        )

    async def _cart(self, tenant_id: str, body: bytes, deadline: float | None) -> CartResult:
        result, _ = await self.cart_operation_with_delivery(tenant_id, body, deadline=deadline)
        return result

    # -- cart GET (webhooks.md §6) -------------------------------------------------------------

    async def load_cart(
        self, tenant_id: str, *, store_id: str, session_id: str, deadline: float | None = None
    ) -> CartLoad:
        """The customer's existing cart; ``loaded=False`` means unknown, never empty."""
        result, _ = await self.load_cart_with_delivery(
            tenant_id, store_id=store_id, session_id=session_id, deadline=deadline
        )
        return result

    async def load_cart_with_delivery(
        self, tenant_id: str, *, store_id: str, session_id: str, deadline: float | None = None
    ) -> tuple[CartLoad, Delivery | None]:
        """:meth:`load_cart` plus the delivery record."""
        _require_text(store_id, "store_id")
        _require_text(session_id, "session_id")

        def target(config: WebhookConfig) -> tuple[str, str | None, bytes]:
            url = config.cart_get_url
            if url is None:
                return "GET", None, b""
            return "GET", _cart.load_url(url, store_id=store_id, session_id=session_id), b""

        return await self._call(
            tenant_id,
            "cart_get",
            target=target,
            on_failure=lambda detail: CartLoad(loaded=False, failure=detail),
            parse=_cart.parse_load_reply,
            deadline=deadline,
        )

    # -- rolling the secret (docs/webhooks.md §7) -------------------------------------------

    def now(self) -> datetime:
        """The dispatcher's wall clock as an aware UTC ``datetime`` (what signs requests and
        decides when a rolled secret's overlap ends)."""
        return datetime.fromtimestamp(self._clock.wall(), UTC)

    async def roll_secret(
        self, tenant_id: str, *, secret: str | None = None
    ) -> WebhookConfig | None:
        """Make a new secret (``secret``, or a generated ``whsec_`` one) pending: the current
        one keeps signing until :meth:`promote_secret`, or until ``secret_overlap_seconds``
        (24 h by default) have passed, when the new one signs by itself.  Rolling again
        replaces the pending secret.  Returns the saved config (``pending_secret`` holds the
        new secret), or ``None`` when the tenant has no config.

        Raises :class:`InvalidConfig` (field ``secret``) for an own secret that breaks
        docs/webhooks.md §1 or equals the current one; :class:`StoreError` when the store
        fails.
        """
        return await self.store.roll_secret(
            tenant_id,
            now=self.now(),
            overlap_seconds=self.settings.secret_overlap_seconds,
            secret=secret,
        )

    async def promote_secret(self, tenant_id: str) -> WebhookConfig | None:
        """Switch signing to the pending secret now (the old one stops signing); the saved
        config, or ``None`` when the tenant has no config.  Raises :class:`NoPendingSecret`
        when no secret is pending (none rolled, a rotate dropped it, or its overlap ended and
        it signs already)."""
        return await self.store.promote_secret(tenant_id, now=self.now())

    # -- health ------------------------------------------------------------------------------

    def circuit_states(self, tenant_id: str, config: WebhookConfig | None = None) -> dict[str, str]:
        """Each of the tenant's webhooks' circuit (``closed``, ``open``, ``half_open``).

        Circuits are per configured URL: given ``config`` (the admin API passes the stored
        one), each webhook shows the circuit of the URL configured there, so a URL just
        changed shows ``closed``; without it, the circuit of the URL last called.
        """
        return {
            webhook: str(
                self._breakers.state(
                    tenant_id,
                    webhook,
                    None if config is None else _configured_url(config, webhook) or "",
                    config=None if config is None else _generation(config),
                )
            )
            for webhook in _WEBHOOKS
        }

    def circuit_next_probe_in(
        self, tenant_id: str, webhook: Webhook, config: WebhookConfig
    ) -> float | None:
        """Seconds until the open circuit of ``webhook``'s configured URL lets one probe call
        through (0: the probe may go, or is under way); ``None`` when it is closed.  For
        reports."""
        url = _configured_url(config, webhook)
        if url is None:
            return None
        return self._breakers.next_probe_in(
            tenant_id, webhook, url, self._clock.monotonic(), config=_generation(config)
        )

    def _circuit_changed(self, key: BreakerKey, before: CircuitState, after: CircuitState) -> None:
        _log_circuit_change(key, before, after)
        if self.metrics is not None:
            self.metrics.circuit_changed(key[0], key[1], str(before), str(after))

    def _counts_as_down(self, delivery: Delivery, deadline_at: float | None) -> bool | None:
        """Whether the delivery counts against the endpoint; ``None``: it counts for nothing.

        A timeout that came when the caller's deadline ran out (not ``timeout_seconds``) is
        the caller's choice, not a sign the endpoint is down.
        """
        if (
            delivery.failure == TIMEOUT
            and deadline_at is not None
            and self._clock.monotonic() >= deadline_at
        ):
            return None
        return self._breakers.policy.counts_as_down(delivery)

    def destination_problem(self, url: str) -> str | None:
        """Why ``url`` may not be called (its scheme, or a host the SSRF guard refuses
        without DNS), or ``None``; the check before every attempt, cached per URL."""
        try:
            return self._destination_problems[url]
        except KeyError:
            pass
        problem = url_problem(url, allow_http=self.settings.allow_http)
        if problem is None:
            problem = self._destinations.url_problem(url)
        if len(self._destination_problems) >= _MAX_CACHED_URLS:
            self._destination_problems.clear()
        self._destination_problems[url] = problem
        return problem

    # -- the one path every webhook takes ---------------------------------------------------

    async def _config_for(self, tenant_id: str, deadline_at: float | None) -> WebhookConfig | None:
        """The tenant's config as it signs now, within the call's deadline: a store that does
        not answer in time is a :class:`StoreError` (the read goes on, shared, for the next
        call).  A rolled secret whose overlap ended signs, whatever the cache holds."""
        if deadline_at is None:
            config = await self.store.get_config(tenant_id)
        else:
            try:
                async with asyncio.timeout(max(deadline_at - self._clock.monotonic(), 0.0)):
                    config = await self.store.get_config(tenant_id)
            except TimeoutError:
                raise StoreError(
                    "the config store did not answer within the call's deadline"
                ) from None
        return None if config is None else in_effect(config, self.now())

    async def _call(
        self,
        tenant_id: str,
        webhook: Webhook,
        *,
        target: Callable[[WebhookConfig], tuple[str, str | None, bytes]],
        on_failure: Callable[[str], _R],
        parse: Callable[[bytes], _R],
        deadline: float | None,
    ) -> tuple[_R, Delivery | None]:
        """One call, counted in the metrics and traced (a span around its attempts')."""
        _check_call(tenant_id, deadline)
        series = None if self.metrics is None else self.metrics.webhook(tenant_id, webhook)
        tracer = self._tracing.tracer()
        started = self._clock.monotonic()
        with (
            NO_SPAN
            if tracer is None
            else tracer.start_as_current_span(
                _SPAN_NAMES[webhook],
                kind=INTERNAL,
                attributes={"vizochok.webhook": webhook, "vizochok.tenant_id": tenant_id},
                record_exception=False,
                set_status_on_exception=False,
            )
        ) as span:
            result, delivery = await self._make_call(
                tenant_id,
                webhook,
                target=target,
                on_failure=on_failure,
                parse=parse,
                deadline=deadline,
                series=series,
                traced=span is not None,
            )
            failure = _failure_of(result)
            if span is not None:
                if delivery is not None:
                    span.set_attribute("vizochok.delivery_id", delivery.delivery_id)
                    span.set_attribute("vizochok.attempts", len(delivery.attempts))
                end_call(span, failure)
        if series is not None:
            series.call(failure, self._clock.monotonic() - started)
        return result, delivery

    async def _make_call(
        self,
        tenant_id: str,
        webhook: Webhook,
        *,
        target: Callable[[WebhookConfig], tuple[str, str | None, bytes]],
        on_failure: Callable[[str], _R],
        parse: Callable[[bytes], _R],
        deadline: float | None,
        series: WebhookSeries | None,
        traced: bool,
    ) -> tuple[_R, Delivery | None]:
        deadline_at = None if deadline is None else self._clock.monotonic() + deadline
        log = _log.bind(tenant_id=tenant_id, webhook=webhook)
        delivery: Delivery | None = None
        try:
            if deadline_at is not None and deadline_at <= self._clock.monotonic():
                # a deadline spent before the call began: nothing is looked up or sent
                return self._failed(
                    log, tenant_id, webhook, on_failure, TIMEOUT, delivery=None
                ), None
            config = await self._config_for(tenant_id, deadline_at)
            method, url, body = target(config) if config is not None else ("", None, b"")
            if config is None or url is None:
                return self._failed(
                    log, tenant_id, webhook, on_failure, NOT_CONFIGURED, delivery=None
                ), None
            if self.destination_problem(url) is not None:
                return self._failed(
                    log, tenant_id, webhook, on_failure, BLOCKED_DESTINATION, delivery=None
                ), None
            # The circuit is the configured URL's: cart GET's per-session query is not a
            # new endpoint.
            key = (tenant_id, webhook, _configured_url(config, webhook) or url)
            generation = _generation(config)
            if not self._bulkhead.try_enter(tenant_id):
                _count_rejection(series)
                return self._failed(
                    log, tenant_id, webhook, on_failure, BULKHEAD_FULL, delivery=None
                ), None
            admission = self._breakers.admit(key, self._clock.monotonic(), config=generation)
            if admission is Admission.REFUSED:
                self._bulkhead.leave(tenant_id)
                return self._failed(
                    log, tenant_id, webhook, on_failure, CIRCUIT_OPEN, delivery=None
                ), None
            down: bool | None = None  # None: no outcome (the caller cancelled the call)
            try:
                delivery = await self._deliverer.deliver(
                    method=method,
                    url=url,
                    body=body,
                    secret=config.secret,
                    timeout_seconds=config.timeout_seconds,
                    deadline_at=deadline_at,
                    log=log,
                    series=series,
                    traced=traced,
                )
                down = self._counts_as_down(delivery, deadline_at)
            finally:
                self._bulkhead.leave(tenant_id)
                self._breakers.settle(
                    key, admission, self._clock.monotonic(), down=down, config=generation
                )
            if delivery.body is None:
                return self._failed(
                    log,
                    tenant_id,
                    webhook,
                    on_failure,
                    delivery.failure or INTERNAL_ERROR,
                    delivery=delivery,
                ), delivery
            result = parse(delivery.body)
        except StoreError as exc:
            log.warning("webhook.store_error", error=str(exc))
            return self._failed(
                log, tenant_id, webhook, on_failure, STORE_ERROR, delivery=delivery
            ), delivery
        except Exception as exc:
            log.exception("webhook.internal_error", error_type=type(exc).__name__)
            return self._failed(
                log, tenant_id, webhook, on_failure, INTERNAL_ERROR, delivery=delivery
            ), delivery
        failure = _failure_of(result)
        problems: tuple[str, ...] = getattr(result, "problems", ())
        if failure is not None or problems:
            self._settled(log, tenant_id, webhook, delivery, failure=failure, problems=problems)
        elif (calls := self._calls) is not None and calls.rand() < calls.sample_rate:
            calls.succeeded(tenant_id, webhook, delivery, ())
        return result, delivery

    def _settled(
        self,
        log: structlog.typing.FilteringBoundLogger,
        tenant_id: str,
        webhook: Webhook,
        delivery: Delivery,
        *,
        failure: str | None,
        problems: tuple[str, ...],
    ) -> None:
        """A delivered call's failure or reply problems: log lines and call log entry."""
        if failure is not None:
            log.warning(
                "webhook.failure",
                delivery_id=delivery.delivery_id,
                detail=failure,
                attempts=len(delivery.attempts),
                problems=list(problems[:_MAX_LOGGED_PROBLEMS]),
            )
            if self._calls is not None:
                self._calls.failed(tenant_id, webhook, failure, delivery, problems)
            return
        log.warning(
            "webhook.reply_problems",
            delivery_id=delivery.delivery_id,
            problems=list(problems[:_MAX_LOGGED_PROBLEMS]),
            count=len(problems),
        )
        if self._calls is not None:
            self._calls.succeeded(tenant_id, webhook, delivery, problems)

    def _failed(
        self,
        log: structlog.typing.FilteringBoundLogger,
        tenant_id: str,
        webhook: Webhook,
        on_failure: Callable[[str], _R],
        detail: str,
        *,
        delivery: Delivery | None,
    ) -> _R:
        """A failure's log line and call log entry, and the caller's failure value."""
        log.warning(
            "webhook.failure",
            delivery_id=delivery.delivery_id if delivery else None,
            detail=detail,
            attempts=len(delivery.attempts) if delivery else 0,
        )
        if self._calls is not None:
            self._calls.failed(tenant_id, webhook, detail, delivery)
        return on_failure(detail)


def _configured_url(config: WebhookConfig, webhook: str) -> str | None:
    """The URL the tenant configured for ``webhook`` (before cart GET's query is added)."""
    if webhook == "products":
        return config.products_url
    if webhook == "cart":
        return config.cart_url
    return config.cart_get_url


def _generation(config: WebhookConfig) -> Hashable:
    """Which save of the config this is: a circuit opened under one is not another's."""
    return (config.version, config.updated_at)


def _warn_unguarded(kind: str, injected: object) -> None:
    """An injected httpx client or transport connects where DNS says, unchecked (SECURITY.md)."""
    _log.warning(
        "dispatcher.connect_guard_absent",
        injected=kind,
        type=type(injected).__qualname__,
        unchecked="connect-time DNS check of resolved addresses",
        still_checked="save-time and per-attempt URL checks",
    )


def _log_circuit_change(key: BreakerKey, before: CircuitState, after: CircuitState) -> None:
    tenant_id, webhook, _url = key
    _log.warning(
        "webhook.circuit",
        tenant_id=tenant_id,
        webhook=webhook,
        state=str(after),
        previous=str(before),
    )


def _count_rejection(series: WebhookSeries | None) -> None:
    if series is not None:
        series.rejected()


def _failure_of(result: object) -> str | None:
    """A result's failure detail (``None``: the webhook answered)."""
    return getattr(result, "failure", None) or _cart_detail(result)


def _cart_detail(result: object) -> str | None:
    return result.detail if isinstance(result, CartResult) else None


def _require_text(value: object, field: Literal["store_id", "session_id"]) -> None:
    checked_text(value, field, STORE_ID if field == "store_id" else SESSION_ID)


#: The longest ``deadline=`` a call takes, in seconds (a chat turn waits far less).
MAX_DEADLINE_SECONDS = 86_400.0


def _check_call(tenant_id: object, deadline: object) -> None:
    """:class:`InvalidCall` for a tenant id no store accepts (the config rule, so nothing
    later, a log line included, meets text it cannot encode) or a deadline that is not a
    finite number of seconds up to :data:`MAX_DEADLINE_SECONDS` (0 or less: already spent)."""
    if (problem := _tenant_id_problem(tenant_id)) is not None:
        raise InvalidCall(f"tenant_id {problem}")
    if deadline is None:
        return
    if isinstance(deadline, bool) or not isinstance(deadline, int | float):
        raise InvalidCall("deadline must be a number of seconds, or None")
    # compared before any float conversion: a huge int cannot become a float
    if not (isinstance(deadline, int) or math.isfinite(deadline)) or not (
        -MAX_DEADLINE_SECONDS <= deadline <= MAX_DEADLINE_SECONDS
    ):
        raise InvalidCall(
            f"deadline must be a finite number of seconds, at most {MAX_DEADLINE_SECONDS:g}"
        )
