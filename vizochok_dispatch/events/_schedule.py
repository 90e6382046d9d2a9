"""When a failed event delivery is tried again: the retry schedule, a plain value.

The schedule is data (as Svix keeps it), apart from the code that retries: the delays before
attempts 2, 3, … and how much random jitter lengthens each.  A deployment writes it as
``VIZOCHOK_EVENT_RETRY_SCHEDULE="30s,5m"`` (or ``event_retry_schedule="30s,5m"`` given to
``Dispatcher.from_database_url``): the delays in order, each a number and a unit (``ms``,
``s``, ``m``, ``h``, ``d``); ``none`` means one attempt only.  A schedule written out is kept
exactly, without jitter.

The default is three attempts in all with exponential backoff and jitter (the seeds' "retried
up to 3 times with exponential backoff"): 5 minutes before attempt 2 and 12 times that, one
hour, before attempt 3, each lengthened by up to 25 %, so the attempts span more than an hour
and a tenant that is down for an hour still gets the event.  Jitter keeps the retries of
many deliveries that failed together (one endpoint's outage) from all coming back at once.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .._exceptions import SettingsError

#: How the setting is named in error messages.
SETTING: Final = "VIZOCHOK_EVENT_RETRY_SCHEDULE (event_retry_schedule)"
UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: At most this many retries (so at most 21 attempts).
MAX_RETRIES: Final = 20
#: No single delay may be longer (30 days).
MAX_DELAY_SECONDS: Final = 30 * 86400.0
#: Jitter may lengthen a delay by at most this fraction of it.
MAX_JITTER: Final = 1.0

_DELAY = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_EXAMPLE: Final = 'e.g. "30s,5m,1h"'

#: A random number in [0, 1): where jitter comes from (tests pass their own).
RandomSource = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """The delays before attempts 2, 3, … in seconds, and the jitter that lengthens each.

    ``delays=()`` is one attempt only.  With ``jitter=0.25``, a delay of 300 s becomes a
    random value from 300 s up to 375 s.
    """

    delays: tuple[float, ...]
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if len(self.delays) > MAX_RETRIES:
            raise SettingsError(f"{SETTING}: at most {MAX_RETRIES} retries, not {len(self.delays)}")
        for delay in self.delays:
            if not 0 <= delay <= MAX_DELAY_SECONDS:
                raise SettingsError(f"{SETTING}: each delay must be from 0 to 30d, not {delay} s")
        if not 0 <= self.jitter <= MAX_JITTER:
            raise SettingsError(f"{SETTING}: jitter must be from 0 to {MAX_JITTER}")

    @property
    def max_attempts(self) -> int:
        """Attempts in all: the first, and one after each delay."""
        return len(self.delays) + 1

    def delay_before(self, attempt: int, rand: RandomSource = random.random) -> float | None:
        """Seconds to wait before attempt number ``attempt`` (2, 3, …); ``None``: no such
        attempt, the delivery has failed."""
        if not 2 <= attempt <= self.max_attempts:
            return None
        delay = self.delays[attempt - 2]
        if self.jitter:
            delay += delay * self.jitter * rand()
        return delay

    @classmethod
    def exponential(
        cls, *, first_seconds: float, factor: float, attempts: int, jitter: float
    ) -> RetrySchedule:
        """``attempts`` in all, the first retry after ``first_seconds``, each next one
        ``factor`` times longer."""
        return cls(
            delays=tuple(first_seconds * factor**index for index in range(attempts - 1)),
            jitter=jitter,
        )

    @classmethod
    def parse(cls, text: str) -> RetrySchedule:
        """``"30s,5m"`` as a schedule without jitter; :class:`SettingsError` naming the setting
        and the entry when it is not one."""
        written = text.strip()
        if written.lower() == "none":
            return cls(delays=())
        if not written:
            raise SettingsError(
                f"{SETTING} is empty: list the delays before attempts 2, 3, … ({_EXAMPLE}), "
                'or write "none" for one attempt only'
            )
        delays = []
        for index, entry in enumerate(written.split(","), start=1):
            delays.append(_seconds(entry.strip(), index))
        return cls(delays=tuple(delays))

    def __str__(self) -> str:
        shown = ",".join(_written(delay) for delay in self.delays) or "none"
        return f"{shown} (+ up to {self.jitter:.0%} jitter)" if self.jitter else shown


def _seconds(entry: str, index: int) -> float:
    if not entry:
        raise SettingsError(f"{SETTING}: entry {index} is empty ({_EXAMPLE})")
    seconds = _unit_seconds(entry, f"{SETTING}: entry {index} {entry!r:.40}", "delay", _EXAMPLE)
    if seconds > MAX_DELAY_SECONDS:
        raise SettingsError(f"{SETTING}: entry {index} {entry!r:.40} is longer than 30d")
    return seconds


def _unit_seconds(entry: str, what: str, noun: str, example: str) -> float:
    match = _DELAY.fullmatch(entry.lower())
    if match is None:
        raise SettingsError(
            f"{what} is not a {noun}: write a number and a unit (ms, s, m, h or d), {example}"
        )
    number, unit = match.groups()
    if unit not in UNITS:
        raise SettingsError(f"{what} has the unknown unit {unit!r:.10}; use ms, s, m, h or d")
    return float(number) * UNITS[unit]


def parse_duration(value: object, *, setting: str, low: float, high: float) -> float:
    """A duration setting as seconds: a number of seconds, or text such as ``"5d"`` or
    ``"90m"`` (the schedule's units); :class:`SettingsError` naming ``setting`` when it is
    not one or lies outside ``low``-``high`` seconds."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SettingsError(f"{setting} must be a duration such as 5d or 12h")
    if isinstance(value, str):
        text = value.strip()
        seconds = (
            float(text)
            if _NUMBER.fullmatch(text)
            else _unit_seconds(text, f"{setting} {value!r:.40}", "duration", "e.g. 5d or 12h")
        )
    else:
        seconds = float(value)
    if not low <= seconds <= high:
        raise SettingsError(
            f"{setting} must be from {_written(low) if low else '0'} to {_written(high)}"
        )
    return seconds


def _written(seconds: float) -> str:
    for unit in ("d", "h", "m", "s"):
        count = seconds / UNITS[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{round(seconds * 1000, 3):g}ms"


#: The default: 3 attempts in all, 5 min then 1 h before the retries, up to 25 % jitter.
DEFAULT_RETRY_SCHEDULE: Final = RetrySchedule.exponential(
    first_seconds=300.0, factor=12.0, attempts=3, jitter=0.25
)
