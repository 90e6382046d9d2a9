"""The demo's output: readable steps, checked outcomes, and library logs rendered tidily."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import structlog

#: The log keys worth a reader's attention; ids and timings are left out.
_SHOWN_KEYS = ("webhook", "attempt", "status", "outcome", "detail", "reason", "path")


class Transcript:
    """Writes the transcript and keeps score of the checks."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self.lines: list[str] = []
        self.passed = 0
        self.failed: list[str] = []

    def emit(self, text: str = "") -> None:
        """One line of output."""
        self.lines.append(text)
        self._write(text)

    def heading(self, text: str) -> None:
        """A new step."""
        self.emit()
        self.emit(f"== {text}")

    def say(self, text: str) -> None:
        """What happened, indented under its step."""
        self.emit(f"   {text}")

    def check(self, ok: bool, rule: str) -> bool:
        """Record whether the contract's ``rule`` held; the exit code is built from these."""
        if ok:
            self.passed += 1
            self.emit(f"   ✓ {rule}")
        else:
            self.failed.append(rule)
            self.emit(f"   ✗ {rule}")
        return ok

    def log_line(self, event_dict: MutableMapping[str, Any]) -> None:
        """One library log event, on one dim line: who logged it, the event, the key facts."""
        event = str(event_dict.get("event", ""))
        side = "tenant" if event.startswith("receiver.") else "platform"
        facts = " ".join(
            f"{key}={event_dict[key]}"
            for key in _SHOWN_KEYS
            if key in event_dict and event_dict[key] is not None
        )
        self.emit(f"     · log[{side}] {event} {facts}".rstrip())

    @property
    def ok(self) -> bool:
        """Whether every check held."""
        return not self.failed


@contextlib.contextmanager
def library_logs_into(transcript: Transcript) -> Iterator[None]:
    """Route structlog events into the transcript for the duration; restore the config after."""

    def render(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:  # noqa: ANN401 - structlog's processor signature
        transcript.log_line(event_dict)
        raise structlog.DropEvent

    previous = structlog.get_config()
    structlog.configure(
        processors=[render],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=False,
    )
    try:
        yield
    finally:
        structlog.configure(**previous)
