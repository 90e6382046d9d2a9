"""Per-tenant webhook configuration and its rules (docs/webhooks.md §1).

Both stores call :func:`merge_config`, so the SQL store and the in-memory one refuse exactly
the same inputs with exactly the same field errors.
"""

from __future__ import annotations

import enum
import math
import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final
from urllib.parse import SplitResult, urlsplit

from .._exceptions import FieldError, InvalidConfig
from ..http._destinations import DestinationPolicy, parse_host_address

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - a public prefix, not a secret
MIN_OWN_SECRET_CHARS: Final = 24
MAX_SECRET_CHARS: Final = 256
MAX_URL_CHARS: Final = 2048
MAX_TENANT_ID_CHARS: Final = 128
#: DNS limits (RFC 1035 §2.3.4): a name of at most 253 characters, 63 per label.
MAX_HOST_CHARS: Final = 253
MAX_LABEL_CHARS: Final = 63
_HOST_CHARS: Final = frozenset(string.ascii_lowercase + string.digits + "-_.")
DEFAULT_TIMEOUT_SECONDS: Final = 5.0
MIN_TIMEOUT_SECONDS: Final = 0.1
MAX_TIMEOUT_SECONDS: Final = 30.0


class Unset(enum.Enum):
    """Marks a keyword that was not passed: "keep what is stored"."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """One tenant's validated webhook configuration, as stored."""

    tenant_id: str
    products_url: str
    cart_url: str
    cart_get_url: str | None
    timeout_seconds: float
    #: The secret that signs every request (docs/webhooks.md §2).
    secret: str = field(repr=False)
    #: Increases by one on every save; caches compare it.
    version: int = 1
    updated_at: datetime | None = None
    #: A rolled secret that does not sign yet (docs/webhooks.md §7, "Rolling a secret"):
    #: it takes over when promoted, or by itself at ``pending_promotes_at``.
    pending_secret: str | None = field(default=None, repr=False)
    #: When the pending secret was rolled (UTC).
    pending_since: datetime | None = None
    #: When the pending secret signs by itself if nobody promotes it first (UTC).
    pending_promotes_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConfigRules:
    """Deployment-level rules that change what a valid config is."""

    allow_http: bool = False
    #: The SSRF guard: which hosts a URL may name (literal addresses, numeric tricks).
    destinations: DestinationPolicy = field(default_factory=DestinationPolicy)


def mask_secret(secret: str) -> str:
    """``whsec_…abcd``: enough to tell two secrets apart, not enough to use one."""
    prefix = SECRET_PREFIX if secret.startswith(SECRET_PREFIX) else ""
    return f"{prefix}…{secret[-4:]}"


