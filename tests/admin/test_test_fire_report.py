"""The test-fire report tells a developer what to do (issue 9, section 3): the URL even when
nothing was sent, why a destination is blocked and how to allow local work, a receiver's
refusal read from its answer with a hint, what kind of connection failure, the time limit,
when the next circuit probe goes, how large an unshown body was; and it always encodes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
import respx

from tests.support.dns import ScriptedResolver
from tests.support.fakes import FakeTime
from tests.support.loopback import Received, Reply, serve
from vizochok_dispatch import (
    ConfigRules,
    Dispatcher,
    DispatchSettings,
    InMemoryConfigStore,
    run_test_fire,
)
from vizochok_dispatch.http._destinations import DestinationPolicy, parse_networks
from vizochok_dispatch.receiver import VerificationError, verify_request
from vizochok_dispatch.webhooks._diagnostics import keeping_error_bodies
from vizochok_dispatch.webhooks._testfire import FireAttempt, FireReport

from .support import SHOP_A, TEST_FIRE, Admin, bearer

PRODUCTS = f"{SHOP_A}/vizochok/products"
SECRET = "whsec_the_current_secret_of_shop_a_0001"
STALE_SECRET = "whsec_a_secret_from_before_rotation_0002"
LOOPBACK = "127.0.0.0/8,::1/128"
HINT = "the secret in your receiver is not the current one"


def _refusal(request: httpx.Request) -> httpx.Response:
    """A receiver holding a stale secret: the receiver kit's own check and error body."""
    try:
        verify_request(
            headers=request.headers,
            body=request.content,
            secret=[STALE_SECRET],
            now=float(request.headers["X-VIZOCHOK-Timestamp"]),
        )
    except VerificationError as exc:
        return httpx.Response(401, json={"error": exc.code, "message": str(exc)})
    return httpx.Response(200, json={"products": []})


# -- through the admin API (respx) ------------------------------------------------------------


async def test_a_receivers_signature_mismatch_is_shown_with_a_hint(
    admin: Admin, router: respx.Router
) -> None:
    """Report: a 401 from a receiver with an old secret shows its body and the secret hint."""
    issued, _ = await admin.configured("shop-a", secret=SECRET)
    router.post(PRODUCTS).mock(side_effect=_refusal)
    report = (await admin.client.post(TEST_FIRE, headers=bearer(issued.key))).json()
    assert (report["status"], report["detail"]) == (401, "http_status")
    assert json.loads(report["response_body"])["error"] == "signature_mismatch"
    assert report["problems"][0].startswith("http_status: HTTP 401")
    assert any(
        line.startswith("the receiver answered signature_mismatch") and HINT in line
        for line in report["problems"]
    ), report["problems"]
    assert SECRET not in json.dumps(report)


@pytest.mark.parametrize(
    ("headers", "size"),
    [({"Content-Length": "10000"}, "10000 bytes"), ({}, "more than 4096 bytes")],
    ids=["declared", "streamed"],
)
async def test_a_body_over_the_cap_says_its_size_and_is_not_shown(
    admin: Admin, router: respx.Router, headers: dict[str, str], size: str
) -> None:
    """Report: a non-200 body over 4 KiB is not shown; its size (or "more than") is said."""
    issued, _ = await admin.configured("shop-a")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    content = b"x" * 10_000 if headers else chunks()
    router.post(PRODUCTS).mock(return_value=httpx.Response(403, headers=headers, content=content))
    report = (await admin.client.post(TEST_FIRE, headers=bearer(issued.key))).json()
    assert report["response_body"] is None
    assert f"the answer's body is {size}; a report shows at most 4096 bytes" in report["problems"]


async def test_a_small_error_body_is_shown_whole(admin: Admin, router: respx.Router) -> None:
    """Report: a non-200 body within 4 KiB is shown as text, replacing bytes that are not UTF-8."""
    issued, _ = await admin.configured("shop-a")
    router.post(PRODUCTS).mock(return_value=httpx.Response(404, content=b"no such route \xff"))
    report = (await admin.client.post(TEST_FIRE, headers=bearer(issued.key))).json()
    assert report["response_body"] == "no such route \ufffd"


