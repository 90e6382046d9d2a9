"""One error shape for every admin API error, and the handlers that produce it.

Every error body is ``{"error": {"code", "message", "fields"?}}``; ``fields`` (one entry per
broken field) appears on validation errors only.  Messages name fields and rules, never the
values sent: a rejected secret must not come back in a response or reach a log.  Every
authentication failure gets the very same 401 (:data:`UNAUTHORIZED_BODY`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Final

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from .._exceptions import FieldError, InvalidCall, InvalidConfig, StoreError
from ..tenants._pages import CURSOR_FIELD

_log = structlog.get_logger("vizochok_dispatch")

UNAUTHORIZED_MESSAGE: Final = "a valid API key is required: Authorization: Bearer sk_..."
UNAUTHORIZED_BODY: Final = {"error": {"code": "unauthorized", "message": UNAUTHORIZED_MESSAGE}}
UNAUTHORIZED_HEADERS: Final = {"WWW-Authenticate": "Bearer"}

_MAX_FIELD_NAME: Final = 100
_HTTP_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
_STATUS_CODES: Final = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class ApiError(Exception):
    """An error response the routes raise: status, stable code, message, optional fields."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = tuple(fields)
        self.headers = dict(headers or {})


def error_body(code: str, message: str, fields: Iterable[FieldError] = ()) -> dict[str, Any]:
    """The one error shape."""
    error: dict[str, Any] = {"code": code, "message": message}
    listed = [{"field": f.field, "message": f.message} for f in fields]
    if listed:
        error["fields"] = listed
    return {"error": error}


def error_response(error: ApiError) -> JSONResponse:
    """An :class:`ApiError` as its response."""
    return JSONResponse(
        error_body(error.code, error.message, error.fields),
        status_code=error.status,
        headers=error.headers,
    )


#: The 404s of event endpoints and deliveries: another tenant's are not found either, in the
#: same words whichever route looked.
ENDPOINT_NOT_FOUND: Final = "no such event endpoint for this API key's tenant"
DELIVERY_NOT_FOUND: Final = "no such delivery for this API key's tenant"


def unauthorized() -> ApiError:
    """The 401 every authentication failure gets, whatever the reason."""
    return ApiError(401, "unauthorized", UNAUTHORIZED_MESSAGE, headers=UNAUTHORIZED_HEADERS)


#: The 422's message; a write's adds ``; nothing was saved`` (:func:`said_for`).
INVALID_MESSAGE: Final = "the request has invalid fields"
_READS: Final = frozenset({"GET", "HEAD"})
#: Pydantic's errors for a time that is not an aware RFC 3339 one (a date alone included).
_TIME_ERRORS: Final = frozenset(
    {"timezone_aware", "datetime_type", "datetime_parsing", "datetime_from_date_parsing"}
)


def invalid(fields: Sequence[FieldError]) -> ApiError:
    """A 422 listing every broken field."""
    return ApiError(422, "validation_error", f"{INVALID_MESSAGE}; nothing was saved", fields=fields)


def said_for(request: Request, error: ApiError) -> ApiError:
    """``error`` in the words that fit the request: a read's 422 saves nothing to begin with."""
    if error.code == "validation_error" and request.method in _READS:
        return ApiError(
            error.status, error.code, INVALID_MESSAGE, fields=error.fields, headers=error.headers
        )
    return error


def invalid_argument(exc: InvalidCall) -> ApiError:
    """A service's :class:`InvalidCall` (its message starts with the argument's name) as the
    422 naming that field."""
    name, _, problem = str(exc).partition(" ")
    return invalid([FieldError(name, problem or "is invalid")])


def page_refusal(exc: InvalidCall, tenant_id: str) -> ApiError:
    """A log reader's :class:`InvalidCall` as its 422 (:func:`invalid_argument`); a refused
    cursor is also logged, since only a forged or damaged one is refused."""
    error = invalid_argument(exc)
    if error.fields and error.fields[0].field == CURSOR_FIELD:
        _log.info("admin.bad_cursor", tenant_id=tenant_id)
    return error


def not_configured(message: str) -> ApiError:
    """A 409: the operation needs a saved configuration first."""
    return ApiError(409, "not_configured", message)


def validation_fields(errors: Sequence[Mapping[str, Any]]) -> list[FieldError]:
    """Pydantic / FastAPI errors as field errors, in our words, without the input values."""
    fields: list[FieldError] = []
    for error in errors:
        kind = str(error.get("type", ""))
        # a query or path parameter is named as itself: limit, not query.limit
        location = [part for part in error.get("loc", ()) if part not in {"body", "query", "path"}]
        if kind == "json_invalid":
            reason = (error.get("ctx") or {}).get("error")
            text = f"is not valid JSON: {reason}" if reason else "is not valid JSON"
            fields.append(FieldError("body", text))
            continue
        if not location or kind in {"model_type", "model_attributes_type", "dict_type"}:
            name = _path(location) or "body"
            fields.append(FieldError(name, _message(kind, error, top=not location)))
            continue
        fields.append(FieldError(_path(location), _message(kind, error, top=False)))
    return fields