def generate_secret() -> str:
    """A fresh ``whsec_`` secret carrying 32 random bytes."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def merge_config(
    tenant_id: str,
    existing: WebhookConfig | None,
    *,
    products_url: str | Unset,
    cart_url: str | Unset,
    cart_get_url: str | Unset | None,
    timeout_seconds: float | Unset,
    secret: str | Unset | None,
    rules: ConfigRules,
) -> WebhookConfig:
    """Apply a partial update to ``existing`` (or create), validating every field.

    ``UNSET`` keeps the stored value; a first save needs both required URLs.  A ``None``
    secret (or none stored yet) generates one.  Raises :class:`InvalidConfig` listing every
    broken field; the values themselves never appear in the error.
    """
    errors: list[FieldError] = []
    if (problem := _tenant_id_problem(tenant_id)) is not None:
        errors.append(FieldError("tenant_id", problem))

    def pick(given: object, stored_field: str) -> object:
        if given is not UNSET:
            return given
        return getattr(existing, stored_field) if existing is not None else None

    new_products = pick(products_url, "products_url")
    new_cart = pick(cart_url, "cart_url")
    new_cart_get = pick(cart_get_url, "cart_get_url")
    new_timeout = (
        timeout_seconds
        if timeout_seconds is not UNSET
        else (existing.timeout_seconds if existing else DEFAULT_TIMEOUT_SECONDS)
    )

    for name, value, required in (
        ("products_url", new_products, True),
        ("cart_url", new_cart, True),
        ("cart_get_url", new_cart_get, False),
    ):
        if value is None:
            if required:
                errors.append(FieldError(name, "is required"))
            continue
        problems = url_problems(value, allow_http=rules.allow_http)
        if not problems:
            problem = rules.destinations.url_problem(value)  # type: ignore[arg-type]
            problems = [] if problem is None else [problem]
        if problems:
            errors.append(FieldError(name, "; ".join(problems)))

    if (problem := _timeout_problem(new_timeout)) is not None:
        errors.append(FieldError("timeout_seconds", problem))

    keeps_secret = existing is not None and secret is UNSET
    if secret is UNSET or secret is None:
        new_secret = existing.secret if (existing and secret is UNSET) else generate_secret()
    else:
        new_secret = secret
        if (problem := secret_problem(secret)) is not None:
            errors.append(FieldError("secret", problem))

    if errors:
        raise InvalidConfig(errors)
    assert isinstance(new_products, str)  # noqa: S101 - narrowed by the checks above
    assert isinstance(new_cart, str)  # noqa: S101
    assert new_cart_get is None or isinstance(new_cart_get, str)  # noqa: S101
    assert isinstance(new_timeout, int | float)  # noqa: S101
    return WebhookConfig(
        tenant_id=tenant_id,
        products_url=new_products,
        cart_url=new_cart,
        cart_get_url=new_cart_get,
        timeout_seconds=float(new_timeout),
        secret=new_secret,
        version=(existing.version + 1) if existing else 1,
        updated_at=existing.updated_at if existing else None,
        # a new secret replaces at once (CONTRACT §7's rotate): a rolled one is dropped
        pending_secret=existing.pending_secret if existing and keeps_secret else None,
        pending_since=existing.pending_since if existing and keeps_secret else None,
        pending_promotes_at=existing.pending_promotes_at if existing and keeps_secret else None,
    )


def _tenant_id_problem(tenant_id: object) -> str | None:
    """Why ``tenant_id`` is no tenant's id, or ``None``: text of 1 to 128 characters, not
    blank, that encodes as UTF-8 and holds no control or other non-printable characters.
    The stores refuse to save any other id, and the dispatcher refuses to be called with
    one (``InvalidCall``), so such text never reaches a query or a log line."""
    if not isinstance(tenant_id, str) or not tenant_id.strip():
        return "must be a non-empty string"
    if len(tenant_id) > MAX_TENANT_ID_CHARS:
        return f"must be at most {MAX_TENANT_ID_CHARS} characters"
    if not tenant_id.isascii() and not _encodes(tenant_id):
        return "must be valid Unicode text (it holds a lone surrogate)"
    if not tenant_id.isprintable():
        return "must not contain control characters"
    return None


def _encodes(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def url_problem(value: object, *, allow_http: bool) -> str | None:
    """Why ``value`` is not an acceptable webhook URL, or ``None`` when it is.

    The per-call check (the dispatcher's): docs/webhooks.md §1's rules only, so a URL stored
    before the save-time rules of :func:`url_problems` (host names, the request target) keeps
    working as it did; one with dot segments or an empty ``?`` goes out in the normalised form
    ``http._wire.wire_url`` gives it (what the test-fire report's ``url`` shows).
    """
    problems = _url_problems(value, allow_http=allow_http, save_time=False)
    return problems[0] if problems else None


def url_problems(value: object, *, allow_http: bool) -> list[str]:
    """Every rule ``value`` breaks as a webhook URL, in a fixed order; empty when it is fine.

    The save-time check: docs/webhooks.md §1 (absolute ``https://``, no user or password, at most
    2048 characters) plus what makes a host impossible to reach: port 0, and a host name
    that breaks DNS syntax (RFC 1035 §2.3.4 lengths, RFC 1123 §2.1 labels); see
    :func:`host_name_problems`; and what would not go out byte for byte as saved (see
    :func:`target_problems`).  Messages name the rule, never the value.
    """
    return _url_problems(value, allow_http=allow_http, save_time=True)


#: Printable ASCII that RFC 3986 allows nowhere in a URI (§2: not reserved, not unreserved):
#: HTTP clients percent-encode some of them before sending (httpx: ``" < > { } `` and the
#: backquote), so what went out would not be what was saved.
_NOT_IN_A_URI: Final = frozenset('"<>\\^`{|}')


def target_problems(value: str) -> list[str]:
    """Why the request target of ``value`` would not go out exactly as written, or ``[]``.

    The request target (path and query) is sent byte for byte (docs/webhooks.md §1), so a
    URL whose target an HTTP client rewrites is refused rather than sent changed: ``.`` and
    ``..`` path segments (RFC 3986 §5.2.4 resolves them: ``/u/p/../q`` would go out as
    ``/u/q``), an empty query (``/u/p?`` would go out as ``/u/p``), and characters a URI may
    not hold (:data:`_NOT_IN_A_URI`, which would go out percent-encoded).
    """
    problems: list[str] = []
    if any(ch in _NOT_IN_A_URI for ch in value):
        problems.append(
            'must not contain " < > \\ ^ ` { | or } (characters a URL cannot carry; '
            "percent-encode them, e.g. %7B for {)"
        )
    before_query, question, query = value.partition("#")[0].partition("?")
    if any(segment in (".", "..") for segment in urlsplit(before_query).path.split("/")):
        problems.append(
            "must not contain '.' or '..' path segments (HTTP clients resolve them before "
            "sending, so another path would go out: write the path they lead to)"
        )
    if question and not query:
        problems.append(
            "must not end with an empty '?' (HTTP clients drop it before sending: remove it)"
        )
    return problems


def _url_problems(value: object, *, allow_http: bool, save_time: bool) -> list[str]:
    if not isinstance(value, str):
        return ["must be a string URL"]
    problems: list[str] = []
    if len(value) > MAX_URL_CHARS:
        problems.append(f"must be at most {MAX_URL_CHARS} characters")
    # Past these two, the parts of the URL cannot be judged (or even encoded).
    if not value or value != value.strip() or any(ch.isspace() for ch in value):
        return [*problems, "must not contain whitespace"]
    if not value.isprintable() or not value.isascii():
        return [
            *problems,
            "must be an ASCII URL without control characters (percent-encode the rest)",
        ]
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return [*problems, "is not a valid URL"]
    problems.extend(_part_problems(parts, allow_http=allow_http))
    if save_time:
        problems.extend(target_problems(value))
        if port == 0:
            problems.append("must not use port 0 (a port is 1 to 65535, or omitted for 443)")
        if parts.hostname:
            problems.extend(host_name_problems(parts.hostname))
    return problems


def _part_problems(parts: SplitResult, *, allow_http: bool) -> list[str]:
    problems: list[str] = []
    allowed = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in allowed:
        if parts.scheme == "http":
            problems.append("must use https:// (plain http:// is not allowed in this deployment)")
        else:
            problems.append("must be an absolute https:// URL")
    if not parts.hostname and parts.scheme:  # no scheme: "absolute" above already says it
        problems.append("must name a host")
    if parts.username is not None or parts.password is not None:
        problems.append("must not contain a user or password")
    if parts.fragment:
        problems.append("must not contain a #fragment")
    return problems


def host_name_problems(host: str) -> list[str]:
    """Why ``host`` can never be a reachable DNS name; empty when it can (or is an address).

    A name is dot-separated labels (one trailing dot allowed): at most 253 characters and
    63 per label (RFC 1035 §2.3.4); no empty label; letters, digits, ``-`` and ``_`` only,
    with no ``-`` at either end of a label (RFC 1123 §2.1; ``_`` appears in real service
    names); and the last label not all digits (RFC 3696 §2: it would be an IPv4 address).
    """
    if parse_host_address(host) is not None:
        return []  # an address; the SSRF policy judges it
    name = host.lower().removesuffix(".")
    labels = name.split(".")
    problems: list[str] = []
    if len(name) > MAX_HOST_CHARS:
        problems.append(f"host must be at most {MAX_HOST_CHARS} characters (the DNS limit)")
    if any(not label for label in labels):
        problems.append("host must not have an empty label (two dots in a row, or a leading dot)")
    if any(len(label) > MAX_LABEL_CHARS for label in labels):
        problems.append(
            f"each dot-separated part of the host must be at most {MAX_LABEL_CHARS} characters "
            "(the DNS limit)"
        )
    if any(label.startswith("-") or label.endswith("-") for label in labels):
        problems.append("no dot-separated part of the host may start or end with '-'")
    if any(ch not in _HOST_CHARS for ch in name):
        problems.append(
            "host may contain only letters, digits, '-', '_' and dots "
            "(write an international name in its xn-- form)"
        )
    if labels[-1].isdigit():
        problems.append(
            "host must not end in an all-digit part: it is neither an IPv4 address nor a name"
        )
    return problems


def _timeout_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number"
    if not math.isfinite(value) or not MIN_TIMEOUT_SECONDS <= value <= MAX_TIMEOUT_SECONDS:
        return f"must be between {MIN_TIMEOUT_SECONDS} and {MAX_TIMEOUT_SECONDS} seconds"
    return None


def secret_problem(value: object) -> str | None:
    """Why ``value`` cannot be a tenant's own secret, or ``None`` when it can.

    24 to 256 characters of UTF-8 text with no whitespace (so none is blank, and none loses
    or gains a space on its way through a config file or a shell) and no control or other
    non-printable characters (docs/webhooks.md §1).
    """
    if not isinstance(value, str):
        return "must be a string"
    if len(value) < MIN_OWN_SECRET_CHARS:
        return f"must be at least {MIN_OWN_SECRET_CHARS} characters"
    if len(value) > MAX_SECRET_CHARS:
        return f"must be at most {MAX_SECRET_CHARS} characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid UTF-8 text"
    if any(ch.isspace() for ch in value):
        return "must not contain spaces or other whitespace"
    if not value.isprintable():
        return "must not contain control characters"
    return None
