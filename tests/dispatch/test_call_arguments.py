"""Every argument a caller passes is checked before it is used (README, "Misuse raises").

The tenant id follows the stores' own rule (tenants/_config.py: 1-128 characters of
printable text that encodes as UTF-8), and ``deadline=`` is a finite number of seconds: any
other value raises ``InvalidCall`` naming the argument, before a lookup, a send or a log
line; so no tenant id can make a call raise anything else (a lone surrogate once raised
``UnicodeEncodeError`` from the log line of the ``not_configured`` failure).
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import respx
import structlog

from vizochok_dispatch import Dispatcher, InMemoryConfigStore, InvalidCall, InvalidConfig

Call = Callable[[Dispatcher, Any, Any], Awaitable[object]]

CALLS: dict[str, Call] = {
    "check_products": lambda d, t, dl: d.check_products(t, skus=["a"], store_id="s", deadline=dl),
    "check_products_no_skus": lambda d, t, dl: d.check_products(
        t, skus=[], store_id="s", deadline=dl
    ),
    "cart_add": lambda d, t, dl: d.cart_add(
        t, store_id="s", session_id="u", sku="a", name="n", quantity=1, price="1", deadline=dl
    ),
    "cart_remove": lambda d, t, dl: d.cart_remove(
        t, store_id="s", session_id="u", sku="a", deadline=dl
    ),
    "cart_update": lambda d, t, dl: d.cart_update(
        t, store_id="s", session_id="u", sku="a", quantity=2, deadline=dl
    ),
    "cart_clear": lambda d, t, dl: d.cart_clear(t, store_id="s", session_id="u", deadline=dl),
    "cart_operation_with_delivery": lambda d, t, dl: d.cart_operation_with_delivery(
        t, b'{"action":"clear","store_id":"s","session_id":"u"}', deadline=dl
    ),
    "load_cart": lambda d, t, dl: d.load_cart(t, store_id="s", session_id="u", deadline=dl),
}

BAD_TENANT_IDS: list[tuple[str, object, str]] = [
    ("lone-surrogate", "t\ud800", "tenant_id must be valid Unicode text"),
    ("lone-low-surrogate", "\udc80shop", "tenant_id must be valid Unicode text"),
    ("empty", "", "tenant_id must be a non-empty string"),
    ("blank", "   ", "tenant_id must be a non-empty string"),
    ("too-long", "t" * 129, "tenant_id must be at most 128 characters"),
    ("newline", "shop\nfake-log-line", "tenant_id must not contain control characters"),
    ("nul", "shop\x00", "tenant_id must not contain control characters"),
    ("not-a-string", 42, "tenant_id must be a non-empty string"),
    ("none", None, "tenant_id must be a non-empty string"),
]

BAD_DEADLINES: list[tuple[str, object]] = [
    ("string", "5"),
    ("boolean", True),
    ("nan", float("nan")),
    ("infinity", float("inf")),
    ("huge-int", 10**1000),
    ("huge-negative-int", -(10**1000)),
    ("over-a-day", 86_401.0),
    ("list", [1.0]),
]


@pytest.fixture
def strict_log() -> Iterator[io.StringIO]:
    """structlog printing to a strict UTF-8 stream, as a real console would."""
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)
    previous = structlog.get_config()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(stream))
    try:
        yield stream  # type: ignore[misc]
    finally:
        structlog.configure(**previous)


@pytest.mark.usefixtures("strict_log")
@pytest.mark.parametrize("call", CALLS, ids=str)
@pytest.mark.parametrize(
    ("case", "tenant_id", "message"), BAD_TENANT_IDS, ids=[c[0] for c in BAD_TENANT_IDS]
)
async def test_a_tenant_id_no_store_accepts_is_an_invalid_call(
    dispatcher: Dispatcher,
    router: respx.Router,
    call: str,
    case: str,
    tenant_id: object,
    message: str,
) -> None:
    """Calls: a tenant id outside the config rule raises InvalidCall naming tenant_id,
    before anything is looked up, sent or logged."""
    with structlog.testing.capture_logs() as logs, pytest.raises(InvalidCall) as caught:
        await CALLS[call](dispatcher, tenant_id, None)
    assert str(caught.value).startswith(message), case
    assert logs == []
    assert router.calls.call_count == 0


@pytest.mark.parametrize("call", CALLS, ids=str)
@pytest.mark.parametrize(("case", "deadline"), BAD_DEADLINES, ids=[c[0] for c in BAD_DEADLINES])
async def test_a_deadline_that_is_not_a_finite_number_is_an_invalid_call(
    dispatcher: Dispatcher, router: respx.Router, call: str, case: str, deadline: object
) -> None:
    """Calls: deadline= that is not a finite number of seconds (up to a day) raises
    InvalidCall naming deadline, never a TypeError or OverflowError."""
    with pytest.raises(InvalidCall, match=r"^deadline must be a") as caught:
        await CALLS[call](dispatcher, "t1", deadline)
    assert caught.value is not None, case
    assert router.calls.call_count == 0


@pytest.mark.parametrize("call", CALLS, ids=str)
async def test_every_valid_tenant_id_is_logged_on_a_strict_utf8_console(
    dispatcher: Dispatcher, strict_log: io.StringIO, call: str
) -> None:
    """Logs: a call for any tenant id the rule accepts (here: not configured, with
    non-ASCII text) logs its failure to a strict UTF-8 stream without raising."""
    result = await CALLS[call](dispatcher, "магазин-№1 🛒", 5.0)
    assert result is not None
    if call != "check_products_no_skus":  # no SKUs: nothing to look up or log
        assert "магазин-№1 🛒" in strict_log.buffer.getvalue().decode()  # type: ignore[attr-defined]


async def test_the_store_refuses_a_tenant_id_with_a_lone_surrogate() -> None:
    """Config rule: a tenant id with a lone surrogate is refused at save, naming why."""
    store = InMemoryConfigStore()
    with pytest.raises(InvalidConfig) as caught:
        await store.save_config(
            "t\ud800", products_url="https://shop.example/p", cart_url="https://shop.example/c"
        )
    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("tenant_id", "must be valid Unicode text (it holds a lone surrogate)")
    ]


@pytest.mark.parametrize("deadline", [0, 0.0, -1, 86_400, 0.05, 2])
async def test_a_finite_deadline_is_taken(dispatcher: Dispatcher, deadline: float) -> None:
    """Calls: a finite deadline up to a day is taken (0 or less: already spent, a timeout)."""
    result = await dispatcher.load_cart("nobody", store_id="s", session_id="u", deadline=deadline)
    assert result.failure == ("timeout" if deadline <= 0 else "not_configured")
