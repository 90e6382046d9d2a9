"""docs/webhooks.md §1, row by row, on every store (memory, SQLite, PostgreSQL).

Each case first stores a valid config, then tries the change: a valid change is stored, an
invalid one raises ``InvalidConfig`` naming the field and leaves the stored config untouched.
"""

from __future__ import annotations

import math

import pytest

from vizochok_dispatch import (
    ConfigRules,
    ConfigStore,
    DispatchError,
    InvalidConfig,
    WebhookConfig,
)

from .helpers import (
    CART_GET_URL,
    CART_URL,
    OWN_SECRET,
    PRODUCTS_URL,
    TENANT,
    error_fields,
    leaks,
    save_minimal,
    secret_bytes,
)

URL_FIELDS = ("products_url", "cart_url", "cart_get_url")
HOST = "https://shop.example"


def _url_of_length(length: int) -> str:
    path = "/" + "p" * (length - len(HOST) - 1)
    url = HOST + path
    assert len(url) == length
    return url


# (id, value): accepted for every URL field (docs/webhooks.md §1: absolute https, ≤ 2048 chars)
VALID_URLS = [
    ("https", "https://shop.example/webhooks/products"),
    ("https-port-query", "https://shop.example:8443/hooks?tenant=1&v=2"),
    ("https-uppercase-scheme", "HTTPS://shop.example/hooks"),
    ("https-ip", "https://93.184.215.14/hooks"),
    ("exactly-2048-chars", _url_of_length(2048)),
]

# (id, value, allow_http): refused for every URL field
INVALID_URLS = [
    ("http-not-allowed", "http://shop.example/hooks"),
    ("user-and-password", "https://user:pa55word@shop.example/hooks"),
    ("user-only", "https://user@shop.example/hooks"),
    ("empty-password", "https://user:@shop.example/hooks"),
    ("2049-chars", _url_of_length(2049)),
    ("relative", "/webhooks/products"),
    ("no-scheme", "shop.example/hooks"),
    ("other-scheme", "ftp://shop.example/hooks"),
    ("javascript", "javascript:alert(1)"),
    ("no-host", "https:///hooks"),
    ("empty", ""),
    ("whitespace", " https://shop.example/hooks"),
    ("inner-space", "https://shop.example/my hooks"),
    ("control-char", "https://shop.example/ho\x00oks"),
    ("non-ascii", "https://shop.example/hööks"),
    ("bad-port", "https://shop.example:99999/hooks"),
    ("fragment", "https://shop.example/hooks#x"),
    ("not-a-string", 443),
]

VALID_TIMEOUTS = [0.1, 0.5, 1, 5.0, 12.25, 30, 30.0]
INVALID_TIMEOUTS = [
    pytest.param(0.09, id="below-0.1"),
    pytest.param(0, id="zero"),
    pytest.param(-1.0, id="negative"),
    pytest.param(30.01, id="above-30"),
    pytest.param(31, id="31"),
    pytest.param(True, id="bool-true"),
    pytest.param(False, id="bool-false"),
    pytest.param(math.nan, id="nan"),
    pytest.param(math.inf, id="inf"),
    pytest.param(-math.inf, id="minus-inf"),
    pytest.param("5", id="string"),
    pytest.param(None, id="none"),
]


async def _assert_refused(
    store: ConfigStore, before: WebhookConfig | None, fields: set[str], **change: object
) -> InvalidConfig:
    with pytest.raises(InvalidConfig) as caught:
        await store.save_config(TENANT, **change)  # type: ignore[arg-type]
    assert error_fields(caught.value) == fields
    assert all(problem.message for problem in caught.value.errors)
    assert await store.get_config(TENANT) == before, "a refused save changed the stored config"
    return caught.value


# -- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", URL_FIELDS)
@pytest.mark.parametrize("value", [v for _, v in VALID_URLS], ids=[i for i, _ in VALID_URLS])
async def test_valid_url_is_stored(store: ConfigStore, field: str, value: str) -> None:
    """§1 URLs: an absolute https:// URL up to 2048 characters is accepted and stored as given."""
    await save_minimal(store)
    saved = await store.save_config(TENANT, **{field: value})  # type: ignore[arg-type]
    assert getattr(saved, field) == value
    stored = await store.get_config(TENANT)
    assert stored is not None
    assert getattr(stored, field) == value


@pytest.mark.parametrize("field", URL_FIELDS)
@pytest.mark.parametrize("value", [v for _, v in INVALID_URLS], ids=[i for i, _ in INVALID_URLS])
async def test_invalid_url_is_refused_and_nothing_stored(
    store: ConfigStore, field: str, value: object
) -> None:
    """§1 URLs: non-https, user:password, > 2048 chars or malformed is refused field-by-field."""
    before = await save_minimal(store)
    await _assert_refused(store, before, {field}, **{field: value})


