"""``vizochok-dispatch events``: event endpoints, publishing, the delivery log, retry and
recovery, for operators.

Registered on the main command in ``_cli``; the same settings, exit codes and one-line errors
(``_cli.EXIT_STATUS``): an unknown tenant is ``no tenant 'ID'``, an unknown endpoint of a
known tenant ``no event endpoint 'ID' for tenant 'T'``, and every refusal one line on stderr
with exit 1.

These commands never run a worker: a CLI process publishes or re-queues and exits, and the
running service delivers (``vizochok-dispatch serve`` with its embedded worker, the default,
whose poll finds the work; with ``VIZOCHOK_EVENT_WORKER=procrastinate`` the job is deferred at
once and ``vizochok-dispatch worker`` processes take it).  ``events retry`` is the exception:
it makes its one attempt itself, now, and prints it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ._exceptions import InvalidCall, SettingsError
from .events._operations import MAX_RETAIN_SECONDS
from .events._schedule import parse_duration
from .events._service import DEFAULT_TIMEOUT_SECONDS, MAX_PAGE
from .events._values import EventDelivery, EventEndpoint, PublishedEvent, RecoveryReport
from .tenants._config import mask_secret
from .tenants._pages import Page
from .webhooks._dispatcher import Dispatcher

if TYPE_CHECKING:
    from ._cli import _State

_T = TypeVar("_T")

#: The most bytes ``--data`` reads from a file.
MAX_DATA_BYTES = 1_000_000


def _cli() -> ModuleType:
    """The main command's module, for its helpers; it imports this one last, so it is
    looked up when a command runs (importing this module first works too)."""
    from . import _cli as main_module  # noqa: PLC0415 - see the docstring

    return main_module


def _echo_json(document: object) -> None:
    _cli()._echo_json(document)


def _with_tenant(state: _State, tenant: str, use: Callable[[Dispatcher], Awaitable[_T]]) -> _T:
    """Run ``use`` on a dispatcher that delivers nothing itself, once ``tenant`` is known."""
    settings = state.settings()
    if settings.event_worker == "embedded":
        settings = settings.model_copy(update={"event_worker": "off"})

    async def call() -> _T:
        async with Dispatcher.from_settings(settings) as dispatcher:
            await _cli()._require_tenant(dispatcher, tenant)
            return await use(dispatcher)

    result: _T = _cli()._run(call)
    return result


def _endpoint_dict(endpoint: EventEndpoint, *, reveal: bool = False) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "event_types": list(endpoint.event_types),
        "signature_scheme": endpoint.signature_scheme,
        "timeout_seconds": endpoint.timeout_seconds,
        "ordered": endpoint.ordered,
        "description": endpoint.description,
        "status": endpoint.status,
        "disabled_reason": endpoint.disabled_reason,
        "disabled_at": endpoint.disabled_at,
        "secret_masked": mask_secret(endpoint.secret),
        **({"secret": endpoint.secret} if reveal else {}),
        "created_at": endpoint.created_at,
    }


def _endpoint_line(endpoint: EventEndpoint) -> str:
    status: str = endpoint.status
    if endpoint.disabled_at is not None:
        status += f" since {endpoint.disabled_at:%Y-%m-%d %H:%M} ({endpoint.disabled_reason})"
    return "\t".join(
        [
            endpoint.id,
            status,
            endpoint.url,
            ",".join(endpoint.event_types),
            endpoint.signature_scheme,
        ]
    )


def _delivery_line(delivery: EventDelivery) -> str:
    last = delivery.attempts[-1] if delivery.attempts else None
    answer = "-" if last is None else str(last.status if last.status is not None else last.detail)
    return "\t".join(
        [
            f"{delivery.created_at:%Y-%m-%d %H:%M:%S}",
            delivery.id,
            delivery.status,
            delivery.event_type,
            delivery.endpoint_id,
            f"attempts {len(delivery.attempts)}",
            f"last {answer}",
            delivery.detail or "",
        ]
    ).rstrip()


def _delivery_dict(delivery: EventDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "endpoint_id": delivery.endpoint_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "detail": delivery.detail,
        "next_attempt_at": delivery.next_attempt_at,
        "created_at": delivery.created_at,
        "attempts": [
            {
                "number": attempt.number,
                "status": attempt.status,
                "latency_ms": attempt.latency_ms,
                "detail": attempt.detail,
                "attempted_at": attempt.attempted_at,
            }
            for attempt in delivery.attempts
        ],
    }


def _read_data(given: str) -> dict[str, object]:
    """``--data``: JSON text, or ``@path`` to read it from a file; a JSON object."""
    if given.startswith("@"):
        path = Path(given[1:])
        try:
            with path.open("rb") as file:
                raw = file.read(MAX_DATA_BYTES + 1)
        except OSError as exc:
            raise InvalidCall(f"--data cannot read {path}: {exc.strerror or exc}") from None
        if len(raw) > MAX_DATA_BYTES:
            raise InvalidCall(f"--data {path} is over {MAX_DATA_BYTES} bytes")
        where = str(path)
    else:
        raw, where = given.encode(), "the value given"
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "it cannot be read"
        raise InvalidCall(f"--data: {where} is not valid JSON ({reason})") from None
    if not isinstance(data, dict):
        raise InvalidCall(f"--data: {where} must hold a JSON object (the event's data)")
    return data


@click.group()
def events() -> None:
    """Event webhooks: endpoints, publishing, the delivery log, retry and recovery."""


@events.group()
def endpoints() -> None:
    """A tenant's event endpoints."""