async def test_a_timeout_says_the_limit(admin: Admin, router: respx.Router) -> None:
    """Report: a timeout names timeout_seconds and its configured value."""
    issued, _ = await admin.configured("shop-a", timeout_seconds=2.5)
    router.post(PRODUCTS).mock(side_effect=httpx.ReadTimeout("slow"))
    report = (await admin.client.post(TEST_FIRE, headers=bearer(issued.key))).json()
    assert report["detail"] == "timeout"
    assert report["problems"][0].startswith("timeout: no complete response within")
    assert "timeout_seconds (2.5 s)" in report["problems"][0]


async def test_an_open_circuit_names_the_url_and_when_the_next_probe_goes(
    admin: Admin, router: respx.Router
) -> None:
    """Report: circuit_open keeps the URL and says in how many seconds the next probe goes."""
    issued, _ = await admin.configured("shop-a")
    route = router.post(PRODUCTS).mock(return_value=httpx.Response(500))
    for _ in range(5):
        await admin.client.post(TEST_FIRE, headers=bearer(issued.key))
    admin.time.now += 4  # the circuit opened 1 s (the retry's delay) before this
    report = (await admin.client.post(TEST_FIRE, headers=bearer(issued.key))).json()
    assert report["detail"] == "circuit_open" and report["attempts"] == []
    assert report["url"] == PRODUCTS
    assert "the next probe goes in 11 s" in report["problems"][0], report["problems"]
    calls = route.call_count
    admin.time.now += 10
    report = (await admin.client.post(TEST_FIRE, headers=bearer(issued.key))).json()
    assert "the next probe goes in 1 s" in report["problems"][0], report["problems"]
    assert route.call_count == calls
    admin.time.now += 1
    report = (await admin.client.post(TEST_FIRE, headers=bearer(issued.key))).json()
    assert report["detail"] == "http_status", "the probe went when the report said"
    assert route.call_count > calls


@pytest.mark.parametrize(
    "reply",
    [
        b'{"products": [{"sku": "milk-001", "price": 10, "in_stock": true, '
        b'"promo_price": 5, "promo_label": "\\ud800 deal"}]}',
        b'{"products": [{"sku": "milk-001", "price": 1E+400, "in_stock": true}, '
        b'{"sku": "bread-042", "price": ' + b"9" * 5000 + b', "in_stock": true}]}',
        b'{"products": [{"sku": "\\udfff", "price": 1, "in_stock": true}]}',
    ],
    ids=["lone-surrogate-label", "enormous-numbers", "lone-surrogate-sku"],
)
async def test_a_hostile_reply_still_gets_a_200_report(
    admin: Admin, router: respx.Router, reply: bytes
) -> None:
    """Report: lone surrogates and enormous numbers in a reply give 200 and valid UTF-8 JSON."""
    issued, _ = await admin.configured("shop-a")
    router.post(PRODUCTS).mock(return_value=httpx.Response(200, content=reply))
    response = await admin.client.post(TEST_FIRE, headers=bearer(issued.key))
    assert response.status_code == 200, response.text
    response.content.decode("utf-8")  # strict: no surrogate made it onto the wire
    report = response.json()
    assert report["webhook"] == "products"
    assert {offer["sku"] for offer in report["result"]["available"]} <= {"milk-001", "bread-042"}


