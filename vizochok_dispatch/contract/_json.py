"""JSON with exact money: ``Decimal`` goes out as a JSON number and comes back as ``Decimal``.

The standard ``json`` module cannot write a ``Decimal`` as a number, and ``float`` would
round prices; this writer covers the flat bodies the contract defines.
"""

from __future__ import annotations

import gc
import json
from decimal import Decimal
from typing import Any

_STRING = json.JSONEncoder(ensure_ascii=False).encode
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# Integers are read as float: the C parser's speed, time linear in the literal's length
# (``int()`` is quadratic, and past ``sys.int_max_str_digits`` it raises), and exact for
# every integer the amount rules accept (all below 2**53); a longer one fails those rules.
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_int=float, parse_constant=Decimal)
#: ``format(d, "f")`` writes ``|exponent|`` digits; past this a Decimal is refused instead.
_MAX_DECIMAL_EXPONENT = 40


def dumps(value: object) -> bytes:
    """Compact UTF-8 JSON; ``Decimal`` is written in plain positional notation.

    Raises ``ValueError`` for what has no short, valid form: a non-finite or huge Decimal,
    or a string with a lone surrogate (``UnicodeEncodeError``).
    """
    try:
        return _COMPACT(value).encode("utf-8")  # the C encoder, for bodies without Decimal
    except TypeError:
        return _encode(value).encode("utf-8")


def _encode(value: object) -> str:
    if isinstance(value, str):
        return _STRING(value)
    if value is None or isinstance(value, bool):
        return "null" if value is None else ("true" if value else "false")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("a non-finite Decimal has no JSON form")
        if abs(value.adjusted()) > _MAX_DECIMAL_EXPONENT:
            raise ValueError("a Decimal this large or this small has no short JSON form")
        return format(value, "f")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_STRING(str(k))}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def loads(body: bytes) -> Any:  # noqa: ANN401 - JSON is any shape until validated
    """Parse UTF-8 JSON: integers as ``float``, other numbers (and NaN/Infinity) as ``Decimal``.

    Read numbers with ``_money.amount_problem`` and ``_money.as_amount``, which know this.
    Raises ``ValueError`` (or ``RecursionError`` for absurd nesting) when it is not JSON.
    """
    text = body.decode("utf-8")
    if not gc.isenabled():
        return _DECODER.decode(text)
    # Decoding makes no reference cycles, yet a body of many small arrays (1 MiB holds 350k)
    # sets off the cyclic collector again and again, each full pass walking the whole heap:
    # that tripled the decoding time.  Paused for the decode only (it never yields).
    gc.disable()
    try:
        return _DECODER.decode(text)
    finally:
        gc.enable()
