"""Injected time: a clock and a sleep that never wait, so retry tests take no time."""

from __future__ import annotations

from dataclasses import dataclass, field

from vizochok_dispatch import Clock


@dataclass
class FakeTime:
    """Wall and monotonic time that move only when the code under test sleeps (or we say)."""

    now: float = 1_763_856_000.0
    sleeps: list[float] = field(default_factory=list)

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    @property
    def clock(self) -> Clock:
        return Clock(wall=self.wall, monotonic=self.monotonic)