def test_the_report_encoder_never_fails_whatever_a_result_holds() -> None:
    """Report: as_dict turns surrogates, huge integers, NaN and deep nesting into JSON text."""
    deep: object = "bottom"
    for _ in range(50):
        deep = [deep]
    report = FireReport(
        webhook="products",
        url="https://shop.example/p",
        ok=False,
        status=500,
        latency_ms=1.0,
        detail="http_status",
        delivery_id="d",
        attempts=(FireAttempt(1, 500, 1.0, "http_status"),),
        result={
            "available": [{"sku": "\ud800", "price": Decimal("1E+100000000"), "n": 10**5000}],
            "unavailable": ["x" * 100_000, float("nan")],
            "deep": deep,
            "\udc80key": object(),
        },
        problems=("sku '\udfff' unknown",),
        response_body="\ud83d",
    )
    shown = report.as_dict()
    text = json.dumps(shown, ensure_ascii=False, allow_nan=False).encode("utf-8").decode()
    assert "\\ud800" in text and "\\udfff" in text
    offer = shown["result"]["available"][0]  # type: ignore[index]
    assert offer["price"] == "1E+100000000"
    assert "too large to show" in offer["n"]
    assert len(shown["result"]["unavailable"][0]) <= 8192  # type: ignore[index]


# -- library level: what is refused before anything is sent ----------------------------------


async def _dispatcher(store: InMemoryConfigStore, **options: object) -> Dispatcher:
    settings = DispatchSettings(**options.pop("settings", {}))  # type: ignore[arg-type]
    time = options.pop("time", None) or FakeTime()
    assert isinstance(time, FakeTime)
    dispatcher = Dispatcher(
        store,
        settings=settings,
        clock=time.clock,
        sleep=time.sleep,
        **options,  # type: ignore[arg-type]
    )
    await dispatcher.__aenter__()
    return dispatcher


async def _store(products_url: str, rules: ConfigRules) -> InMemoryConfigStore:
    store = InMemoryConfigStore(rules=rules)
    await store.save_config(
        "t1", products_url=products_url, cart_url=products_url, secret=SECRET, timeout_seconds=2
    )
    return store


async def test_a_url_refused_for_plain_http_says_how_to_allow_it() -> None:
    """Report: blocked_destination for http:// names the URL and VIZOCHOK_ALLOW_HTTP."""
    url = "http://shop.example/p"
    store = await _store(url, ConfigRules(allow_http=True))
    dispatcher = await _dispatcher(store, transport=httpx.MockTransport(_refusal))
    try:
        report = await run_test_fire(dispatcher, "t1")
    finally:
        await dispatcher.aclose()
    assert (report.detail, report.url, report.attempts) == ("blocked_destination", url, ())
    assert "https://" in report.problems[0]
    assert "VIZOCHOK_ALLOW_HTTP=true" in report.problems[0]


async def test_a_non_public_address_says_why_and_how_to_allow_local_work() -> None:
    """Report: blocked_destination for 127.0.0.1 names the address and VIZOCHOK_ALLOWED_NETWORKS."""
    url = "https://127.0.0.1:8443/p"
    allowed = DestinationPolicy(allowed_networks=parse_networks(LOOPBACK))
    store = await _store(url, ConfigRules(destinations=allowed))
    dispatcher = await _dispatcher(store, transport=httpx.MockTransport(_refusal))
    try:
        report = await run_test_fire(dispatcher, "t1")
    finally:
        await dispatcher.aclose()
    assert (report.detail, report.url) == ("blocked_destination", url)
    line = report.problems[0]
    assert "non-public address (127.0.0.1)" in line
    assert "VIZOCHOK_ALLOWED_NETWORKS" in line and "127.0.0.0/8" in line


async def test_a_name_resolving_inward_is_blocked_at_connect_and_said_so() -> None:
    """Report: a host that resolves to 127.0.0.1 at call time is blocked, and the report says so."""
    url = "https://inward.example/p"
    store = await _store(url, ConfigRules())
    dispatcher = await _dispatcher(store, resolver=ScriptedResolver("127.0.0.1"))
    try:
        report = await run_test_fire(dispatcher, "t1")
    finally:
        await dispatcher.aclose()
    assert (report.detail, report.url) == ("blocked_destination", url)
    assert "resolves to a non-public address" in report.problems[0]
    assert "VIZOCHOK_ALLOWED_NETWORKS" in report.problems[0]
    assert "127.0.0.1" not in report.problems[0], "the resolved address is not disclosed"


