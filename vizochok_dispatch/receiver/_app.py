"""Starlette glue: the tenant endpoints around the tenant's callbacks.

Each request goes the same way, and stops at the first refusal with a JSON error body::

    read the raw body (413 past the cap) -> verify signature and timestamp (401)
    -> validate body or query (422) -> [cart: claim the delivery id (400, 409, or replay)]
    -> [events: claim the event id (400, 409, or replay: a duplicate is answered 200 again
       without calling on_event)]
    -> callback (503 on RetryLater, 500 on a crash) -> 200 with the contract's shape

Whatever fails on the way (a callback that raises, returns the wrong type or an answer that
cannot be encoded, an idempotency store that breaks) is answered with the JSON error body,
never a bare 500 page; and a claimed delivery id is always either completed or released, so
VIZOCHOK's retry runs normally instead of finding the id stuck "in progress".

The verifier and the models know nothing of Starlette; only this module does.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..contract import _json
from ..contract._events import Event, UnknownEvent
from ..contract._signing import DELIVERY_HEADER, WEBHOOK_SIGNATURE_HEADER
from . import _parse
from ._errors import VerificationError
from ._events import parse_event
from ._idempotency import IdempotencyStore, InMemoryIdempotencyStore, StoredResponse
from ._models import (
    CartLine,
    CartOperation,
    CartQuery,
    CartReply,
    Product,
    ProductsQuery,
    cart_items_body,
    products_body,
)
from ._standard import verify_standard_webhook
from ._verify import (
    DEFAULT_TOLERANCE_SECONDS,
    VerifiedRequest,
    normalise_secrets,
    verify_request,
)

ProductsHandler = Callable[[ProductsQuery], Awaitable[Iterable[Product]]]
CartHandler = Callable[[CartOperation], Awaitable[CartReply]]
LoadCartHandler = Callable[[CartQuery], Awaitable[Iterable[CartLine]]]
#: Called once per event id with the typed event; what it returns is ignored.
EventHandler = Callable[[Event | UnknownEvent], Awaitable[object]]
#: A secret, a list of secrets (current first), or a function read on every request so a
#: secret can be rolled in a running server.
SecretSource = str | Sequence[str] | Callable[[], str | Sequence[str]]

#: The paths the public docs use (seed 000).
DEFAULT_PRODUCTS_PATH: Final = "/api/vizochok/check-products"
DEFAULT_CART_PATH: Final = "/api/vizochok/cart"
DEFAULT_CART_ITEMS_PATH: Final = "/api/vizochok/cart/items"
DEFAULT_EVENTS_PATH: Final = "/api/vizochok/events"
#: How long the default store remembers an event id: the platform's retries and the
#: redelivery after a crash come well within a day (docs/webhooks.md §8).
EVENT_DEDUP_SECONDS: Final = 24 * 3600
EVENT_DEDUP_ENTRIES: Final = 100_000
DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
REPLAY_HEADER: Final = "Idempotent-Replay"

_DELIVERY_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}")
_log = structlog.get_logger("vizochok_dispatch.receiver")
_T = TypeVar("_T")


class RetryLater(Exception):
    """Raise from a callback to answer 503: VIZOCHOK retries once, with the same delivery id."""


class _Refusal(Exception):
    """An answer other than 200, with its JSON error body."""

    def __init__(self, status: int, code: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.extra = extra

    def response(self) -> Response:
        body = {"error": self.code, "message": str(self), **self.extra}
        return _json_response(self.status, _json.dumps(body))


def _json_response(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


@dataclass(frozen=True, slots=True)
class _Receiver:
    secret: SecretSource
    check_products: ProductsHandler | None
    cart_operation: CartHandler | None
    load_cart: LoadCartHandler | None
    on_event: EventHandler | None
    tolerance: float
    clock: Callable[[], float]
    idempotency: IdempotencyStore
    event_idempotency: IdempotencyStore
    max_body_bytes: int

    # -- the endpoints ---------------------------------------------------------------------

    async def products(self, request: Request) -> Response:
        """POST products_url (docs/webhooks.md §4)."""
        check_products = self.check_products
        if check_products is None:  # the route is only added with a callback
            return _Refusal(404, "not_found", "this receiver does not check products").response()

        async def handle() -> Response:
            body = await self._read_body(request)
            verified = self._verify(request, body)
            query = _parse.products_query(_parse.load_json(body), verified.delivery_id)
            products = await self._run(lambda: check_products(query), request, verified.delivery_id)
            return _json_response(
                200,
                _answer(
                    lambda: products_body(_all(products, Product, "check_products")),
                    "check_products",
                    request,
                    verified.delivery_id,
                ),
            )

        return await self._answering(request, handle)

    async def cart(self, request: Request) -> Response:
        """POST cart_url (docs/webhooks.md §5), idempotent per delivery id."""
        if self.cart_operation is None:  # the route is only added with a callback
            return _Refusal(404, "not_found", "this receiver does not change carts").response()

        async def handle() -> Response:
            body = await self._read_body(request)
            verified = self._verify(request, body)
            delivery_id = _required_delivery_id(verified)
            operation = _parse.cart_operation(_parse.load_json(body), delivery_id)
            return await self._cart_once(request, operation, delivery_id, body)

        return await self._answering(request, handle)

    async def cart_items(self, request: Request) -> Response:
        """GET cart_get_url (docs/webhooks.md §6), signed over the empty body."""
        load_cart = self.load_cart
        if load_cart is None:  # the route is only added with a callback
            return _Refusal(404, "not_found", "this receiver does not load carts").response()

        async def handle() -> Response:
            body = await self._read_body(request)
            verified = self._verify(request, body)
            query = _parse.cart_query(request.query_params.multi_items(), verified.delivery_id)
            lines = await self._run(lambda: load_cart(query), request, verified.delivery_id)
            return _json_response(
                200,
                _answer(
                    lambda: cart_items_body(_all(lines, CartLine, "load_cart")),
                    "load_cart",
                    request,
                    verified.delivery_id,
                ),
            )

        return await self._answering(request, handle)

    async def events(self, request: Request) -> Response:
        """POST the events URL (docs/webhooks.md §8): each event id handled once."""
        on_event = self.on_event
        if on_event is None:  # the route is only added with a callback
            return _Refusal(404, "not_found", "this receiver does not take events").response()

        async def handle() -> Response:
            body = await self._read_body(request)
            # An endpoint on the standard-webhooks scheme signs with webhook-* headers.
            standard = WEBHOOK_SIGNATURE_HEADER in request.headers
            verified = self._verify(request, body, standard=standard)
            event = _event_of(body, verified)
            return await self._event_once(request, on_event, event, body)

        return await self._answering(request, handle)

    async def _event_once(
        self, request: Request, on_event: EventHandler, event: Event | UnknownEvent, body: bytes
    ) -> Response:
        """Call ``on_event`` at most once per event id; a duplicate gets the first answer.

        The key is the body's ``id``, which the signature covers; the platform sends the same
        bytes on every attempt, so the fingerprint (path and body) matches on a duplicate.
        """
        fingerprint = _fingerprint(request.url.path, body)
        claim = await self.event_idempotency.claim(event.id, fingerprint)
        if claim.state == "replay" and claim.response is not None:
            _log.info("receiver.event_duplicate", path=request.url.path, event_id=event.id)
            stored = claim.response
            return _json_response(stored.status_code, stored.body, {REPLAY_HEADER: "true"})
        if claim.state == "conflict":
            raise _Refusal(
                409, "event_id_reused", "this event id was already received with another body"
            )
        if claim.state != "new":
            raise _Refusal(409, "delivery_in_progress", "this event is still being handled")
        try:
            await self._run(lambda: on_event(event), request, event.id)
            answer = StoredResponse(200, _json.dumps({"received": event.id}))
            await self.event_idempotency.complete(event.id, fingerprint, answer)
        except BaseException:
            await self._release_in(self.event_idempotency, request, event.id, fingerprint)
            raise
        return _json_response(answer.status_code, answer.body)

    # -- the shared steps ------------------------------------------------------------------

    async def _answering(
        self, request: Request, handle: Callable[[], Awaitable[Response]]
    ) -> Response:
        """One endpoint's steps; every refusal and failure becomes the documented JSON error."""
        try:
            return await handle()
        except _Refusal as refusal:
            return self._refused(request, refusal)
        except _parse.InvalidRequest as exc:
            return self._refused(request, _invalid(exc))
        except Exception as exc:
            return self._refused(request, _crashed(exc, request))

    async def _read_body(self, request: Request) -> bytes:
        """The raw body, refused past the cap before it is all in memory."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _Refusal(413, "body_too_large", f"body exceeds {self.max_body_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _Refusal(413, "body_too_large", f"body exceeds {self.max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _verify(self, request: Request, body: bytes, *, standard: bool = False) -> VerifiedRequest:
        try:
            secrets = normalise_secrets(self.secret() if callable(self.secret) else self.secret)
        except Exception as exc:
            # Only the type: a secret source's own message might quote what it read.
            _log.error(
                "receiver.misconfigured", path=request.url.path, error_type=type(exc).__name__
            )
            raise _Refusal(
                500, "receiver_misconfigured", "the receiver has no usable secret"
            ) from None
        try:
            verify = verify_standard_webhook if standard else verify_request
            verified = verify(
                request.headers, body, secrets, tolerance=self.tolerance, now=self.clock()
            )
        except VerificationError as exc:
            raise _Refusal(401, exc.code, str(exc)) from None
        if verified.secret_index > 0:
            _log.info(
                "receiver.older_secret_used",
                path=request.url.path,
                secret_index=verified.secret_index,
                delivery_id=verified.delivery_id,
            )
        return verified

    async def _run(
        self, call: Callable[[], Awaitable[_T]], request: Request, delivery_id: str | None
    ) -> _T:
        """Call and await a callback; its failures become 503 (retry) or 500, never a
        traceback page (calling is inside the guard too: a plain function may raise there)."""
        try:
            return await call()
        except RetryLater as exc:
            _log.info("receiver.retry_later", path=request.url.path, delivery_id=delivery_id)
            message = _sendable(str(exc)) or "temporarily unavailable"
            raise _Refusal(503, "retry_later", message) from None
        except Exception as exc:
            _log.exception(
                "receiver.callback_failed",
                path=request.url.path,
                delivery_id=delivery_id,
                error_type=type(exc).__name__,
            )
            raise _Refusal(500, "internal_error", "the tenant's handler failed") from None

    async def _cart_once(
        self, request: Request, operation: CartOperation, delivery_id: str, body: bytes
    ) -> Response:
        """Run ``operation`` at most once per delivery id, replaying its first answer."""
        fingerprint = _fingerprint(request.url.path, body)
        claim = await self.idempotency.claim(delivery_id, fingerprint)
        if claim.state == "replay" and claim.response is not None:
            _log.info("receiver.replayed", path=request.url.path, delivery_id=delivery_id)
            stored = claim.response
            return _json_response(stored.status_code, stored.body, {REPLAY_HEADER: "true"})
        if claim.state == "conflict":
            raise _Refusal(
                409, "delivery_id_reused", "this delivery id was already used for another body"
            )
        if claim.state != "new":
            raise _Refusal(409, "delivery_in_progress", "this delivery id is still being handled")
        cart_operation = self.cart_operation
        assert cart_operation is not None  # noqa: S101 - checked by ``cart``
        # From here every exit completes the claim or releases it (even a cancellation).
        try:
            reply = _cart_reply(
                await self._run(lambda: cart_operation(operation), request, delivery_id)
            )
            body = _answer(
                lambda: _json.dumps(reply.as_json()), "cart_operation", request, delivery_id
            )
            answer = StoredResponse(200, body)
            await self.idempotency.complete(delivery_id, fingerprint, answer)
        except BaseException:
            await self._release(request, delivery_id, fingerprint)
            raise
        return _json_response(answer.status_code, answer.body)

    async def _release(self, request: Request, delivery_id: str, fingerprint: str) -> None:
        await self._release_in(self.idempotency, request, delivery_id, fingerprint)

    async def _release_in(
        self, store: IdempotencyStore, request: Request, delivery_id: str, fingerprint: str
    ) -> None:
        """Give the claim back; a store that fails here is logged, not allowed to hide the
        original failure."""
        try:
            await store.release(delivery_id, fingerprint)
        except Exception as exc:
            _log.exception(
                "receiver.release_failed",
                path=request.url.path,
                delivery_id=delivery_id,
                error_type=type(exc).__name__,
            )

    def _refused(self, request: Request, refusal: _Refusal) -> Response:
        # The delivery id is unsigned input: logged only when it has the expected form.
        delivery_id = request.headers.get(DELIVERY_HEADER)
        if delivery_id is not None and not _DELIVERY_ID.fullmatch(delivery_id):
            delivery_id = "<malformed>"
        _log.warning(
            "receiver.refused",
            path=request.url.path,
            status=refusal.status,
            reason=refusal.code,
            delivery_id=delivery_id,
        )
        return refusal.response()


def _required_delivery_id(verified: VerifiedRequest) -> str:
    """A cart operation cannot be made idempotent without a well-formed delivery id."""
    delivery_id = verified.delivery_id
    if delivery_id is None or not _DELIVERY_ID.fullmatch(delivery_id):
        raise _Refusal(
            400,
            "missing_delivery_id",
            f"a cart operation needs one {DELIVERY_HEADER} header "
            "(letters, digits and ._:- only, at most 200)",
        )
    return delivery_id


def _event_of(body: bytes, verified: VerifiedRequest) -> Event | UnknownEvent:
    """The typed event; an ``X-VIZOCHOK-Delivery`` other than the body's id is refused (the
    body's id is signed, the header is not)."""
    event = parse_event(body)
    if verified.delivery_id is not None and verified.delivery_id != event.id:
        raise _Refusal(
            400,
            "delivery_id_mismatch",
            f"{DELIVERY_HEADER} must be the event's id (the body's signed id)",
        )
    return event


