"""What structured log events carry: plain values a JSON or key=value renderer prints as
they are (a ``datetime`` would print as its Python repr)."""

from __future__ import annotations

from datetime import datetime


def log_time(moment: datetime | None) -> str | None:
    """``moment`` as ISO 8601 text (``2026-11-30T19:05:00+00:00``) for a log event; ``None``
    stays ``None``."""
    return None if moment is None else moment.isoformat()
