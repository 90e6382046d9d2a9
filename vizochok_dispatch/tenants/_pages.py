"""Keyset pagination for logs read newest first: an opaque cursor on (created time, id).

A log (event deliveries, calls) is read newest first, ordered by ``(created_at, id)``
descending; a page ends with a *cursor* naming its last row, and the next page is the rows
strictly before it in that order.  Unlike an offset, this stays correct while new rows
arrive: they sort before the first page and never shift the pages after it, so nothing is
shown twice or skipped.  With an index on ``(<filter columns>, created_at, id)`` each page
is one index range scan, however deep it is.

The cursor is opaque to clients (URL-safe base64 of a small versioned JSON array); what it
encodes is a position, not a permission, so the caller's own filters (the tenant's above
all) still apply to every page.  A cursor that is not one this module wrote is
:class:`InvalidCall` naming ``cursor``.

Reused by every log: build the query with :func:`newest_first` and :func:`before`, fetch
``limit + 1`` rows, and let :func:`page_of` cut the page and write its cursor.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Generic, TypeVar

from sqlalchemy import ColumnElement, bindparam, tuple_
from sqlalchemy.sql.elements import UnaryExpression

from .._exceptions import InvalidCall

_T = TypeVar("_T")

#: The field name every error about a cursor names.
CURSOR_FIELD: Final = "cursor"
#: A cursor longer than this is refused unread (an id is at most 64 characters).
MAX_CURSOR_CHARS: Final = 400
_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in a newest-first log: the last row shown, by creation time and id."""

    created_at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class Page(Generic[_T]):
    """One page of a log, newest first.

    ``next_cursor`` reads the page after this one; ``None`` when this is the last page.
    """

    items: tuple[_T, ...]
    next_cursor: str | None = None


def encode_cursor(created_at: datetime, row_id: str) -> str:
    """The opaque cursor for the position just after the row ``(created_at, row_id)``."""
    if created_at.tzinfo is None:
        raise ValueError("a cursor's time must be timezone-aware")
    stamp = created_at.astimezone(UTC).isoformat(timespec="microseconds")
    raw = json.dumps([_VERSION, stamp, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: object) -> Cursor:
    """The position ``cursor`` names; :class:`InvalidCall` naming ``cursor`` when it is not
    a cursor :func:`encode_cursor` wrote (the message never repeats the value)."""
    problem = "is not a cursor this log gave: pass next_cursor from the previous page as it is"
    if not isinstance(cursor, str) or not 0 < len(cursor) <= MAX_CURSOR_CHARS:
        raise InvalidCall(f"{CURSOR_FIELD} {problem}")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, stamp, row_id = json.loads(raw)
        created_at = datetime.fromisoformat(stamp)
    except (binascii.Error, ValueError, TypeError):  # JSON, unpacking and time errors
        raise InvalidCall(f"{CURSOR_FIELD} {problem}") from None
    if (
        version != _VERSION
        or not isinstance(row_id, str)
        or not row_id.isprintable()
        or created_at.tzinfo is None
    ):
        raise InvalidCall(f"{CURSOR_FIELD} {problem}")
    return Cursor(created_at.astimezone(UTC), row_id)


def newest_first(created_at: Any, row_id: Any) -> list[UnaryExpression[Any]]:  # noqa: ANN401 - SQLAlchemy columns
    """``ORDER BY created_at DESC, id DESC``: the order pages and cursors follow."""
    return [created_at.desc(), row_id.desc()]


def before(created_at: Any, row_id: Any, cursor: Cursor) -> ColumnElement[bool]:  # noqa: ANN401 - SQLAlchemy columns
    """Rows strictly after ``cursor`` in newest-first order: ``(created_at, id) < (t, i)``.

    A row-value comparison, which PostgreSQL answers from an index on
    ``(..., created_at, id)`` as one range (SQLite 3.15+ reads it too).
    """
    return tuple_(created_at, row_id) < tuple_(
        bindparam("cursor_created_at", cursor.created_at, type_=created_at.type),
        bindparam("cursor_id", cursor.id, type_=row_id.type),
    )


def page_of(
    rows: Sequence[_T], limit: int, position: Callable[[_T], tuple[datetime, str]]
) -> Page[_T]:
    """The page in ``rows`` (fetched with ``LIMIT limit + 1``): at most ``limit`` items, and
    a cursor after the last one when a further row exists.  ``position`` gives a row's
    ``(created_at, id)``."""
    if len(rows) <= limit:
        return Page(tuple(rows))
    items = tuple(rows[:limit])
    return Page(items, encode_cursor(*position(items[-1])))


def limit_problem(limit: object, maximum: int) -> str | None:
    """Why ``limit`` is no page size from 1 to ``maximum``, or ``None``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        return f"must be a whole number from 1 to {maximum}"
    return None
