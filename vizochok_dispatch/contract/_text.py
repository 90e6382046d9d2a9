"""Text that crosses the platform's boundary: valid Unicode, bounded in length.

One implementation serves the dispatcher (tenant replies and caller arguments) and the
receiver kit.  A Python ``str`` may hold a lone surrogate (JSON's ``"\\ud800"`` decodes to
one) that no UTF-8 writer can encode: such a string would make the chat, a log or the next
request fail, so it is refused where it enters.  The lengths are the platform's choice:

===============================  ==============  =======================================
field                            characters      also
===============================  ==============  =======================================
sku                              1 - 256         no control characters (U+0000-U+001F)
name                             0 - 512
unit                             0 - 32
promo_label                      0 - 200
reason (cart refusal)            1 - 200         not blank
store_id, session_id             1 - 256
===============================  ==============  =======================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, TypeGuard

from .._exceptions import InvalidCall

_CONTROL: Final = re.compile(r"[\x00-\x1f]")


@dataclass(frozen=True, slots=True)
class TextRule:
    """The bounds of one kind of text (lengths in characters, i.e. code points)."""

    min_chars: int
    max_chars: int
    controls: bool = True
    blank: bool = True


SKU: Final = TextRule(1, 256, controls=False)
NAME: Final = TextRule(0, 512)
UNIT: Final = TextRule(0, 32)
PROMO_LABEL: Final = TextRule(0, 200)
REASON: Final = TextRule(1, 200, blank=False)
STORE_ID: Final = TextRule(1, 256)
SESSION_ID: Final = TextRule(1, 256)

#: Distinct SKUs in one products request (docs/webhooks.md §4): the dispatcher refuses more
#: with ``InvalidCall``, the receiver kit with a 422.
MAX_SKUS: Final = 1000


def text_problem(value: object, rule: TextRule) -> str | None:
    """Why ``value`` is not text under ``rule``, or ``None``.

    The length is checked first, so the scans after it never read more than ``max_chars``.
    """
    if value is None:
        return "is missing"
    if not isinstance(value, str):
        return "is not a string"
    if len(value) < rule.min_chars:
        return "must not be empty"
    if len(value) > rule.max_chars:
        return f"must be at most {rule.max_chars} characters"
    if not rule.blank and not value.strip():
        return "must not be blank"
    if not rule.controls and _CONTROL.search(value):
        return "must not contain control characters"
    if not value.isascii() and not _encodes(value):
        return "is not valid Unicode (it holds a lone surrogate)"
    return None


def is_text(value: object, rule: TextRule) -> TypeGuard[str]:
    """Whether ``value`` is text under ``rule`` (:func:`text_problem` finds nothing)."""
    return text_problem(value, rule) is None


def checked_text(value: object, field: str, rule: TextRule) -> str:
    """A caller's text argument under ``rule``; else :class:`InvalidCall` naming ``field``."""
    if not is_text(value, rule):
        raise InvalidCall(f"{field} {text_problem(value, rule)}")
    return value


def _encodes(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(value: str, limit: int = 64) -> str:
    """A tenant's text quoted for a problem line: ``repr`` (which escapes surrogates and
    control characters), cut to ``limit`` characters of the original."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + f"... ({len(value)} characters)"


#: Problem lines kept per reply; the rest are counted in one last line.
MAX_PROBLEM_LINES: Final = 50


class ProblemLines:
    """The problem lines of one reply: the first ``limit`` kept, the others only counted."""

    __slots__ = ("_limit", "_lines", "_more")

    def __init__(self, limit: int = MAX_PROBLEM_LINES) -> None:
        self._limit = limit
        self._lines: list[str] = []
        self._more = 0

    def add(self, line: str) -> None:
        """Keep ``line``, or count it once ``limit`` lines are kept."""
        if len(self._lines) < self._limit:
            self._lines.append(line)
        else:
            self._more += 1

    def lines(self) -> tuple[str, ...]:
        """The kept lines, then ``"... N more problems not shown"`` if any were dropped."""
        if self._more:
            return (*self._lines, f"... {self._more} more problems not shown")
        return tuple(self._lines)