async def test_a_full_bulkhead_names_the_url_and_the_limit() -> None:
    """Report: bulkhead_full keeps the URL and names the in-flight limit and its setting."""
    url = "https://shop.example/p"
    store = await _store(url, ConfigRules())
    release = asyncio.Event()

    entered = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        entered.set()
        await release.wait()
        return httpx.Response(200, json={"products": []})

    dispatcher = await _dispatcher(
        store,
        transport=httpx.MockTransport(slow),
        settings={"max_in_flight_per_tenant": 1},
    )
    try:
        busy = asyncio.create_task(dispatcher.check_products("t1", skus=["a"], store_id="s"))
        await entered.wait()  # the first call holds the only slot
        report = await run_test_fire(dispatcher, "t1")
        release.set()
        await busy
    finally:
        await dispatcher.aclose()
    assert (report.detail, report.url) == ("bulkhead_full", url)
    assert "1 calls in flight" in report.problems[0]
    assert "VIZOCHOK_MAX_IN_FLIGHT_PER_TENANT" in report.problems[0]


async def test_an_open_circuit_whose_probe_is_in_flight_says_so() -> None:
    """Report: while the half-open probe is in flight, circuit_open says a probe is under way."""
    store = await _store("https://shop.example/p", ConfigRules())
    time = FakeTime()
    start = time.now
    entered, release = asyncio.Event(), asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        if time.now < start + 60:
            return httpx.Response(503)
        entered.set()
        await release.wait()
        return httpx.Response(200, json={"products": []})

    dispatcher = await _dispatcher(store, transport=httpx.MockTransport(answer), time=time)
    try:
        for _ in range(5):  # five 5xx deliveries open the circuit
            await dispatcher.check_products("t1", skus=["a"], store_id="s")
        time.now = start + 60  # past the cooldown: the next call is the probe
        probe = asyncio.create_task(dispatcher.check_products("t1", skus=["a"], store_id="s"))
        await entered.wait()
        report = await run_test_fire(dispatcher, "t1")
        release.set()
        await probe
    finally:
        await dispatcher.aclose()
    assert report.detail == "circuit_open"
    assert "a probe is under way" in report.problems[0], report.problems


async def test_production_calls_never_read_an_error_body() -> None:
    """Delivery: a non-200 body is kept only inside keeping_error_bodies (the test-fire)."""
    store = await _store("https://shop.example/p", ConfigRules())
    dispatcher = await _dispatcher(store, transport=httpx.MockTransport(_refusal))
    try:
        _, plain = await dispatcher.check_products_with_delivery("t1", skus=["a"], store_id="s")
        with keeping_error_bodies(4096):
            _, kept = await dispatcher.check_products_with_delivery("t1", skus=["a"], store_id="s")
    finally:
        await dispatcher.aclose()
    assert plain is not None and plain.status == 401 and plain.error_body is None
    assert kept is not None and kept.error_body is not None
    assert b"signature_mismatch" in (kept.error_body.data or b"")


# -- a real server on 127.0.0.1 (the default aiohttp transport, and httpx's) -----------------


@contextlib.asynccontextmanager
async def _loopback_dispatcher(url: str, **options: object) -> AsyncIterator[Dispatcher]:
    allowed = DestinationPolicy(allowed_networks=parse_networks(LOOPBACK))
    store = await _store(url, ConfigRules(allow_http=True, destinations=allowed))
    settings = {"allow_http": True, "allowed_networks": LOOPBACK}
    dispatcher = await _dispatcher(store, settings=settings, **options)
    try:
        yield dispatcher
    finally:
        await dispatcher.aclose()


