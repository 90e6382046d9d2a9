"""Reading a request body as JSON so that every problem becomes a field-level 422.

Starlette's ``Request.json()`` raises on bodies the admin API must still answer field by
field: an integer of more than 4300 digits (Python's int-parsing limit), bytes that are not
UTF-8, nesting deep enough to exhaust the recursion limit.  FastAPI turns those into a bare
400.  :func:`parse_json_body` instead either returns a value the models can judge field by
field, or raises :class:`json.JSONDecodeError` (FastAPI's ``json_invalid`` error on ``body``)
with a message that says what broke and where.  It runs only after the API key is checked
(:class:`~vizochok_dispatch.admin._deps.AuthenticatedRoute`).
"""

from __future__ import annotations

import json
from typing import Any, Final, NoReturn

from starlette.requests import Request

#: No admin API field takes a number anywhere near this long; a longer integer is read as a
#: float (``inf`` past 1e308), which every numeric field's range check then refuses.
MAX_INT_DIGITS: Final = 64


def _read_int(text: str) -> int | float:
    return int(text) if len(text) <= MAX_INT_DIGITS else float(text)


def _refuse_constant(name: str) -> NoReturn:
    # Python's json accepts NaN and Infinity; RFC 8259 does not.
    raise ValueError(f"{name} is not a JSON number")


_DECODER: Final = json.JSONDecoder(parse_int=_read_int, parse_constant=_refuse_constant)


def parse_json_body(raw: bytes) -> Any:  # noqa: ANN401 - any JSON value
    """``raw`` as a JSON value, or :class:`json.JSONDecodeError` saying what broke and where.

    Bytes that are not UTF-8 are kept as lone surrogates (``surrogateescape``) inside their
    strings, so the field that holds them is named by validation (no model accepts a lone
    surrogate) instead of the whole body being refused.
    """
    text = raw.decode("utf-8", "surrogateescape")
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise _located(exc.msg, text, exc.pos) from None
    except RecursionError:
        raise json.JSONDecodeError("it is nested too deeply", text, 0) from None
    except ValueError as exc:
        raise json.JSONDecodeError(str(exc), text, 0) from None


def _located(message: str, text: str, pos: int) -> json.JSONDecodeError:
    line = text.count("\n", 0, pos) + 1
    column = pos - text.rfind("\n", 0, pos)
    first = message[:1].lower() + message[1:]
    return json.JSONDecodeError(f"{first} at line {line}, column {column}", text, pos)


class AdminRequest(Request):
    """A request whose ``json()`` is :func:`parse_json_body` (FastAPI reads bodies with it)."""

    _admin_json: Any

    async def json(self) -> Any:  # noqa: ANN401 - any JSON value
        """The body as JSON; raises :class:`json.JSONDecodeError` only."""
        if not hasattr(self, "_admin_json"):
            self._admin_json = parse_json_body(await self.body())
        return self._admin_json
