"""Webhook secrets encrypted at rest: AES-256-GCM, bound to their tenant, with key rotation.

A stored secret reads ``v1.<key_id>.<base64url(nonce + ciphertext + tag)>``.  The tenant id is
the GCM associated data, so a ciphertext copied into another tenant's row does not decrypt
(it would otherwise let one tenant sign with another's secret).  A keyring holds several
keys: the first encrypts, all decrypt, so a deployment adds a new key in front, restarts,
re-encrypts (``vizochok-dispatch secrets reencrypt``) and only then drops the old key.

Values written before encryption existed (plain ``whsec_...`` text) are still read, and are
re-encrypted by the same command.  Only the store calls this module: a
:class:`~vizochok_dispatch.WebhookConfig` always holds the plaintext, in memory only.

The embedded SQLite default needs no settings: its key lives in a file beside the database
(mode 0600), created on first use with a warning.  Only a database with no encrypted secret
gets a new one: the store refuses to open a database whose secrets the key file cannot read
(missing, or holding other keys) rather than replace the key (``SqlConfigStore.open``).  A
production deployment must set ``VIZOCHOK_SECRET_KEYS`` instead (see
``DispatchSettings.secret_box``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._exceptions import SecretUnreadable, SettingsError

ENVELOPE_VERSION: Final = "v1"
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
#: What ``VIZOCHOK_SECRET_KEYS`` and the key file are called in messages.
KEYS_SETTING: Final = "VIZOCHOK_SECRET_KEYS"
KEY_FILE_SUFFIX: Final = ".keys"

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _bad_key_id(source: str) -> str:
    return (
        f"{source}: every entry must read key_id:base64key, the id 1-32 letters, digits, "
        "_ or - (the entry is not shown here)"
    )


_BAD_KEY_ID: Final = _bad_key_id(KEYS_SETTING)
_log = structlog.get_logger("vizochok_dispatch")


def _associated_data(tenant_id: str) -> bytes:
    return f"vizochok.webhook_secret.{ENVELOPE_VERSION}:{tenant_id}".encode()


def is_encrypted(stored: str) -> bool:
    """Whether a stored value is an envelope (``v1.<key_id>.<data>``) rather than plaintext."""
    parts = stored.split(".")
    return len(parts) == 3 and parts[0] == ENVELOPE_VERSION and bool(_KEY_ID.fullmatch(parts[1]))


@dataclass(frozen=True, slots=True)
class _Key:
    key_id: str
    aead: AESGCM


class SecretBox:
    """Encrypts and decrypts webhook secrets with a keyring; the first key encrypts.

    Its ``repr`` names the key ids only; the key bytes are never shown.
    """

    __slots__ = ("_keys", "_primary")

    def __init__(self, keys: Sequence[tuple[str, bytes]], *, source: str = KEYS_SETTING) -> None:
        """``source`` names where the keys came from in errors (the setting, or a key file)."""
        if not keys:
            raise SettingsError(f"{source} must name at least one key")
        ring: dict[str, _Key] = {}
        for key_id, key in keys:
            if not _KEY_ID.fullmatch(key_id):
                raise SettingsError(_bad_key_id(source))
            if key_id in ring:
                raise SettingsError(f"{source}: key id {key_id!r} appears twice")
            if len(key) != KEY_BYTES:
                raise SettingsError(
                    f"{source}: key {key_id!r} must be {KEY_BYTES} bytes (base64), not {len(key)}"
                )
            ring[key_id] = _Key(key_id, AESGCM(key))
        self._keys = ring
        self._primary = keys[0][0]

    @classmethod
    def from_keyring(cls, text: str, *, source: str = KEYS_SETTING) -> SecretBox:
        """Parse ``id:base64key`` entries separated by commas or lines (``#`` comments).

        ``source`` names the text in errors: ``VIZOCHOK_SECRET_KEYS``, or a key file.
        """
        entries: list[tuple[str, bytes]] = []
        for raw_line in text.splitlines():
            line = raw_line.split("#", 1)[0]
            for item in line.split(","):
                entry = item.strip()
                if not entry:
                    continue
                key_id, sep, encoded = entry.partition(":")
                if not sep:
                    raise SettingsError(
                        f"{source}: every entry must read key_id:base64key "
                        "(the key itself is not shown here)"
                    )
                key_id = key_id.strip()
                if not _KEY_ID.fullmatch(key_id):  # checked first: a misplaced key is not echoed
                    raise SettingsError(_bad_key_id(source))
                entries.append((key_id, _decode_key(key_id, encoded.strip(), source)))
        return cls(entries, source=source)

    @classmethod
    def generate(cls, key_id: str | None = None) -> tuple[SecretBox, str]:
        """A box with one fresh random key, and its keyring line (``id:base64key``)."""
        line = new_key_line(key_id)
        return cls.from_keyring(line), line

    @property
    def primary_key_id(self) -> str:
        """The id of the key new secrets are encrypted with."""
        return self._primary

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id this box can decrypt with, the encrypting one first."""
        return tuple(self._keys)

    def __repr__(self) -> str:
        return f"SecretBox(key_ids={list(self._keys)!r})"

    def encrypt(self, tenant_id: str, secret: str) -> str:
        """The envelope to store for ``secret`` in ``tenant_id``'s row."""
        key = self._keys[self._primary]
        nonce = os.urandom(NONCE_BYTES)
        sealed = key.aead.encrypt(nonce, secret.encode("utf-8"), _associated_data(tenant_id))
        data = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")
        return f"{ENVELOPE_VERSION}.{key.key_id}.{data}"

    def decrypt(self, tenant_id: str, stored: str) -> str:
        """The plaintext secret; plaintext written before encryption existed passes through.

        Raises :class:`SecretUnreadable` (naming the tenant and key id, never the value) when
        the key is not configured or the ciphertext does not belong to this tenant.
        """
        if not is_encrypted(stored):
            return stored
        _, key_id, data = stored.split(".")
        key = self._keys.get(key_id)
        if key is None:
            raise SecretUnreadable(
                f"the webhook secret of tenant {tenant_id!r} is encrypted with key {key_id!r}, "
                f"which is not configured (known: {', '.join(self._keys)}); add it to "
                f"{KEYS_SETTING}"
            )
        try:
            raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
            plain = key.aead.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(tenant_id)
            )
            return plain.decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error):
            raise SecretUnreadable(
                f"the webhook secret of tenant {tenant_id!r} does not decrypt with key "
                f"{key_id!r}: the key is wrong, or the value was copied from another row"
            ) from None

    def needs_reencryption(self, stored: str) -> bool:
        """Whether a stored value is plaintext or encrypted with a key other than the first."""
        return not is_encrypted(stored) or stored.split(".")[1] != self._primary


