"""Fail fast on a dead tenant, and keep one tenant from starving the others.

- A circuit breaker per tenant endpoint: after ``failure_threshold`` failures that say "the
  endpoint is down" (timeout, connection failure, 5xx) within ``window_seconds``, calls fail at
  once with ``circuit_open`` for ``cooldown_seconds``; then one probe goes through, and its
  success closes the circuit (its failure opens it again).
- A bulkhead per tenant: at most ``max_in_flight`` calls of one tenant at a time; the next
  fails at once with ``bulkhead_full``, so a hung tenant holds a bounded share of the
  connection pool and everyone else keeps their latency.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ._results import CONNECT_ERROR, HTTP_STATUS, TIMEOUT, Delivery


class CircuitState(enum.StrEnum):
    """Where one endpoint's circuit stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a circuit opens and how long it stays open (0 failures: never opens)."""

    failure_threshold: int = 5
    window_seconds: float = 30.0
    cooldown_seconds: float = 15.0

    def counts_as_down(self, delivery: Delivery) -> bool:
        """Only answers that say "this endpoint is not serving" count against it."""
        if delivery.failure in (TIMEOUT, CONNECT_ERROR):
            return True
        return delivery.failure == HTTP_STATUS and (delivery.status or 0) >= 500


@dataclass(slots=True)
class CircuitBreaker:
    """One endpoint's circuit. Not thread-safe; one event loop owns it."""

    policy: BreakerPolicy
    state: CircuitState = CircuitState.CLOSED
    failures: deque[float] = field(default_factory=deque)
    opened_at: float = 0.0
    probing: bool = False

    def admit(self, now: float) -> bool:
        """Whether a call may go out now (in half-open: only the single probe)."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            if now - self.opened_at < self.policy.cooldown_seconds:
                return False
            self.state = CircuitState.HALF_OPEN
            self.probing = False
        if self.probing:
            return False
        self.probing = True
        return True

    def record(self, now: float, *, down: bool) -> None:
        """Feed one admitted call's outcome back."""
        if self.state is CircuitState.HALF_OPEN:
            self.probing = False
            if down:
                self._open(now)
            else:
                self.state = CircuitState.CLOSED
                self.failures.clear()
            return
        if not down:
            return
        self.failures.append(now)
        while self.failures and now - self.failures[0] > self.policy.window_seconds:
            self.failures.popleft()
        if 0 < self.policy.failure_threshold <= len(self.failures):
            self._open(now)

    def _open(self, now: float) -> None:
        self.state = CircuitState.OPEN
        self.opened_at = now
        self.failures.clear()


BreakerKey = tuple[str, str, str]  # tenant, webhook, url


class Breakers:
    """The circuits of every endpoint this process calls, created on first use."""

    def __init__(
        self,
        policy: BreakerPolicy,
        *,
        on_change: Callable[[BreakerKey, CircuitState, CircuitState], None],
    ) -> None:
        self.policy = policy
        self._circuits: dict[BreakerKey, CircuitBreaker] = {}
        self._on_change = on_change

    def admit(self, key: BreakerKey, now: float) -> bool:
        """Whether a call to ``key`` may go out now."""
        circuit = self._circuits.get(key)
        if circuit is None:
            return True
        before = circuit.state
        admitted = circuit.admit(now)
        if circuit.state is not before:
            self._on_change(key, before, circuit.state)
        return admitted

    def record(self, key: BreakerKey, now: float, *, down: bool) -> None:
        """Feed an outcome back; reports a state change."""
        circuit = self._circuits.get(key)
        if circuit is None:
            if not down:
                return
            circuit = self._circuits[key] = CircuitBreaker(self.policy)
        before = circuit.state
        circuit.record(now, down=down)
        if circuit.state is not before:
            self._on_change(key, before, circuit.state)

    def states(self, tenant_id: str) -> dict[str, CircuitState]:
        """The tenant's circuits by webhook (closed when never failed)."""
        return {
            webhook: circuit.state
            for (tenant, webhook, _url), circuit in self._circuits.items()
            if tenant == tenant_id
        }


class Bulkhead:
    """Counts each tenant's calls in flight against a cap."""

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self._in_flight: dict[str, int] = {}

    def try_enter(self, tenant_id: str) -> bool:
        """Take a slot, or say no at once when the tenant has none left."""
        current = self._in_flight.get(tenant_id, 0)
        if current >= self.max_in_flight:
            return False
        self._in_flight[tenant_id] = current + 1
        return True

    def leave(self, tenant_id: str) -> None:
        """Give the slot back."""
        remaining = self._in_flight[tenant_id] - 1
        if remaining:
            self._in_flight[tenant_id] = remaining
        else:
            del self._in_flight[tenant_id]
