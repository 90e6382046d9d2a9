"""Deployment settings, read from ``VIZOCHOK_*`` environment variables.

Never a module-level instance: whoever builds a dispatcher builds (or passes) its settings,
so tests and several dispatchers in one process never share hidden state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationInfo,
    field_serializer,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .._exceptions import SettingsError
from ..events._operations import (
    DEFAULT_DISABLE_AFTER_FAILURES,
    DEFAULT_DISABLE_AFTER_SECONDS,
    DEFAULT_RETAIN_DELIVERED_SECONDS,
    DEFAULT_RETAIN_FAILED_SECONDS,
    MAX_DISABLE_AFTER_SECONDS,
    MAX_RETAIN_SECONDS,
    MIN_RETAIN_SECONDS,
)
from ..events._schedule import DEFAULT_RETRY_SCHEDULE, RetrySchedule, parse_duration
from ..http._destinations import DestinationPolicy, parse_networks
from ..tenants._cache import DEFAULT_STALE_IF_ERROR_SECONDS
from ..tenants._config import ConfigRules
from ..tenants._crypto import KEYS_SETTING, SecretBox
from ..tenants._rotation import (
    DEFAULT_SECRET_OVERLAP_SECONDS,
    MAX_SECRET_OVERLAP_SECONDS,
    MIN_SECRET_OVERLAP_SECONDS,
)
from ..tenants._sql_store import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_STATEMENT_TIMEOUT_SECONDS,
    safe_url,
)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./vizochok.db"


class DispatchSettings(BaseSettings):
    """What a deployment may tune; every field has the contract's default.

    ``database_url`` may carry the database password.  It is read as given
    (``settings.database_url``), but ``repr``, ``str`` and ``model_dump`` show it with the
    password as ``***`` (SQLAlchemy's ``render_as_string(hide_password=True)``), so logging
    the settings never logs the password.
    """

    model_config = SettingsConfigDict(
        env_prefix="VIZOCHOK_",
        extra="forbid",
        frozen=True,
        validate_default=True,
        # a refused VIZOCHOK_SECRET_KEYS must not be echoed into the error (and a log)
        hide_input_in_errors=True,
    )

    database_url: str = DEFAULT_DATABASE_URL
    #: Seconds to wait for a database connection (connect, TLS, login), or for a free one in
    #: the pool. Kept well under a webhook's timeout: a config lookup must not eat the call.
    database_connect_timeout_seconds: float = Field(
        default=DEFAULT_CONNECT_TIMEOUT_SECONDS, gt=0, le=60
    )
    #: Seconds one database statement may take before it is given up (PostgreSQL: cancelled;
    #: SQLite: how long a write waits for another writer's lock). Migrations are not bounded.
    database_statement_timeout_seconds: float = Field(
        default=DEFAULT_STATEMENT_TIMEOUT_SECONDS, gt=0, le=300
    )
    #: ``None``: migrate automatically on the embedded SQLite default only.
    auto_migrate: bool | None = None
    #: Accept plain ``http://`` webhook URLs (local development, loopback tests).
    allow_http: bool = False
    #: Networks webhook URLs may reach although they are not public, as comma-separated
    #: CIDRs (``127.0.0.0/8,::1/128`` for local development). Everything else non-public is
    #: blocked; there is deliberately no switch that turns the guard off.
    allowed_networks: Annotated[tuple[IPvAnyNetwork, ...], NoDecode] = ()
    #: Cap on a webhook's response body; a larger one is ``invalid_response``.
    max_response_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    #: Connections kept open across all tenants by the default transport.
    max_connections: int = Field(default=512, ge=1, le=65536)
    #: Failures (timeouts, connection failures, 5xx) within the window that open an
    #: endpoint's circuit; 0 never opens it.
    circuit_failure_threshold: int = Field(default=5, ge=0, le=10_000)
    circuit_window_seconds: float = Field(default=30.0, gt=0, le=3600)
    #: Seconds an open circuit fails fast before one probe is let through.
    circuit_cooldown_seconds: float = Field(default=15.0, gt=0, le=3600)
    #: Calls one tenant may have in flight at once; more fail at once (``bulkhead_full``).
    max_in_flight_per_tenant: int = Field(default=128, ge=1, le=65536)
    #: Seconds a cached tenant config is served before it is read again: the bound on how
    #: long another process's save takes to reach this one (0 turns the cache off).
    config_cache_seconds: float = Field(default=5.0, ge=0, le=3600)
    #: While the store fails, a cached config is still served for this many seconds beyond
    #: ``config_cache_seconds`` after the store last confirmed it (HTTP's stale-if-error,
    #: RFC 5861); older, the call fails with ``store_error``. 0: never served stale.
    config_stale_if_error_seconds: float = Field(
        default=DEFAULT_STALE_IF_ERROR_SECONDS, ge=0, le=86_400
    )
    #: Seconds a rolled secret (``…/secret/roll``) waits to be promoted before it signs by
    #: itself: the overlap during which the old secret still signs (docs/webhooks.md §7).
    #: Fixed per secret when it is rolled; 1 s to 30 days, 24 h by default.
    secret_overlap_seconds: float = Field(
        default=DEFAULT_SECRET_OVERLAP_SECONDS,
        ge=MIN_SECRET_OVERLAP_SECONDS,
        le=MAX_SECRET_OVERLAP_SECONDS,
    )
    #: Seconds a (checked) DNS answer is reused; 0 resolves and checks on every connection.
    dns_cache_seconds: float = Field(default=10.0, ge=0, le=3600)
    #: Seconds an idle keep-alive connection is kept before it is closed.
    keepalive_seconds: float = Field(default=15.0, gt=0, le=600)
    #: ``production`` makes ``VIZOCHOK_SECRET_KEYS`` mandatory even on SQLite; a database
    #: other than SQLite counts as production whatever this says.
    environment: Literal["development", "production"] = "development"
    #: The keys that encrypt webhook secrets at rest: comma-separated ``key_id:base64key``
    #: (32 bytes each). The first encrypts, all decrypt (rotation). Unset on the embedded
    #: SQLite default: a key file beside the database is used (created with a warning).
    secret_keys: SecretStr | None = None
    #: Largest request body the admin API reads; more is refused with 413.
    admin_max_body_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    #: Test-fires one tenant may make per minute through the admin API.
    admin_test_fires_per_minute: int = Field(default=10, ge=1, le=10_000)
    #: Conformance checks (``POST /api/v1/admin/webhooks/check``) one tenant may run per
    #: minute; each sends about 45 requests to the tenant's backend.
    admin_checks_per_minute: int = Field(default=2, ge=1, le=1000)
    #: Seconds an admin panel session lasts from sign-in (8 h); revoking its key ends it
    #: sooner.
    panel_session_seconds: float = Field(default=8 * 3600.0, ge=60, le=30 * 24 * 3600)
    #: Mark the panel's cookie ``Secure``: ``None`` when the request came over https; true
    #: always (behind a TLS proxy that does not forward ``X-Forwarded-Proto``); false never.
    panel_secure_cookie: bool | None = None
    #: The delays before an event delivery's attempts 2, 3, … (``"30s,5m"``: each a number
    #: and a unit, ms s m h d; ``none``: one attempt), kept exactly. Unset: three attempts in
    #: all, 5 min then 1 h apart, each delay lengthened by up to 25 % jitter.
    event_retry_schedule: Annotated[RetrySchedule, NoDecode] = DEFAULT_RETRY_SCHEDULE
    #: ``embedded``: the dispatcher delivers events itself, in a task started with it (any
    #: database); ``off``: it only publishes (another process delivers, or ``events.drain``);
    #: ``procrastinate`` (PostgreSQL only): publishing defers a job per delivery, and
    #: ``vizochok-dispatch worker`` processes deliver them, on any number of machines.
    event_worker: Literal["embedded", "off", "procrastinate"] = "embedded"
    #: Event attempts one process makes at once, across all endpoints.
    event_worker_concurrency: int = Field(default=64, ge=1, le=10_000)
    #: Event attempts one endpoint may have in flight at once (an ordered endpoint has one),
    #: so an endpoint that hangs cannot take the others' capacity: in one process with the
    #: embedded worker, across all worker processes with ``procrastinate`` (give every
    #: process the same value).
    event_max_in_flight_per_endpoint: int = Field(default=4, ge=1, le=1000)
    #: Seconds at most between the event worker's looks for due deliveries (what other
    #: processes publish); a publish in this process wakes it at once.
    event_poll_seconds: float = Field(default=1.0, ge=0.01, le=60)
    #: ``procrastinate``: seconds without a heartbeat after which a worker counts as dead and
    #: its jobs are run again by another (heartbeats go every third of this).
    event_worker_stalled_seconds: float = Field(default=30.0, ge=1, le=3600)
    #: Auto-disable: an endpoint whose every attempt has failed for this long (since its last
    #: delivered one) is disabled at its next failure. Seconds, or text with a unit (``5d``,
    #: ``12h``); 0 never disables for time. Tests never count.
    event_disable_after: float = DEFAULT_DISABLE_AFTER_SECONDS
    #: Auto-disable: an endpoint with this many failed deliveries in a row (each one failed
    #: after its whole retry schedule) is disabled; 0 never disables for a count.
    event_disable_after_failures: int = Field(
        default=DEFAULT_DISABLE_AFTER_FAILURES, ge=0, le=10_000_000
    )
    #: When delivery disables an endpoint, also publish an ``endpoint.disabled`` event to the
    #: tenant's other endpoints subscribed to it (never to the disabled one, which takes
    #: nothing while disabled). Off by default: the log event and the operator hook always run.
    event_disabled_notice: bool = False
    #: Retention: delivered deliveries, their attempts, and events left with no delivery are
    #: purged this long after they settled (``30d``; from 1 day to 10 years).
    event_retain_delivered: float = DEFAULT_RETAIN_DELIVERED_SECONDS
    #: Retention: failed deliveries (still recoverable until then) are kept this long after
    #: they failed (``90d``; from 1 day to 10 years).
    event_retain_failed: float = DEFAULT_RETAIN_FAILED_SECONDS

    #: The synchronous call log (``Dispatcher.call_log``, ``GET /api/v1/admin/webhooks/calls``):
    #: ``on`` keeps every failed call and a sample of the others; ``off`` keeps nothing new.
    #: Needs a SQL store.
    call_log: bool = True
    #: The share of successful calls the call log keeps (0: none, 1: all).
    call_log_sample_rate: float = Field(default=0.01, ge=0, le=1)
    #: Entries waiting to be written at most; beyond it new entries are dropped and counted.
    call_log_queue_size: int = Field(default=10_000, ge=1, le=1_000_000)
    #: Entries one insert writes at most.
    call_log_batch_size: int = Field(default=500, ge=1, le=10_000)
    #: Seconds at most between writes of the queue.
    call_log_flush_seconds: float = Field(default=1.0, gt=0, le=60)
    #: Seconds an entry is kept (0: no age limit).
    call_log_max_age_seconds: float = Field(default=7 * 86_400.0, ge=0, le=366 * 86_400)
    #: Entries kept per tenant, the newest (0: no count limit).
    call_log_max_per_tenant: int = Field(default=10_000, ge=0, le=10_000_000)
    #: Seconds between purges of what the two limits above no longer keep.
    call_log_purge_seconds: float = Field(default=60.0, gt=0, le=86_400)
    #: Prometheus metrics of calls, circuits, the config cache and event deliveries
    #: (``Dispatcher.metrics``, ``GET /metrics`` on the admin app); off: none are kept.
    metrics: bool = True
    #: Add a ``tenant`` label to the per-call series: one series set per tenant called, kept
    #: for the process's life (about 60 series per tenant and webhook), so only for a
    #: bounded number of tenants.
    metrics_tenant_labels: bool = False
    #: OpenTelemetry spans of calls and attempts, with ``traceparent`` on outgoing requests;
    #: they go to the host's tracer provider and cost one check per call while none is set.
    tracing: bool = True
    #: When set, ``GET /metrics`` on the admin app needs ``Authorization: Bearer <token>``;
    #: unset, it is open (keep it to the scraper's network).
    metrics_token: SecretStr | None = None

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, (safe_url(value) if name == "database_url" else value)

    @field_serializer("database_url")
    def _mask_database_url(self, value: str) -> str:
        return safe_url(value)

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_networks(value)
        return value

    @field_validator("event_retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return RetrySchedule.parse(value)
        return value

    @field_validator("event_disable_after", mode="before")
    @classmethod
    def _parse_disable_after(cls, value: object) -> object:
        return parse_duration(
            value,
            setting="VIZOCHOK_EVENT_DISABLE_AFTER (event_disable_after)",
            low=0.0,
            high=MAX_DISABLE_AFTER_SECONDS,
        )

    @field_validator("event_retain_delivered", "event_retain_failed", mode="before")
    @classmethod
    def _parse_retention(cls, value: object, info: ValidationInfo) -> object:
        name = str(info.field_name)
        return parse_duration(
            value,
            setting=f"VIZOCHOK_{name.upper()} ({name})",
            low=MIN_RETAIN_SECONDS,
            high=MAX_RETAIN_SECONDS,
        )

    @field_validator("secret_keys")
    @classmethod
    def _parse_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            SecretBox.from_keyring(value.get_secret_value())  # refuse a bad keyring at startup
        return value

    def is_production(self) -> bool:
        """Production: ``VIZOCHOK_ENVIRONMENT=production``, or any database but SQLite."""
        return self.environment == "production" or not self.database_url.startswith("sqlite")

    def secret_box(self) -> SecretBox | None:
        """The keyring that encrypts webhook secrets, from ``VIZOCHOK_SECRET_KEYS``.

        ``None`` means the embedded default (a key file beside the SQLite database), which
        only a non-production deployment may use: production without keys raises
        :class:`SettingsError`, so it refuses to start instead of storing secrets in clear.
        """
        if self.secret_keys is not None:
            return SecretBox.from_keyring(self.secret_keys.get_secret_value())
        if self.is_production():
            raise SettingsError(
                f"{KEYS_SETTING} is not set, and this is a production deployment (the "
                "database is not SQLite, or VIZOCHOK_ENVIRONMENT=production): webhook secrets "
                "must be encrypted with a key you manage. Generate one with "
                f"`vizochok-dispatch secrets generate-key` and set {KEYS_SETTING}=<that line>."
            )
        return None

    def destination_policy(self) -> DestinationPolicy:
        """The SSRF guard these settings describe."""
        return DestinationPolicy(allowed_networks=tuple(self.allowed_networks))

    def config_rules(self) -> ConfigRules:
        """The config validation rules these settings describe."""
        return ConfigRules(allow_http=self.allow_http, destinations=self.destination_policy())

    def migrates_automatically(self) -> bool:
        """Whether the store should run migrations itself when it opens."""
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.database_url.startswith("sqlite")
