"""Deployment settings, read from ``VIZOCHOK_*`` environment variables.

Never a module-level instance: whoever builds a dispatcher builds (or passes) its settings,
so tests and several dispatchers in one process never share hidden state.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./vizochok.db"


class DispatchSettings(BaseSettings):
    """What a deployment may tune; every field has the contract's default."""

    model_config = SettingsConfigDict(
        env_prefix="VIZOCHOK_", extra="forbid", frozen=True, validate_default=True
    )

    database_url: str = DEFAULT_DATABASE_URL
    #: ``None``: migrate automatically on the embedded SQLite default only.
    auto_migrate: bool | None = None
    #: Accept plain ``http://`` webhook URLs (local development, loopback tests).
    allow_http: bool = False
    #: Cap on a webhook's response body; a larger one is ``invalid_response``.
    max_response_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    #: Connections kept open across all tenants by the default transport.
    max_connections: int = Field(default=512, ge=1, le=65536)
    #: Seconds a cached tenant config is served before it is read again: the bound on how
    #: long another process's save takes to reach this one (0 turns the cache off).
    config_cache_seconds: float = Field(default=5.0, ge=0, le=3600)
    #: Seconds an idle keep-alive connection is kept before it is closed.
    keepalive_seconds: float = Field(default=15.0, gt=0, le=600)

    def migrates_automatically(self) -> bool:
        """Whether the store should run migrations itself when it opens."""
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.database_url.startswith("sqlite")