@pytest.mark.parametrize("field", URL_FIELDS)
@pytest.mark.parametrize("config_rules", [ConfigRules(allow_http=True)], ids=["allow_http"])
async def test_http_url_accepted_when_deployment_allows_it(store: ConfigStore, field: str) -> None:
    """§1 URLs: plain http:// is accepted only under ConfigRules(allow_http=True)."""
    await save_minimal(store)
    saved = await store.save_config(TENANT, **{field: "http://shop.example:8080/hooks"})  # type: ignore[arg-type]
    assert getattr(saved, field) == "http://shop.example:8080/hooks"


@pytest.mark.parametrize("config_rules", [ConfigRules(allow_http=True)], ids=["allow_http"])
@pytest.mark.parametrize(
    "value",
    ["http://user:pw@shop.example/hooks", "ftp://shop.example/hooks", "http://" + "h" * 2042],
    ids=["credentials", "other-scheme", "too-long"],
)
async def test_allow_http_relaxes_only_the_scheme(store: ConfigStore, value: str) -> None:
    """§1 URLs: allow_http lets http:// through but every other URL rule still holds."""
    before = await save_minimal(store)
    await _assert_refused(store, before, {"products_url"}, products_url=value)


async def test_url_password_never_appears_in_the_error(store: ConfigStore) -> None:
    """§1 errors: a refused URL's password is not repeated in the error."""
    before = await save_minimal(store)
    error = await _assert_refused(
        store, before, {"cart_url"}, cart_url="https://shop:Url-Pa55-Zq9@shop.example/cart"
    )
    assert not leaks("Url-Pa55-Zq9", error), "the URL's password is in the error text"


# -- timeout ----------------------------------------------------------------------------------


async def test_timeout_defaults_to_five_seconds(store: ConfigStore) -> None:
    """§1 timeout_seconds: a first save without it stores 5.0."""
    saved = await save_minimal(store)
    assert saved.timeout_seconds == 5.0
    assert isinstance(saved.timeout_seconds, float)
    stored = await store.get_config(TENANT)
    assert stored is not None
    assert stored.timeout_seconds == 5.0


@pytest.mark.parametrize("value", VALID_TIMEOUTS)
async def test_timeout_in_range_is_stored(store: ConfigStore, value: float) -> None:
    """§1 timeout_seconds: any number from 0.1 to 30 inclusive is stored exactly, as a float."""
    await save_minimal(store)
    await store.save_config(TENANT, timeout_seconds=value)
    stored = await store.get_config(TENANT)
    assert stored is not None
    assert stored.timeout_seconds == float(value)
    assert isinstance(stored.timeout_seconds, float)


@pytest.mark.parametrize("value", INVALID_TIMEOUTS)
async def test_timeout_out_of_range_or_not_a_number_is_refused(
    store: ConfigStore, value: object
) -> None:
    """§1 timeout_seconds: outside 0.1-30, bools, NaN, inf and non-numbers are refused."""
    before = await save_minimal(store)
    await _assert_refused(store, before, {"timeout_seconds"}, timeout_seconds=value)


async def test_invalid_timeout_on_first_save_stores_nothing(store: ConfigStore) -> None:
    """§1: a refused first save leaves the tenant without a config."""
    await _assert_refused(
        store,
        None,
        {"timeout_seconds"},
        products_url=PRODUCTS_URL,
        cart_url=CART_URL,
        timeout_seconds=0.0,
    )


# -- secret -----------------------------------------------------------------------------------


async def test_secret_generated_on_first_save(store: ConfigStore) -> None:
    """§1 secret: a first save without one generates whsec_ + at least 32 random bytes."""
    saved = await save_minimal(store)
    assert saved.secret.startswith("whsec_")
    assert secret_bytes(saved.secret) >= 32
    stored = await store.get_config(TENANT)
    assert stored is not None
    assert stored.secret == saved.secret


async def test_generated_secrets_differ_between_tenants(store: ConfigStore) -> None:
    """§1 secret: generated secrets are random, not derived from the tenant or shared."""
    first = await save_minimal(store, "tenant-a")
    second = await save_minimal(store, "tenant-b")
    assert first.secret != second.secret


async def test_secret_none_on_first_save_generates_one(store: ConfigStore) -> None:
    """§1 secret: an explicit secret=None on the first save also generates one."""
    saved = await store.save_config(
        TENANT, products_url=PRODUCTS_URL, cart_url=CART_URL, secret=None
    )
    assert saved.secret.startswith("whsec_")
    assert secret_bytes(saved.secret) >= 32


@pytest.mark.parametrize("length", [24, 25, 64, 256])
async def test_own_secret_of_24_chars_or_more_is_kept(store: ConfigStore, length: int) -> None:
    """§1 secret: a tenant's own secret of at least 24 characters is stored unchanged."""
    own = ("own-secret-" + "k" * length)[:length]
    saved = await store.save_config(
        TENANT, products_url=PRODUCTS_URL, cart_url=CART_URL, secret=own
    )
    assert saved.secret == own
    stored = await store.get_config(TENANT)
    assert stored is not None
    assert stored.secret == own


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("short-Secret-Val-23char", id="23-chars"),
        pytest.param("", id="empty"),
        pytest.param("k" * 257, id="over-256"),
        pytest.param("own-secret-with-a-\x00-control-character", id="control-char"),
        pytest.param("own-secret-with-a-lone-\ud800-surrogate", id="not-utf8"),
    ],
)
async def test_bad_own_secret_is_refused_without_echoing_it(store: ConfigStore, value: str) -> None:
    """§1 secret: an own secret under 24 chars (or unusable) is refused; the error omits it."""
    before = await save_minimal(store)
    error = await _assert_refused(store, before, {"secret"}, secret=value)
    if value:
        assert not leaks(value, error), "the rejected secret is in the error text"