def _answer(
    encode: Callable[[], bytes], callback: str, request: Request, delivery_id: str | None
) -> bytes:
    """The callback's answer as the reply body; one that cannot be checked or encoded (a
    generator that raises, a value the models' checks missed) is a JSON 500."""
    try:
        return encode()
    except _Refusal:
        raise
    except Exception as exc:
        _log.exception(
            "receiver.answer_unencodable",
            path=request.url.path,
            delivery_id=delivery_id,
            callback=callback,
            error_type=type(exc).__name__,
        )
        raise _Refusal(
            500, "internal_error", f"{callback} returned an answer that cannot be sent"
        ) from None


def _sendable(message: str, limit: int = 200) -> str:
    """The tenant's own message for a reply body: cut to ``limit`` characters, and with what
    UTF-8 cannot carry (a lone surrogate) written as an escape."""
    return message[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


def _crashed(exc: Exception, request: Request) -> _Refusal:
    """Any other failure (e.g. the idempotency store): logged by type, a JSON 500."""
    _log.exception("receiver.failed", path=request.url.path, error_type=type(exc).__name__)
    return _Refusal(500, "internal_error", "the receiver failed")


def _cart_reply(reply: object) -> CartReply:
    if not isinstance(reply, CartReply):
        raise _Refusal(500, "internal_error", "cart_operation must return a CartReply")
    return reply


def _invalid(exc: _parse.InvalidRequest) -> _Refusal:
    fields = [{"field": e.field, "message": e.message} for e in exc.errors]
    return _Refusal(422, "invalid_request", str(exc), fields=fields)


def _all(values: Iterable[_T], kind: type[_T], callback: str) -> list[_T]:
    """The callback's result as a list, each value of ``kind``; anything else is a 500."""
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise _Refusal(500, "internal_error", f"{callback} must return a list of {kind.__name__}")
    items = list(values)
    if not all(isinstance(item, kind) for item in items):
        raise _Refusal(500, "internal_error", f"{callback} must return {kind.__name__} values")
    return items


def _fingerprint(path: str, body: bytes) -> str:
    """What makes two requests "the same operation": the endpoint and the exact body."""
    return hashlib.sha256(path.encode("utf-8") + b"\n" + body).hexdigest()


def receiver_routes(
    *,
    secret: SecretSource,
    check_products: ProductsHandler | None,
    cart_operation: CartHandler | None,
    load_cart: LoadCartHandler | None,
    on_event: EventHandler | None = None,
    products_path: str = DEFAULT_PRODUCTS_PATH,
    cart_path: str = DEFAULT_CART_PATH,
    cart_items_path: str = DEFAULT_CART_ITEMS_PATH,
    events_path: str = DEFAULT_EVENTS_PATH,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    clock: Callable[[], float] = time.time,
    idempotency: IdempotencyStore | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> list[BaseRoute]:
    """The webhook routes, to add to an existing Starlette or FastAPI app.

    A callback given as ``None`` serves no route: ``load_cart=None`` no cart GET (when
    ``cart_get_url`` is not configured), ``check_products=None, cart_operation=None`` for a
    receiver of events only.  ``on_event`` serves ``events_path``: it is called once per
    event id with the typed event (a duplicate is answered 200 again without calling it).
    ``idempotency`` keeps cart delivery ids and event ids (each with its own key); without
    it, carts get an in-memory store for 10 minutes and events one for 24 hours.
    ``clock`` gives the receiver's wall time in seconds (inject one in tests).
    """
    if check_products is None and cart_operation is None and on_event is None:
        raise ValueError("give at least one of check_products, cart_operation and on_event")
    if not callable(secret):
        normalise_secrets(secret)  # fail at start-up, not on the first request
    if max_body_bytes < 1:
        raise ValueError("max_body_bytes must be at least 1")
    if isinstance(tolerance, bool) or not 0 <= tolerance < math.inf:
        raise ValueError("tolerance must be a finite number of seconds, at least 0")
    receiver = _Receiver(
        secret=secret,
        check_products=check_products,
        cart_operation=cart_operation,
        load_cart=load_cart,
        on_event=on_event,
        tolerance=tolerance,
        clock=clock,
        idempotency=idempotency if idempotency is not None else InMemoryIdempotencyStore(),
        event_idempotency=(
            idempotency
            if idempotency is not None
            else InMemoryIdempotencyStore(
                ttl_seconds=EVENT_DEDUP_SECONDS, max_entries=EVENT_DEDUP_ENTRIES
            )
        ),
        max_body_bytes=max_body_bytes,
    )
    routes: list[BaseRoute] = []
    if check_products is not None:
        routes.append(Route(products_path, receiver.products, methods=["POST"]))
    if cart_operation is not None:
        routes.append(Route(cart_path, receiver.cart, methods=["POST"]))
    if load_cart is not None:
        routes.append(Route(cart_items_path, receiver.cart_items, methods=["GET"]))
    if on_event is not None:
        routes.append(Route(events_path, receiver.events, methods=["POST"]))
    return routes


def create_receiver_app(
    *,
    secret: SecretSource,
    check_products: ProductsHandler | None,
    cart_operation: CartHandler | None,
    load_cart: LoadCartHandler | None,
    on_event: EventHandler | None = None,
    products_path: str = DEFAULT_PRODUCTS_PATH,
    cart_path: str = DEFAULT_CART_PATH,
    cart_items_path: str = DEFAULT_CART_ITEMS_PATH,
    events_path: str = DEFAULT_EVENTS_PATH,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    clock: Callable[[], float] = time.time,
    idempotency: IdempotencyStore | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Starlette:
    """A ready ASGI app serving the endpoints (see :func:`receiver_routes`)."""
    return Starlette(
        routes=receiver_routes(
            secret=secret,
            check_products=check_products,
            cart_operation=cart_operation,
            load_cart=load_cart,
            on_event=on_event,
            products_path=products_path,
            cart_path=cart_path,
            cart_items_path=cart_items_path,
            events_path=events_path,
            tolerance=tolerance,
            clock=clock,
            idempotency=idempotency,
            max_body_bytes=max_body_bytes,
        )
    )
