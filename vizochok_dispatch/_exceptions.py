"""The package's exceptions.

Dispatch failures never raise: they cross the public boundary as frozen values with a
machine-readable ``detail`` (see ``_results``).  What does raise is misuse and bad input::

    DispatchError                      base of everything raised here
    ├── InvalidConfig (ValueError)     a webhook config broke webhooks.md §1; ``errors`` per field
    ├── InvalidCall (ValueError)       a dispatch call got arguments it cannot send
    │   └── NoPendingSecret             a promote found no rolled secret waiting to sign
    ├── SettingsError (ValueError)     the deployment's settings cannot run (e.g. production
    │                                  without ``VIZOCHOK_SECRET_KEYS``, a malformed key)
    ├── TenantError                    the tenant directory refused an admin operation
    │   ├── TenantExists               a tenant with that id is already there
    │   └── UnknownTenant (LookupError) no tenant (or API key) with that id
    └── StoreError                     the config store cannot serve
        ├── SchemaNotReady             the database is not migrated to the code's revision
        └── SecretUnreadable           a stored webhook secret cannot be decrypted with the
                                       configured keys (key missing, or row copied elsewhere)

``InvalidConfig`` never carries the rejected values, and no error carries a secret, an API key
or an encryption key: a secret must not reach a log through an error message.
"""

from __future__ import annotations

from dataclasses import dataclass


class DispatchError(Exception):
    """Base of every exception this package raises."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One rule one field broke, without the value that broke it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidConfig(DispatchError, ValueError):
    """A configuration was refused (a webhook's, an event endpoint's, or a setting's);
    nothing was stored.  ``what`` names it at the head of the message."""

    def __init__(
        self, errors: list[FieldError] | tuple[FieldError, ...], *, what: str = "webhook config"
    ) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__(f"invalid {what}: " + "; ".join(map(str, self.errors)))


class InvalidCall(DispatchError, ValueError):
    """A dispatch method got arguments that no tenant could be sent."""


class NoPendingSecret(InvalidCall):
    """A promote found no pending secret: none was rolled, a rotate dropped it, or it was
    promoted already (by hand, or by itself when its overlap ended)."""


class StoreError(DispatchError):
    """The config store failed to serve a request."""


class SchemaNotReady(StoreError):
    """The database schema is not at the revision this code needs."""


class SecretUnreadable(StoreError):
    """A stored webhook secret cannot be decrypted: its key is not configured, or the
    ciphertext does not belong to this tenant's row."""


class SettingsError(DispatchError, ValueError):
    """The deployment's settings cannot be used as they are; the message says what to set."""


class TenantError(DispatchError):
    """The tenant directory refused an operation."""


class TenantExists(TenantError):
    """A tenant with that id already exists."""


class UnknownTenant(TenantError, LookupError):
    """No tenant (or API key) with that id."""