@endpoints.command("list")
@click.argument("tenant")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
@click.pass_obj
def endpoints_list(state: _State, tenant: str, as_json: bool) -> None:
    """List TENANT's event endpoints: id, status, URL, event types, scheme."""
    found = _with_tenant(state, tenant, lambda d: d.events.endpoints(tenant))
    if as_json:
        _echo_json([_endpoint_dict(endpoint) for endpoint in found])
        return
    for endpoint in found:
        click.echo(_endpoint_line(endpoint))


@endpoints.command("create")
@click.argument("tenant")
@click.option("--url", required=True, help="Where the events are sent (the webhook URL rules).")
@click.option(
    "--event-type",
    "event_types",
    multiple=True,
    required=True,
    help="A type name, prefix.* or * (repeat it for more).",
)
@click.option(
    "--scheme",
    type=click.Choice(["vizochok", "standard-webhooks"]),
    default="vizochok",
    show_default=True,
    help="How the requests are signed.",
)
@click.option(
    "--timeout",
    type=float,
    default=DEFAULT_TIMEOUT_SECONDS,
    show_default=True,
    help="Seconds one attempt may take (1-30).",
)
@click.option("--ordered", is_flag=True, help="One at a time, in publish order.")
@click.option("--description", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
@click.pass_obj
def endpoints_create(  # noqa: PLR0917 - click passes every option positionally
    state: _State,
    tenant: str,
    url: str,
    event_types: Sequence[str],
    scheme: str,
    timeout: float,
    ordered: bool,
    description: str | None,
    as_json: bool,
) -> None:
    """Register an event endpoint for TENANT; its secret is printed once."""
    endpoint = _with_tenant(
        state,
        tenant,
        lambda d: d.events.create_endpoint(
            tenant,
            url=url,
            event_types=list(event_types),
            signature_scheme=scheme,
            timeout_seconds=timeout,
            ordered=ordered,
            description=description,
        ),
    )
    if as_json:
        _echo_json(_endpoint_dict(endpoint, reveal=True))
        return
    click.echo(f"Created event endpoint {endpoint.id} for tenant {tenant}")
    click.echo(f"Secret: {endpoint.secret}")
    click.echo("Shown once: store it now; the receiver verifies every request with it.")


def _switch(state: _State, tenant: str, endpoint_id: str, *, enabled: bool) -> EventEndpoint:
    async def change(d: Dispatcher) -> EventEndpoint:
        saved = await d.events.update_endpoint(tenant, endpoint_id, enabled=enabled)
        if saved is None:
            raise InvalidCall(f"no event endpoint {endpoint_id!r} for tenant {tenant!r}")
        return saved

    return _with_tenant(state, tenant, change)


@endpoints.command("disable")
@click.argument("tenant")
@click.argument("endpoint_id")
@click.pass_obj
def endpoints_disable(state: _State, tenant: str, endpoint_id: str) -> None:
    """Disable TENANT's endpoint ENDPOINT_ID: its pending deliveries wait, unattempted."""
    saved = _switch(state, tenant, endpoint_id, enabled=False)
    click.echo(_endpoint_line(saved))


@endpoints.command("enable")
@click.argument("tenant")
@click.argument("endpoint_id")
@click.pass_obj
def endpoints_enable(state: _State, tenant: str, endpoint_id: str) -> None:
    """Enable TENANT's endpoint ENDPOINT_ID again: its due deliveries go out."""
    saved = _switch(state, tenant, endpoint_id, enabled=True)
    click.echo(_endpoint_line(saved))


@events.command("publish")
@click.argument("tenant")
@click.argument("event_type")
@click.option(
    "--data", required=True, metavar="JSON|@FILE", help="The event's data: JSON, or @file.json."
)
@click.option("--idempotency-key", default=None, help="Publish once per key within 24 h.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
@click.pass_obj
def publish(  # noqa: PLR0917 - click passes every option positionally
    state: _State,
    tenant: str,
    event_type: str,
    data: str,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Publish an EVENT_TYPE event to TENANT's subscribed endpoints (the service delivers it)."""

    async def send(d: Dispatcher) -> PublishedEvent:
        return await d.events.publish(
            tenant, event_type, data=_read_data(data), idempotency_key=idempotency_key
        )

    published = _with_tenant(state, tenant, send)
    if as_json:
        _echo_json(
            {
                "event_id": published.id,
                "event_type": published.event_type,
                "duplicate": published.duplicate,
                "deliveries": [
                    {"id": dl.id, "endpoint_id": dl.endpoint_id} for dl in published.deliveries
                ],
            }
        )
        return
    again = " (already published with this key: nothing new)" if published.duplicate else ""
    click.echo(
        f"Published {published.id} ({published.event_type}) to "
        f"{len(published.deliveries)} endpoint(s){again}"
    )


@events.command("deliveries")
@click.argument("tenant")
@click.option("--status", type=click.Choice(["pending", "delivered", "failed"]), default=None)
@click.option("--endpoint", "endpoint_id", default=None, help="One endpoint's deliveries.")
@click.option("--event-type", default=None, help="One event type's deliveries.")
@click.option("--event", "event_id", default=None, help="One event's deliveries.")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_PAGE),
    default=50,
    show_default=True,
    help="How many of the newest.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
@click.pass_obj
def deliveries(  # noqa: PLR0917 - click passes every option positionally
    state: _State,
    tenant: str,
    status: str | None,
    endpoint_id: str | None,
    event_type: str | None,
    event_id: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """TENANT's event deliveries, newest first: time, id, status, type, endpoint, attempts."""

    async def read(d: Dispatcher) -> Page[EventDelivery]:
        return await d.events.delivery_log(
            tenant,
            status=status,
            endpoint_id=endpoint_id,
            event_type=event_type,
            event_id=event_id,
            limit=limit,
        )

    page = _with_tenant(state, tenant, read)
    if as_json:
        _echo_json([_delivery_dict(delivery) for delivery in page.items])
        return
    for delivery in page.items:
        click.echo(_delivery_line(delivery))


# -- retry and recover --------------------------------------------------------------------------


class _Moment(click.ParamType[datetime, object]):
    """A point in time: ISO 8601 (``2026-11-30T10:00:00Z``; without a zone, UTC) or a
    duration before now (``6h``, ``2d``: the retry schedule's units)."""

    name = "TIME"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            ago = parse_duration(text, setting="", low=0.0, high=MAX_RETAIN_SECONDS)
        except SettingsError:
            pass
        else:
            return datetime.now(UTC) - timedelta(seconds=ago)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{text!r:.60} is not a time: write ISO 8601 (2026-11-30T10:00:00Z) or a "
                "duration before now (6h, 2d)",
                param,
                ctx,
            )
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _operating(state: _State, use: Callable[[Dispatcher], Awaitable[_T]]) -> _T:
    """Run ``use`` on a dispatcher that delivers nothing itself (the running service's worker
    takes what a command re-queues); ids name their tenant."""
    settings = state.settings()
    if settings.event_worker == "embedded":
        settings = settings.model_copy(update={"event_worker": "off"})

    async def call() -> _T:
        async with Dispatcher.from_settings(settings) as dispatcher:
            return await use(dispatcher)

    result: _T = _cli()._run(call)
    return result


@events.command("retry")
@click.argument("delivery_id")
@click.option("--json", "as_json", is_flag=True, help="Print the delivery as JSON.")
@click.pass_obj
def retry(state: _State, delivery_id: str, as_json: bool) -> None:
    """Make a new attempt of DELIVERY_ID now, whatever its status (exit 1 if it failed)."""

    async def attempt(d: Dispatcher) -> EventDelivery:
        tenant = await d.events.owner(delivery_id=delivery_id)
        outcome = None if tenant is None else await d.events.retry_delivery(tenant, delivery_id)
        if outcome is None:
            raise click.ClickException(f"no delivery {delivery_id!r:.80}")
        if outcome == "endpoint_disabled":
            raise click.ClickException(
                f"the endpoint of delivery {delivery_id} is disabled: enable it first"
            )
        if isinstance(outcome, str):
            raise click.ClickException(
                f"an attempt of delivery {delivery_id} is under way: try again when it is over"
            )
        return outcome

    delivery = _operating(state, attempt)
    last = delivery.attempts[-1] if delivery.attempts else None
    if as_json:
        _echo_json(_delivery_dict(delivery))
    elif last is not None:
        answer = f"HTTP {last.status}" if last.status is not None else last.detail
        later = delivery.next_attempt_at
        click.echo(
            f"delivery {delivery.id}: {delivery.status} (attempt {last.number}: {answer} "
            f"in {last.latency_ms:.0f} ms)"
            + (f"; next attempt {later:%Y-%m-%d %H:%M:%S} UTC" if later is not None else "")
        )
    if last is None or last.detail is not None:
        raise SystemExit(1)


@events.command("recover")
@click.argument("endpoint_id")
@click.option("--since", required=True, type=_Moment(), help="From (ISO 8601, or 6h / 2d ago).")
@click.option("--until", type=_Moment(), default=None, help="Up to, excluded (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
@click.pass_obj
def recover(
    state: _State, endpoint_id: str, since: datetime, until: datetime | None, as_json: bool
) -> None:
    """Re-queue ENDPOINT_ID's failed deliveries published in the range (10,000 at most a run;
    the service's worker delivers them)."""

    async def requeue(d: Dispatcher) -> RecoveryReport:
        tenant = await d.events.owner(endpoint_id=endpoint_id)
        outcome = (
            None
            if tenant is None
            else await d.events.recover(tenant, endpoint_id, since=since, until=until)
        )
        if outcome is None:
            raise click.ClickException(f"no event endpoint {endpoint_id!r:.80}")
        if isinstance(outcome, str):
            raise click.ClickException(f"event endpoint {endpoint_id} is disabled: enable it first")
        return outcome

    report = _operating(state, requeue)
    if as_json:
        _echo_json(
            {
                "endpoint_id": report.endpoint_id,
                "recovered": report.recovered,
                "more": report.more,
                "since": report.since,
                "until": report.until,
            }
        )
        return
    click.echo(f"re-queued {report.recovered} failed deliveries of {report.endpoint_id}")
    if report.more:
        click.echo(f"more are left (at most {report.limit} a run): run the same command again")