def new_key_line(key_id: str | None = None) -> str:
    """A fresh keyring entry, ``id:base64key`` (32 random bytes)."""
    chosen = key_id or f"k{secrets.token_hex(4)}"
    if not _KEY_ID.fullmatch(chosen):
        raise SettingsError(_BAD_KEY_ID)
    return f"{chosen}:{base64.b64encode(os.urandom(KEY_BYTES)).decode('ascii')}"


def _decode_key(key_id: str, encoded: str, source: str) -> bytes:
    try:
        standard = encoded.replace("-", "+").replace("_", "/")  # urlsafe accepted too
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(
            f"{source}: key {key_id!r} is not valid base64 (the key is not shown here)"
        ) from None


def key_file_for(database_path: Path) -> Path:
    """Where the embedded default keeps its key: ``<database file>.keys``, beside it."""
    return database_path.with_name(database_path.name + KEY_FILE_SUFFIX)


def key_file_kind(path: Path) -> str | None:
    """What is at ``path`` when it is there but is no regular file (``"a directory"``,
    ``"not a regular file"``: a socket, a device, a broken link); ``None`` when it is a
    file or nothing is there."""
    if path.is_file() or not (path.exists() or path.is_symlink()):
        return None
    if path.is_dir():
        return "a directory"
    return "not a regular file" if path.exists() else "a link to nothing"


def load_or_create_key_file(path: Path) -> SecretBox:
    """The keyring in ``path``, created (mode 0600, one fresh key) when it does not exist.

    The caller decides whether a missing file may be created: the store checks first that
    no stored secret is encrypted (a new key would make those unreadable).

    Creation is atomic (written aside, then hard-linked into place), so several processes
    opening a new database at once end up with one key.  Creating one logs a warning: this
    is the local-development default, and a production deployment sets
    ``VIZOCHOK_SECRET_KEYS`` instead.
    """
    if not path.exists():
        _create_key_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        _log.warning("secrets.key_file_readable", path=str(path), mode=oct(mode))
    source = f"the key file {path}"
    text = path.read_text(encoding="utf-8")
    if not any(line.split("#", 1)[0].replace(",", " ").strip() for line in text.splitlines()):
        raise SettingsError(
            f"{source} holds no key (only blank or comment lines): restore it from the "
            "database's backup; if no secret is stored yet, delete it and a new key is made"
        )
    return SecretBox.from_keyring(text, source=source)


def _create_key_file(path: Path) -> None:
    line = new_key_line(f"local-{secrets.token_hex(4)}")
    text = (
        "# vizochok-dispatch: the key that encrypts webhook secrets in the database beside\n"
        "# this file. Losing it makes those secrets unreadable (rotate them then). The first\n"
        "# key encrypts, every key decrypts: put a new key first, then run\n"
        "# `vizochok-dispatch secrets reencrypt`. Production uses VIZOCHOK_SECRET_KEYS instead.\n"
        f"{line}\n"
    )
    aside = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(aside, path)
        except FileExistsError:
            return  # another process won the race; its key is the one
        _log.warning(
            "secrets.key_file_created",
            path=str(path),
            advice=f"local development only; set {KEYS_SETTING} in production",
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(aside)