async def _refusing_receiver(request: Received, reply: Reply) -> None:
    try:
        verify_request(
            headers=request.headers,
            body=request.body,
            secret=[STALE_SECRET],
            now=float(request.headers["x-vizochok-timestamp"]),
        )
    except VerificationError as exc:
        await reply.json({"error": exc.code, "message": str(exc)}, status=401)
        return
    await reply.json({"products": []})


@pytest.mark.loopback
async def test_signature_mismatch_over_a_real_socket() -> None:
    """Loopback: the receiver's signature_mismatch body arrives through the real transport."""
    async with (
        serve(_refusing_receiver) as server,
        _loopback_dispatcher(server.url("/p")) as dispatcher,
    ):
        report = await run_test_fire(dispatcher, "t1")
    assert report.status == 401
    assert any(HINT in line for line in report.problems), report.problems


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _reset(request: Received, reply: Reply) -> None:
    reply.reset()


async def _not_http(request: Received, reply: Reply) -> None:
    await reply.raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    reply.close()


@pytest.mark.loopback
@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_connect_error_says_refused(transport: str) -> None:
    """Loopback: a closed port is `connection refused`, on either transport."""
    options = {} if transport == "aiohttp" else {"transport": httpx.AsyncHTTPTransport()}
    url = f"http://127.0.0.1:{_closed_port()}/p"
    async with _loopback_dispatcher(url, **options) as dispatcher:
        report = await run_test_fire(dispatcher, "t1")
    assert report.detail == "connect_error"
    assert report.problems[0] == (
        "connect_error: could not connect: connection refused "
        "(nothing accepts connections on that host and port)"
    )
    assert report.attempts[0].reason is not None


@pytest.mark.loopback
@pytest.mark.parametrize(
    ("handler", "words"),
    [(_reset, "connection reset"), (_not_http, "not valid HTTP")],
    ids=["reset", "not-http"],
)
async def test_connect_error_says_reset_or_not_http(handler: object, words: str) -> None:
    """Loopback: a reset, and an answer that is not HTTP, are each named."""
    async with serve(handler) as server, _loopback_dispatcher(server.url("/p")) as dispatcher:  # type: ignore[arg-type]
        report = await run_test_fire(dispatcher, "t1")
    assert report.detail == "connect_error"
    assert words in report.problems[0], report.problems


@pytest.mark.loopback
async def test_connect_error_says_tls() -> None:
    """Loopback: https:// to a port that answers in plain text is a TLS handshake failure."""

    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with _loopback_dispatcher(f"https://127.0.0.1:{port}/p") as dispatcher:
            report = await run_test_fire(dispatcher, "t1")
    finally:
        server.close()
        await server.wait_closed()
    assert report.detail == "connect_error"
    assert "TLS handshake failed" in report.problems[0], report.problems


async def test_connect_error_says_dns() -> None:
    """Report: a name that does not resolve is a DNS failure (injected resolver, no network)."""
    async with _loopback_dispatcher(
        "http://nowhere.example/p", resolver=ScriptedResolver(None)
    ) as dispatcher:
        report = await run_test_fire(dispatcher, "t1")
    assert report.detail == "connect_error"
    assert "did not resolve (DNS)" in report.problems[0], report.problems


@pytest.mark.loopback
async def test_running_out_of_time_reading_an_error_body_keeps_the_status() -> None:
    """Loopback: a 503 whose body stalls is still http_status (and retried), as in production."""

    async def stall(request: Received, reply: Reply) -> None:
        await reply.head_only(503, content_length=100)
        await asyncio.Event().wait()

    async with serve(stall) as server, _loopback_dispatcher(server.url("/p")) as dispatcher:
        await dispatcher.store.save_config("t1", timeout_seconds=0.2)
        report = await run_test_fire(dispatcher, "t1")
    assert (report.detail, report.status) == ("http_status", 503)
    assert [a.detail for a in report.attempts] == ["http_status", "http_status"]
    assert report.response_body is None
