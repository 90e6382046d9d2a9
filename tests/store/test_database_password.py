"""The database password never shows: settings' repr, str and dumps, store logs and errors."""

from __future__ import annotations

import secrets
import socket

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from vizochok_dispatch import Dispatcher, DispatchSettings, SqlConfigStore, StoreError

from .helpers import TENANT


@pytest.fixture
def password() -> str:
    return "Db-Pw-" + secrets.token_hex(8)


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _shows(password: str, *texts: object) -> bool:
    """Whether ``password`` is in any of ``texts`` (a bool, so a failure never prints it)."""
    return any(password in str(text) for text in texts)


@pytest.mark.parametrize(
    "template",
    [
        "postgresql+asyncpg://vizochok:{pw}@db.internal:5432/vizochok",
        "postgresql+asyncpg://vizochok@db.internal/vizochok?password={pw}&ssl=require",
    ],
)
def test_settings_repr_str_and_dumps_mask_the_password(template: str, password: str) -> None:
    """Settings: repr, str, model_dump and model_dump_json show *** for the password."""
    url = template.format(pw=password)
    settings = DispatchSettings(database_url=url, secret_keys=None)
    shown = [repr(settings), str(settings), settings.model_dump(), settings.model_dump_json()]
    assert not _shows(password, *shown), "the database password is in the settings' text"
    assert all("***" in str(text) and "db.internal" in str(text) for text in shown)
    assert settings.database_url == url  # the public attribute still connects


def test_settings_from_the_environment_mask_the_password(
    password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings: VIZOCHOK_DATABASE_URL read from the environment is masked the same way."""
    monkeypatch.setenv("VIZOCHOK_DATABASE_URL", f"postgresql+asyncpg://u:{password}@h/db")
    settings = DispatchSettings()
    assert not _shows(password, repr(settings), str(settings), settings.model_dump())
    assert password in settings.database_url


def test_a_refused_setting_does_not_echo_the_url(password: str) -> None:
    """Settings: a validation error beside a password URL does not carry the password."""
    with pytest.raises(ValidationError) as caught:
        DispatchSettings(
            database_url=f"postgresql+asyncpg://u:{password}@h/db",
            max_connections=0,
        )
    assert not _shows(password, caught.value, repr(caught.value))


async def test_store_failure_errors_and_logs_mask_the_password(password: str) -> None:
    """Store: an unreachable database fails the call; no error or log line has the password."""
    url = f"postgresql+asyncpg://vizochok:{password}@127.0.0.1:{_closed_port()}/vizochok"
    store = SqlConfigStore(url, auto_migrate=False)
    with capture_logs() as logs:
        dispatcher = Dispatcher(store, owns_store=True)  # not entered: the open would raise
        result = await dispatcher.check_products(TENANT, skus=["a"], store_id="s")
        await dispatcher.aclose()
        with pytest.raises(StoreError) as caught:
            await store.open()
    await store.close()
    assert result.failure == "store_error"
    assert [e["event"] for e in logs if e["event"] == "webhook.store_error"]
    assert not _shows(password, caught.value, store.url, *logs), "password in an error or log"
    assert "127.0.0.1" in store.url and "***" in store.url


@pytest.mark.postgres
async def test_store_open_logs_the_masked_url(postgres_url: str, password: str) -> None:
    """Store: opening logs config_store.opened with the URL, its password as ***."""
    url = make_url(postgres_url).set(password=password).render_as_string(hide_password=False)
    store = SqlConfigStore(url, auto_migrate=True)
    with capture_logs() as logs:
        await store.open()
    await store.close()
    opened = [e for e in logs if e["event"] == "config_store.opened"]
    assert len(opened) == 1 and "***" in opened[0]["store"]
    assert not _shows(password, *logs)


@pytest.mark.parametrize(
    "template",
    [
        "postgresql+asyncpg://u:{pw}@127.0.0.1:notaport/db",
        "nosuchdb://u:{pw}@127.0.0.1/db",
        "u:{pw}@127.0.0.1",
    ],
)
async def test_an_unusable_url_is_a_store_error_without_the_password(
    template: str, password: str
) -> None:
    """Store: a URL that does not parse or names no driver is StoreError, password not shown."""
    store = SqlConfigStore(template.format(pw=password))
    with pytest.raises(StoreError, match="is not usable") as caught:
        await store.open()
    await store.close()
    assert not _shows(password, caught.value, repr(caught.value), caught.value.__cause__)