def _path(location: Sequence[object]) -> str:
    """A field's path as the API names it everywhere: ``event_types[1]``, ``a.b``."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{_field_name(part)}" if path else _field_name(part)
    return path


def _field_name(part: object) -> str:
    """A location part as printable UTF-8 text of bounded length (a key sent may be neither)."""
    text = str(part).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= _MAX_FIELD_NAME else text[: _MAX_FIELD_NAME - 1] + "…"


def _message(kind: str, error: Mapping[str, Any], *, top: bool) -> str:
    if top and kind in {"model_type", "model_attributes_type", "dict_type", "missing"}:
        return "must be a JSON object"
    if error.get("input", ...) is None:  # a type, literal or constraint error about a null
        return "must not be null"
    known = {
        "extra_forbidden": "is not a known field",
        "missing": "is required",
        "string_type": "must be a string",
        "string_unicode": "must be valid UTF-8 text",
        "float_type": "must be a number",
        "int_type": "must be an integer",
        "bool_type": "must be true or false",
        "list_type": "must be a list",
        "string_too_short": "is too short",
        "string_too_long": "is too long",
        "too_short": "has too few items",
        "too_long": "has too many items",
    }
    if kind in _TIME_ERRORS:
        return "must be an RFC 3339 time with a time zone, e.g. 2026-12-01T00:00:00Z"
    if kind in known:
        limit = (error.get("ctx") or {}).get("max_length") or (error.get("ctx") or {}).get(
            "min_length"
        )
        text = known[kind]
        return f"{text} (limit {limit})" if limit is not None and "too" in kind else text
    message = str(error.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ")
    if message.startswith("Input should "):  # "be ...", "have timezone info" ...
        message = "must " + message.removeprefix("Input should ")
    return message


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves at the request's path (for ``Allow``).

    A mount matches every method, so it says nothing here; the only mount, the docs'
    static files, serves GET and HEAD.
    """
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]

    def served(method: str) -> bool:
        probe = {**request.scope, "method": method}
        return any(route.matches(probe)[0] is Match.FULL for route in routes)

    return [method for method in _HTTP_METHODS if served(method)] or ["GET", "HEAD"]


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


#: ``(request, parsed body, fields already refused)`` -> the body's other field errors.
MoreFieldErrors = Callable[[Request, object, AbstractSet[str]], Awaitable[list[FieldError]]]


async def _none(_request: Request, _body: object, _refused: AbstractSet[str]) -> list[FieldError]:
    return []


def install_error_handlers(app: FastAPI, *, more_field_errors: MoreFieldErrors = _none) -> None:
    """Route every error the framework or the core raises into the one shape.

    ``more_field_errors`` adds the rules a body breaks beyond its JSON shape to a 422 about
    the shape, so one answer lists every broken field.
    """

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)  # noqa: S101 - registered for ApiError only
        return error_response(said_for(request, exc))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it only
        # Routes check the key before the body is parsed; this is the backstop for any
        # route that would not: a description of the body is for its tenant only.
        if getattr(request.state, "tenant", None) is None:
            return error_response(unauthorized())
        if exc.body is not None and not _is_json(request.headers.get("content-type")):
            return error_response(
                ApiError(415, "unsupported_media_type", "send the body as application/json")
            )
        fields = validation_fields(exc.errors())
        refused = {re.split(r"[.\[]", field.field, maxsplit=1)[0] for field in fields}
        fields += await more_field_errors(request, exc.body, refused)
        return error_response(said_for(request, invalid(fields)))

    async def on_invalid_config(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InvalidConfig)  # noqa: S101 - registered for it only
        return error_response(said_for(request, invalid(exc.errors)))

    async def on_store_error(request: Request, exc: Exception) -> JSONResponse:
        _log.error("admin.store_error", path=request.url.path, error=str(exc))
        return error_response(
            ApiError(503, "store_unavailable", "the configuration store is unavailable; retry")
        )

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for it only
        if exc.status_code == 401:
            return error_response(unauthorized())
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route on the path only.
            headers["Allow"] = ", ".join(allowed_methods(request))
        return error_response(ApiError(exc.status_code, code, message.lower(), headers=headers))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(InvalidConfig, on_invalid_config)
    app.add_exception_handler(StoreError, on_store_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
