"""``vizochok-dispatch``: migrate, manage tenants and keys, rotate encryption keys, serve.

Settings come from the ``VIZOCHOK_*`` environment (``--database-url`` overrides the database).
API keys and encryption keys are printed once, when made, and never again; errors name what
to fix and never echo a key.  Exit status (:data:`EXIT_STATUS`): 0 done, 1 refused or failed
(one line on stderr), 2 usage error (click's own).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import click
import structlog
from pydantic import ValidationError

from ._exceptions import DispatchError, SchemaNotReady
from ._version import __version__
from .events._service import needs_postgres
from .http._transport import AiohttpTransport
from .tenants._crypto import KEYS_SETTING, new_key_line
from .tenants._pages import Page
from .tenants._sql_store import ReencryptReport, SqlConfigStore, safe_url
from .tenants._tenants import IssuedKey, TenantDirectory, unknown_tenant
from .webhooks._calllog import MAX_PAGE, CallLog
from .webhooks._calllog import WEBHOOKS as CALL_WEBHOOKS
from .webhooks._calllog_store import CallLogStore, LoggedCall
from .webhooks._conformance import (
    OWN_MACHINE,
    CheckOptions,
    CheckTarget,
    ConformanceReport,
    check_tenant,
    run_conformance,
)
from .webhooks._conformance import report_lines as check_report_lines
from .webhooks._delivery import Clock
from .webhooks._dispatcher import Dispatcher
from .webhooks._settings import DispatchSettings
from .webhooks._testfire import (
    SAMPLE_SKUS,
    TEST_STORE_ID,
    WEBHOOKS,
    FireReport,
    report_lines,
    run_test_fire,
)

_T = TypeVar("_T")

#: The ``--help`` epilog; README's "CLI exit codes" table says the same.
EXIT_STATUS = """\b
Exit status:
  0  done (--help and --version too)
  1  refused or failed: one line on stderr, "Error: ...", for an unknown
     tenant (every command that takes one: no tenant 'ID'), an unknown API
     key, invalid settings, a database that cannot be reached or opened, or
     secrets no configured key can read; test-fire: the webhook call failed
     (the report says why); interrupted (Ctrl-C: "Aborted!")
  2  usage error: unknown command or option, missing or invalid argument
"""


@dataclass(frozen=True, slots=True)
class _State:
    #: Kept out of the ``repr``: the URL may carry the database password.
    database_url: str | None = field(repr=False)

    def settings(self) -> DispatchSettings:
        overrides = {"database_url": self.database_url} if self.database_url else {}
        try:
            return DispatchSettings(**overrides)  # type: ignore[arg-type]  # validated here
        except ValidationError as exc:
            problems = "; ".join(
                f"VIZOCHOK_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
            )
            raise click.ClickException(f"invalid settings: {problems}") from None


def _run(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run one coroutine; package errors become a one-line message and exit status 1."""

    async def call() -> _T:
        return await make()

    try:
        return asyncio.run(call())
    except SchemaNotReady as exc:
        raise click.ClickException(f"{exc} (or run `vizochok-dispatch db upgrade`)") from None
    except DispatchError as exc:
        raise click.ClickException(str(exc)) from None


def _store(settings: DispatchSettings, *, secrets: bool) -> SqlConfigStore:
    """The store; ``secrets=True`` applies the production rule (keys required)."""
    box = settings.secret_box() if secrets or settings.secret_keys is not None else None
    return SqlConfigStore(
        settings.database_url,
        rules=settings.config_rules(),
        auto_migrate=settings.migrates_automatically(),
        secret_box=box,
        connect_timeout_seconds=settings.database_connect_timeout_seconds,
        statement_timeout_seconds=settings.database_statement_timeout_seconds,
    )


async def _with_directory(
    settings: DispatchSettings, use: Callable[[TenantDirectory], Awaitable[_T]]
) -> _T:
    store = _store(settings, secrets=False)
    try:
        return await use(TenantDirectory.for_store(store))
    finally:
        await store.close()


async def _require_tenant(dispatcher: Dispatcher, tenant_id: str) -> None:
    """Raise ``no tenant 'ID'`` unless the tenant is in the directory or has a config.

    A tenant of the admin API may have no config yet (its test-fire reports
    ``not_configured``), and an embedding application may store configs for tenants the
    directory does not list; only a tenant with neither is unknown.
    """
    if await dispatcher.store.get_config(tenant_id) is not None:
        return
    inner = dispatcher.store.inner
    directory = TenantDirectory.for_store(inner) if isinstance(inner, SqlConfigStore) else None
    if directory is not None and await directory.get_tenant(tenant_id) is None:
        raise unknown_tenant(tenant_id)


