"""JSON with exact money: ``Decimal`` goes out as a JSON number and comes back as ``Decimal``.

The standard ``json`` module cannot write a ``Decimal`` as a number, and ``float`` would
round prices; this writer covers the flat bodies the contract defines.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

_STRING = json.JSONEncoder(ensure_ascii=False).encode
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=Decimal)


def dumps(value: object) -> bytes:
    """Compact UTF-8 JSON; ``Decimal`` is written in plain positional notation."""
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
        return format(value, "f")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_STRING(str(k))}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def loads(body: bytes) -> Any:  # noqa: ANN401 - JSON is any shape until validated
    """Parse UTF-8 JSON with every non-integer number (and NaN/Infinity) as ``Decimal``."""
    return _DECODER.decode(body.decode("utf-8"))
