"""Shared values for the store tests."""

from __future__ import annotations

import base64

from vizochok_dispatch import ConfigStore, InvalidConfig, WebhookConfig

PRODUCTS_URL = "https://shop.example/webhooks/products"
CART_URL = "https://shop.example/webhooks/cart"
CART_GET_URL = "https://shop.example/webhooks/cart/current"
OWN_SECRET = "tenant-own-secret-0123456789abcdef"  # 34 characters, well above the minimum
TENANT = "tenant-1"


async def save_minimal(store: ConfigStore, tenant_id: str = TENANT) -> WebhookConfig:
    """The smallest valid first save: both required URLs, everything else defaulted."""
    return await store.save_config(tenant_id, products_url=PRODUCTS_URL, cart_url=CART_URL)


def error_fields(error: InvalidConfig) -> set[str]:
    """The names of the fields an ``InvalidConfig`` complains about."""
    return {problem.field for problem in error.errors}


def secret_bytes(secret: str) -> int:
    """How many random bytes a generated ``whsec_`` secret carries."""
    body = secret.removeprefix("whsec_")
    return len(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def leaks(value: str, error: BaseException) -> bool:
    """Whether ``value`` shows up anywhere an error's text could reach a log.

    Checked as a plain bool so a failing assert never prints the value itself.
    """
    texts = [str(error), repr(error), *(str(arg) for arg in error.args)]
    if isinstance(error, InvalidConfig):
        texts += [str(problem) for problem in error.errors]
    cause = error.__cause__ or error.__context__
    while cause is not None:
        texts += [str(cause), repr(cause)]
        cause = cause.__cause__ or cause.__context__
    return any(value in text for text in texts)