def _echo_json(document: object) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


def _show_key(issued: IssuedKey) -> None:
    click.echo(f"API key {issued.key_id}: {issued.key}")
    click.echo("Shown once: store it now (VIZOCHOK keeps only its hash). Send it as")
    click.echo("  Authorization: Bearer <the key>")


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_STATUS)
@click.option(
    "--database-url",
    metavar="URL",
    default=None,
    help="The config store (default: VIZOCHOK_DATABASE_URL, else ./vizochok.db).",
)
@click.version_option(__version__, prog_name="vizochok-dispatch")
@click.pass_context
def main(ctx: click.Context, database_url: str | None) -> None:
    """VIZOCHOK dispatch: the admin API and its tenants, keys and secrets."""
    ctx.obj = _State(database_url)
    # Logs go to stderr, so stdout stays clean for --json; the config is restored after.
    # Commands log warnings and errors only, so a refusal is the one line it says it is;
    # ``serve`` logs from info up, like any server.
    previous = structlog.get_config()
    structlog.configure(
        logger_factory=_stderr_logger,
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    ctx.call_on_close(lambda: structlog.configure(**previous))


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)  # looked up per call: follows redirection


# -- db ---------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(state: _State) -> None:
    """Migrate the database to the newest schema (safe to run on every deploy)."""
    settings = state.settings()

    async def upgrade() -> str | None:
        # the store's own upgrade: only the connection is bounded, and an unusable URL or an
        # unreachable database is a StoreError saying why (one line, exit 1)
        store = SqlConfigStore(
            settings.database_url,
            auto_migrate=False,
            connect_timeout_seconds=settings.database_connect_timeout_seconds,
        )
        try:
            return await store.upgrade()
        finally:
            await store.close()

    revision = _run(upgrade)
    click.echo(f"{safe_url(settings.database_url)} is at revision {revision} (head)")


# -- tenants ----------------------------------------------------------------------------------


@main.group()
def tenants() -> None:
    """Tenants of the admin API."""


