"""Ids of endpoints, events and deliveries: a prefix, then 26 letters and digits.

The 26 characters are 128 bits in Crockford's base32 (lower case): 48 bits of milliseconds
since 1970, then 80 random bits (as ULID), so ids sort by creation time to the millisecond
and never collide in practice.
"""

from __future__ import annotations

import os
from typing import Final

from ..contract._events import EVENT_ID_PREFIX

ENDPOINT_PREFIX: Final = "ep_"
EVENT_PREFIX: Final = EVENT_ID_PREFIX
DELIVERY_PREFIX: Final = "dlv_"
_ALPHABET: Final = "0123456789abcdefghjkmnpqrstvwxyz"
_CHARS: Final = 26


def new_id(prefix: str, wall_seconds: float) -> str:
    """``prefix`` then a time-ordered random id (see the module docstring)."""
    millis = int(wall_seconds * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(_CHARS):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return prefix + "".join(reversed(chars))
