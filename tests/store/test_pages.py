"""The cursor codec of keyset pagination (``tenants._pages``): round trip, opacity, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from vizochok_dispatch import InvalidCall
from vizochok_dispatch.tenants._pages import Cursor, decode_cursor, encode_cursor, page_of


def test_a_cursor_round_trips_to_the_microsecond_in_utc() -> None:
    """encode/decode: the position comes back exactly, in UTC, from any zone."""
    kyiv = timezone(timedelta(hours=2))
    moment = datetime(2026, 11, 30, 19, 5, 1, 123456, tzinfo=kyiv)
    cursor = encode_cursor(moment, "dlv_01abc")
    assert cursor.isascii() and "=" not in cursor and "/" not in cursor and "+" not in cursor
    decoded = decode_cursor(cursor)
    assert decoded == Cursor(moment.astimezone(UTC), "dlv_01abc")
    assert decoded.created_at.tzinfo is UTC


def test_a_naive_time_makes_no_cursor() -> None:
    """encode_cursor: a time without a zone is a programming error (ValueError)."""
    with pytest.raises(ValueError, match="timezone-aware"):
        encode_cursor(datetime(2026, 1, 1), "x")


@pytest.mark.parametrize("cursor", [None, 5, "", "%%%", "e30", "W10", "WzEsIngiLCJ5Il0"])
def test_anything_else_is_invalid_call_naming_cursor(cursor: object) -> None:
    """decode_cursor: any other value is InvalidCall starting with the field's name."""
    with pytest.raises(InvalidCall, match=r"^cursor "):
        decode_cursor(cursor)


def test_page_of_cuts_the_extra_row_into_a_cursor() -> None:
    """page_of: limit + 1 rows make a page of limit and a cursor after its last row."""
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [(moment, f"id{n}") for n in range(3)]
    page = page_of(rows, 2, lambda row: row)
    assert page.items == tuple(rows[:2])
    assert page.next_cursor is not None
    assert decode_cursor(page.next_cursor) == Cursor(moment, "id1")
    assert page_of(rows, 3, lambda row: row).next_cursor is None