async def test_rejected_secret_not_echoed_on_first_save(store: ConfigStore) -> None:
    """§1 secret: a refused first save with a short secret neither stores nor repeats it."""
    value = "Tiny-Secret-9f3"
    error = await _assert_refused(
        store, None, {"secret"}, products_url=PRODUCTS_URL, cart_url=CART_URL, secret=value
    )
    assert not leaks(value, error), "the rejected secret is in the error text"


async def test_secret_none_rotates(store: ConfigStore) -> None:
    """§1 secret rotation: secret=None replaces the secret and keeps every other field."""
    before = await store.save_config(
        TENANT,
        products_url=PRODUCTS_URL,
        cart_url=CART_URL,
        cart_get_url=CART_GET_URL,
        timeout_seconds=7.5,
    )
    rotated = await store.save_config(TENANT, secret=None)
    assert rotated.secret != before.secret
    assert rotated.secret.startswith("whsec_")
    assert secret_bytes(rotated.secret) >= 32
    assert rotated.version == before.version + 1
    stored = await store.get_config(TENANT)
    assert stored == rotated
    assert (stored.products_url, stored.cart_url, stored.cart_get_url, stored.timeout_seconds) == (
        PRODUCTS_URL,
        CART_URL,
        CART_GET_URL,
        7.5,
    )


async def test_rotate_to_own_secret_and_back_to_generated(store: ConfigStore) -> None:
    """§1 secret rotation: a tenant may switch to its own secret, then rotate to a generated one."""
    generated = await save_minimal(store)
    own = await store.save_config(TENANT, secret=OWN_SECRET)
    assert own.secret == OWN_SECRET
    again = await store.save_config(TENANT, secret=None)
    assert again.secret not in (OWN_SECRET, generated.secret)
    assert again.secret.startswith("whsec_")


async def test_secret_kept_when_not_given(store: ConfigStore) -> None:
    """§1 secret: a save that does not mention the secret keeps it."""
    first = await store.save_config(
        TENANT, products_url=PRODUCTS_URL, cart_url=CART_URL, secret=OWN_SECRET
    )
    later = await store.save_config(TENANT, timeout_seconds=2.0)
    assert later.secret == first.secret == OWN_SECRET


# -- the error itself -------------------------------------------------------------------------


async def test_every_broken_field_is_reported_at_once(store: ConfigStore) -> None:
    """§1 errors: one InvalidConfig lists each broken field, and nothing is stored."""
    before = await save_minimal(store)
    error = await _assert_refused(
        store,
        before,
        {"products_url", "cart_url", "cart_get_url", "timeout_seconds", "secret"},
        products_url="http://shop.example/p",
        cart_url="https://u:p@shop.example/c",
        cart_get_url="x" * 3000,
        timeout_seconds=math.nan,
        secret="Short-Secret-Abc",
    )
    assert isinstance(error, ValueError)
    assert isinstance(error, DispatchError)
    assert "products_url" in str(error)
    assert "timeout_seconds" in str(error)
    assert not leaks("Short-Secret-Abc", error), "the rejected secret is in the error text"


async def test_valid_fields_beside_an_invalid_one_are_not_stored(store: ConfigStore) -> None:
    """§1: a save is all or nothing; its valid fields are not stored when another is refused."""
    before = await save_minimal(store)
    await _assert_refused(
        store,
        before,
        {"timeout_seconds"},
        products_url="https://other.example/p",
        secret=OWN_SECRET,
        timeout_seconds=99,
    )


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(" " * 24, id="24-spaces"),
        pytest.param("\t" * 30, id="tabs"),
        pytest.param("own-secret with-a-space-inside", id="space-inside"),
        pytest.param("own-secret-with-a-trailing-space ", id="trailing-space"),
        pytest.param("own-secret-with-a-no-break\u00a0space", id="no-break-space"),
        pytest.param("own-secret-with-an-ideographic\u3000space", id="ideographic-space"),
        pytest.param("own-secret-with-a-line\u2028separator", id="line-separator"),
    ],
)
async def test_an_own_secret_with_whitespace_is_refused(store: ConfigStore, value: str) -> None:
    """§1 secret: a blank secret, or one holding any whitespace, is refused, the rule named."""
    before = await save_minimal(store)
    error = await _assert_refused(store, before, {"secret"}, secret=value)
    assert [(e.field, e.message) for e in error.errors] == [
        ("secret", "must not contain spaces or other whitespace")
    ]