@tenants.command("create")
@click.argument("name")
@click.option("--id", "tenant_id", default=None, help="The tenant id (default: generated).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
@click.pass_obj
def tenants_create(state: _State, name: str, tenant_id: str | None, as_json: bool) -> None:
    """Create tenant NAME and its first API key (printed once)."""
    settings = state.settings()
    tenant, issued = _run(
        lambda: _with_directory(settings, lambda d: d.create_tenant(name, tenant_id=tenant_id))
    )
    if as_json:
        _echo_json(
            {
                "tenant_id": tenant.id,
                "name": tenant.name,
                "key_id": issued.key_id,
                "api_key": issued.key,
            }
        )
        return
    click.echo(f"Created tenant {tenant.id} ({tenant.name})")
    _show_key(issued)


@tenants.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
@click.pass_obj
def tenants_list(state: _State, as_json: bool) -> None:
    """List the tenants."""
    settings = state.settings()
    found = _run(lambda: _with_directory(settings, lambda d: d.list_tenants()))
    if as_json:
        _echo_json([{"tenant_id": t.id, "name": t.name, "created_at": t.created_at} for t in found])
        return
    for tenant in found:
        click.echo(f"{tenant.id}\t{tenant.name}")


# -- keys -------------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Tenants' API keys."""


@keys.command("create")
@click.argument("tenant")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
@click.pass_obj
def keys_create(state: _State, tenant: str, as_json: bool) -> None:
    """Issue another API key for TENANT (printed once)."""
    settings = state.settings()
    issued = _run(lambda: _with_directory(settings, lambda d: d.create_key(tenant)))
    if as_json:
        _echo_json({"tenant_id": issued.tenant_id, "key_id": issued.key_id, "api_key": issued.key})
        return
    _show_key(issued)


@keys.command("revoke")
@click.argument("key_id")
@click.pass_obj
def keys_revoke(state: _State, key_id: str) -> None:
    """Revoke API key KEY_ID (``key_...``) at once."""
    settings = state.settings()
    info = _run(lambda: _with_directory(settings, lambda d: d.revoke_key(key_id)))
    click.echo(f"Revoked {info.key_id} of tenant {info.tenant_id}")


@keys.command("list")
@click.argument("tenant")
@click.pass_obj
def keys_list(state: _State, tenant: str) -> None:
    """List TENANT's keys by id (the keys themselves are not stored)."""
    settings = state.settings()
    found = _run(lambda: _with_directory(settings, lambda d: d.list_keys(tenant)))
    for info in found:
        status = "active" if info.active else f"revoked {info.revoked_at:%Y-%m-%d %H:%M}"
        click.echo(f"{info.key_id}\t{status}")


# -- secrets ----------------------------------------------------------------------------------


@main.group("secrets")
def secrets_group() -> None:
    """The keys that encrypt webhook secrets at rest."""


@secrets_group.command("generate-key")
@click.option("--id", "key_id", default=None, help="The key id (default: generated).")
def secrets_generate_key(key_id: str | None) -> None:
    """Print a new encryption key line for VIZOCHOK_SECRET_KEYS."""
    try:
        line = new_key_line(key_id)
    except DispatchError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(line)
    click.echo(
        f"Put it first in {KEYS_SETTING} (comma-separated, older keys after it), restart, then "
        "run `vizochok-dispatch secrets reencrypt`.",
        err=True,
    )


@secrets_group.command("reencrypt")
@click.pass_obj
def secrets_reencrypt(state: _State) -> None:
    """Re-encrypt every stored secret with the first key (after adding a new key)."""
    settings = state.settings()

    async def reencrypt() -> ReencryptReport:
        store = _store(settings, secrets=True)
        try:
            return await store.reencrypt_secrets()
        finally:
            await store.close()

    report = _run(reencrypt)
    click.echo(
        f"{report.total} secrets: {report.reencrypted} re-encrypted, {report.current} already "
        f"current, {len(report.unreadable)} unreadable"
    )
    if report.unreadable:
        raise click.ClickException(
            "unreadable (add their old key to "
            f"{KEYS_SETTING} and run again): {', '.join(report.unreadable)}"
        )


# -- serve and test-fire ----------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.pass_obj
def serve(state: _State, host: str, port: int) -> None:
    """Run the admin API under uvicorn."""
    settings = state.settings()
    try:
        import uvicorn  # noqa: PLC0415 - the ``server`` extra, needed by this command only

        from .admin import create_admin_app  # noqa: PLC0415 - imports FastAPI
    except ModuleNotFoundError as exc:
        raise click.ClickException(
            f"serving needs {exc.name}: pip install 'vizochok-dispatch[server]'"
        ) from None
    try:
        app = create_admin_app(settings)
    except DispatchError as exc:
        raise click.ClickException(str(exc)) from None

    async def check_store() -> None:
        # Open the store once before serving: a database that is down, unmigrated or whose
        # secrets no key reads is one line and exit 1 here, not a traceback from uvicorn.
        store = _store(settings, secrets=True)
        try:
            await store.open()
            if settings.event_worker == "procrastinate" and store.engine.dialect.name != (
                "postgresql"
            ):
                raise needs_postgres()  # docs/webhooks.md §10: refused, not served half-working
        finally:
            await store.close()

    _run(check_store)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    click.echo(f"Admin API on http://{host}:{port}  (OpenAPI docs: http://{host}:{port}/docs)")
    click.echo(f"Config store: {safe_url(settings.database_url)}")
    click.echo("Create a tenant and its API key: vizochok-dispatch tenants create NAME")
    try:
        uvicorn.run(app, host=host, port=port, log_level="info")
    except SystemExit as exc:
        if exc.code in (0, None):
            raise
        # uvicorn's own exit (3: the app did not start, e.g. the database went down since
        # the check above); its log already says why
        raise click.ClickException("the admin API stopped: see the log above") from None


@main.command()
@click.option(
    "--concurrency",
    type=click.IntRange(1, 10_000),
    default=None,
    help="Attempts this process makes at once (default: VIZOCHOK_EVENT_WORKER_CONCURRENCY).",
)
@click.pass_obj
def worker(state: _State, concurrency: int | None) -> None:
    """Deliver event webhooks from PostgreSQL until SIGTERM or Ctrl-C (run any number)."""
    settings = state.settings()
    if not settings.database_url.startswith("postgresql"):
        raise click.ClickException(
            "the worker needs PostgreSQL; on SQLite the embedded worker delivers events "
            "inside the process that publishes them (VIZOCHOK_EVENT_WORKER=embedded)"
        )
    settings = settings.model_copy(update={"event_worker": "procrastinate"})

    async def work() -> None:
        async with Dispatcher.from_settings(settings) as dispatcher:
            structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
            click.echo(
                f"Event worker on {safe_url(settings.database_url)}, "
                f"{concurrency or settings.event_worker_concurrency} at once; "
                "SIGTERM or Ctrl-C stops it after the attempts in flight",
                err=True,
            )
            await dispatcher.events.queue.run_worker(
                concurrency=concurrency or settings.event_worker_concurrency
            )

    _run(work)


@main.command("test-fire")
@click.argument("tenant")
@click.option("--webhook", type=click.Choice(WEBHOOKS), default="products", show_default=True)
@click.option(
    "--sku", "skus", multiple=True, help=f"A SKU to ask for (default: {', '.join(SAMPLE_SKUS)})."
)
@click.option("--store-id", default=TEST_STORE_ID, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def test_fire_command(  # noqa: PLR0917 - click passes every option positionally
    state: _State,
    tenant: str,
    webhook: str,
    skus: Sequence[str],
    store_id: str,
    as_json: bool,
) -> None:
    """Send TENANT's webhook one real, signed request and report it (exit 1 if it failed)."""
    settings = state.settings()

    async def fire() -> FireReport:
        async with Dispatcher.from_settings(settings) as dispatcher:
            await _require_tenant(dispatcher, tenant)
            return await run_test_fire(
                dispatcher,
                tenant,
                webhook=webhook,  # type: ignore[arg-type]  # click.Choice checked it
                skus=list(skus) or list(SAMPLE_SKUS),
                store_id=store_id,
            )

    report = _run(fire)
    if as_json:
        _echo_json(report.as_dict())
    else:
        for line in report_lines(report.as_dict()):
            click.echo(line)
    if not report.ok:
        raise SystemExit(1)


# -- the conformance check --------------------------------------------------------------------

#: Where ``check`` reads the secret when neither --secret-file nor --secret-env is given.
CHECK_SECRET_ENV = "VIZOCHOK_CHECK_SECRET"  # noqa: S105 - a variable's name, not a secret
#: With URLs given, the check runs on the caller's own machine: every address may be called.
_EVERY_NETWORK = "0.0.0.0/0,::/0"


def _check_secret(secret_file: Path | None, secret_env: str | None) -> str:
    """The signing secret from a file (one line) or an environment variable, never argv."""
    if secret_file is not None:
        try:
            secret = secret_file.read_text("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(
                f"cannot read it ({type(exc).__name__})", param_hint="--secret-file"
            ) from None
        where = f"--secret-file {secret_file}"
    else:
        name = secret_env or CHECK_SECRET_ENV
        secret = os.environ.get(name, "").strip()
        where = f"the environment variable {name}"
    if not secret:
        raise click.UsageError(
            f"no signing secret in {where}: give --secret-file PATH or --secret-env NAME "
            f"(default {CHECK_SECRET_ENV}); a secret is never taken on the command line, "
            "where it would land in the shell's history"
        )
    return secret


@main.command("check")
@click.option(
    "--tenant",
    default=None,
    help="Check this tenant's stored webhooks and event endpoints (the SSRF guard applies).",
)
@click.option("--products-url", default=None, help="The products webhook's URL (with --cart-url).")
@click.option("--cart-url", default=None, help="The cart webhook's URL.")
@click.option("--cart-get-url", default=None, help="The cart GET webhook's URL (optional).")
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A file holding the signing secret.",
)
@click.option(
    "--secret-env",
    metavar="NAME",
    default=None,
    help=f"An environment variable holding the signing secret (default {CHECK_SECRET_ENV}).",
)
@click.option(
    "--timeout",
    "timeout_seconds",
    type=click.FloatRange(0.1, 30.0),
    default=5.0,
    show_default=True,
    help="Seconds each request may take (with URLs).",
)
@click.option(
    "--sku",
    "skus",
    multiple=True,
    help=f"A SKU you sell; the first goes into test carts (default: {', '.join(SAMPLE_SKUS)}).",
)
@click.option(
    "--no-weight",
    is_flag=True,
    help="You do not sell by weight: skip the fractional-quantity check.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def check_command(  # noqa: PLR0917 - click passes every option positionally
    state: _State,
    tenant: str | None,
    products_url: str | None,
    cart_url: str | None,
    cart_get_url: str | None,
    secret_file: Path | None,
    secret_env: str | None,
    timeout_seconds: float,
    skus: Sequence[str],
    no_weight: bool,
    as_json: bool,
) -> None:
    """Run the webhook contract as checks against a tenant's backend (exit 1 if one fails).

    Either --tenant ID (its stored configuration, called as VIZOCHOK would, SSRF guard on),
    or --products-url and --cart-url (and --cart-get-url) with the secret from --secret-file
    or an environment variable: your own backend, on your own machine (localhost allowed).
    Sends only test data (store vizochok-test, sessions vizochok-test-...).
    """
    options = CheckOptions(skus=tuple(skus) or SAMPLE_SKUS, sells_by_weight=not no_weight)
    urls = (products_url, cart_url, cart_get_url)
    if tenant is not None:
        if any(url is not None for url in urls):
            raise click.UsageError("give --tenant or the URLs, not both")
        settings = state.settings()

        async def stored() -> ConformanceReport:
            async with Dispatcher.from_settings(settings) as dispatcher:
                await _require_tenant(dispatcher, tenant)
                report = await check_tenant(dispatcher, tenant, options)
            if report is None:
                raise click.ClickException(f"tenant {tenant!r} has no webhooks configured")
            return report

        report = _run(stored)
    else:
        if products_url is None or cart_url is None:
            raise click.UsageError("give --tenant ID, or --products-url and --cart-url")
        target = CheckTarget(
            products_url=products_url,
            cart_url=cart_url,
            cart_get_url=cart_get_url,
            secret=_check_secret(secret_file, secret_env),
            timeout_seconds=timeout_seconds,
        )

        async def own() -> ConformanceReport:
            transport = AiohttpTransport(allowed_networks=_EVERY_NETWORK)
            try:
                return await run_conformance(
                    target, send=transport.send_wire, where=OWN_MACHINE, options=options
                )
            finally:
                await transport.aclose()

        report = _run(own)
    document = report.as_dict()
    if as_json:
        _echo_json(document)
    else:
        for line in check_report_lines(document):
            click.echo(line)
    if not report.ok:
        raise SystemExit(1)


# -- the call log -----------------------------------------------------------------------------


@main.command("calls")
@click.argument("tenant")
@click.option("--failed", is_flag=True, help="Failed calls only (not the sampled successes).")
@click.option(
    "--webhook", type=click.Choice(CALL_WEBHOOKS), default=None, help="One webhook's calls."
)
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(1, MAX_PAGE),
    help="How many of the newest calls.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
@click.pass_obj
def calls_command(  # noqa: PLR0917 - click passes every option positionally
    state: _State, tenant: str, failed: bool, webhook: str | None, limit: int, as_json: bool
) -> None:
    """TENANT's call log, newest first: failed synchronous calls and a sample of the others."""
    settings = state.settings()

    async def read() -> Page[LoggedCall]:
        store = _store(settings, secrets=False)
        log = CallLog(CallLogStore(store), clock=Clock(), enabled=False)
        try:
            if tenant not in await store.versions():
                directory = TenantDirectory.for_store(store)
                if await directory.get_tenant(tenant) is None:
                    raise unknown_tenant(tenant)
            return await log.calls(
                tenant, outcome="failed" if failed else None, webhook=webhook, limit=limit
            )
        finally:
            await log.aclose()
            await store.close()

    page = _run(read)
    if as_json:
        _echo_json([call.as_dict() for call in page.items])
        return
    for call in page.items:
        click.echo(_call_line(call))
        for line in call.problems:
            click.echo(f"    problem: {line}")


def _call_line(call: LoggedCall) -> str:
    """One call on one line: time, webhook, outcome and detail, status, attempts, latency, id."""
    attempts = ", ".join(
        f"{a.status if a.status is not None else a.detail} in {a.elapsed_ms:g} ms"
        for a in call.attempts
    )
    return "  ".join(
        [
            f"{call.at:%Y-%m-%d %H:%M:%S}",
            call.webhook,
            call.detail or call.outcome,
            f"attempts: {attempts or 'none (nothing sent)'}",
            f"delivery {call.delivery_id or '-'}",
        ]
    )


# -- event webhooks (their own module; it uses the helpers above) -----------------------------

from ._events_cli import events  # noqa: E402 - imported once main and the helpers exist

main.add_command(events)
