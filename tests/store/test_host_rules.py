"""Save-time URL rules beyond webhooks.md §1: hosts that can never be reached are refused, and one
InvalidConfig lists every rule every field breaks (on every store: memory, SQLite, PostgreSQL).
"""

from __future__ import annotations

import pytest

from vizochok_dispatch import ConfigStore, InvalidConfig
from vizochok_dispatch.tenants._config import url_problem, url_problems

from .helpers import TENANT, leaks, save_minimal

URL_FIELDS = ("products_url", "cart_url", "cart_get_url")


def _host(length: int) -> str:
    """A valid DNS name of exactly ``length`` characters, in labels of at most 63."""
    labels, left = [], length
    while left > 0:
        size = min(63, left if left <= 63 else 62)
        labels.append("a" * size)
        left -= size + 1
    host = ".".join(labels)
    assert len(host) == length, len(host)
    return host


# (id, url, words the message must contain): each breaks exactly one host rule
UNREACHABLE = [
    ("port-0", "https://shop.example:0/hooks", ("port 0",)),
    ("empty-label", "https://shop..example/hooks", ("empty label",)),
    ("leading-dot", "https://.shop.example/hooks", ("empty label",)),
    ("label-starts-with-dash", "https://-shop.example/hooks", ("'-'", "start or end")),
    ("label-ends-with-dash", "https://shop-.example/hooks", ("'-'", "start or end")),
    ("label-of-64", f"https://{'a' * 64}.example/hooks", ("63 characters",)),
    ("host-of-254", f"https://{_host(254)}/hooks", ("253 characters",)),
    ("percent-in-host", "https://sh%6Fp.example/hooks", ("letters, digits",)),
    ("all-digit-last-label", "https://10.0.0.256/hooks", ("all-digit",)),
]

REACHABLE = [
    ("label-of-63", f"https://{'a' * 63}.example/hooks"),
    ("host-of-253", f"https://{_host(253)}/hooks"),
    ("trailing-dot", "https://shop.example./hooks"),
    ("underscore", "https://_hooks.shop.example/p"),
    ("punycode", "https://xn--80ak6aa92e.example/p"),
    ("inner-dashes", "https://shop--a-1.example/p"),
    ("port-1", "https://shop.example:1/p"),
    ("ipv6-literal", "https://[2606:4700::1111]/p"),
]


@pytest.mark.parametrize("field", URL_FIELDS)
@pytest.mark.parametrize(
    ("url", "words"), [(u, w) for _, u, w in UNREACHABLE], ids=[i for i, _, _ in UNREACHABLE]
)
async def test_a_host_that_can_never_work_is_refused_on_its_field(
    store: ConfigStore, field: str, url: str, words: tuple[str, ...]
) -> None:
    """Host rules: port 0 and DNS-illegal names are refused naming the field and the rule."""
    before = await save_minimal(store)
    with pytest.raises(InvalidConfig) as caught:
        await store.save_config(TENANT, **{field: url})  # type: ignore[arg-type]
    assert [error.field for error in caught.value.errors] == [field]
    message = caught.value.errors[0].message
    assert all(word in message for word in words), message
    assert await store.get_config(TENANT) == before


@pytest.mark.parametrize("url", [u for _, u in REACHABLE], ids=[i for i, _ in REACHABLE])
async def test_a_host_at_the_limits_is_accepted(store: ConfigStore, url: str) -> None:
    """Host rules: 63-char labels, 253-char names, a trailing dot, `_` and xn-- are fine."""
    await save_minimal(store)
    saved = await store.save_config(TENANT, products_url=url)
    assert saved.products_url == url


async def test_one_error_lists_every_field_and_every_rule(store: ConfigStore) -> None:
    """Errors: one InvalidConfig names each broken field once, with every rule it breaks."""
    await save_minimal(store)
    with pytest.raises(InvalidConfig) as caught:
        await store.save_config(
            TENANT,
            products_url="http://u:Pw-Secret-9@shop..example:0/p#top",
            cart_url="https://-cart.example/c",
            timeout_seconds=60,
        )
    listed = [(error.field, error.message) for error in caught.value.errors]
    assert [field for field, _ in listed] == ["products_url", "cart_url", "timeout_seconds"]
    products = listed[0][1].split("; ")
    assert len(products) == 5, products  # scheme, user, fragment, port 0, empty label
    assert any("https://" in m for m in products)
    assert any("user or password" in m for m in products)
    assert any("#fragment" in m for m in products)
    assert any("port 0" in m for m in products)
    assert any("empty label" in m for m in products)
    assert not leaks("Pw-Secret-9", caught.value)


def test_the_per_call_check_keeps_its_contract_rules_only() -> None:
    """Per call: a URL stored before the host rules is judged by docs/webhooks.md §1 alone."""
    assert url_problem("https://shop..example/p", allow_http=False) is None
    assert url_problems("https://shop..example/p", allow_http=False) != []
    assert url_problem("http://shop.example/p", allow_http=False) is not None
