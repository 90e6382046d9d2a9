"""Fail fast on a dead tenant, and keep one tenant from starving the others.

- A circuit breaker per tenant endpoint, that is per (tenant, webhook, configured URL): after
  ``failure_threshold`` failures that say "the endpoint is down" (timeout, connection
  failure, 5xx) within ``window_seconds``, calls fail at once with ``circuit_open`` for
  ``cooldown_seconds``; then one probe goes through, and its success closes the circuit (its
  failure opens it again).  Nothing else counts: not a 4xx, not a bad body, and not a call
  the caller gave up on (cancelled, or cut short by the caller's own deadline), which
  counts for nothing and, if it was the probe, frees the probe slot.  Each (tenant, webhook)
  keeps only the circuit of the URL it calls now: a new URL starts closed and the old
  circuit is forgotten, so memory is bounded by the tenants, not by their URL changes.
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


class Admission(enum.Enum):
    """What the breaker said to one call."""

    REFUSED = "refused"
    CALL = "call"
    #: The single call let through a half-open circuit.
    PROBE = "probe"


@dataclass(slots=True)
class CircuitBreaker:
    """One endpoint's circuit. Not thread-safe; one event loop owns it."""

    policy: BreakerPolicy
    state: CircuitState = CircuitState.CLOSED
    failures: deque[float] = field(default_factory=deque)
    opened_at: float = 0.0
    probing: bool = False

    def admit(self, now: float) -> Admission:
        """Whether a call may go out now (in half-open: only the single probe)."""
        if self.state is CircuitState.CLOSED:
            return Admission.CALL
        if self.state is CircuitState.OPEN:
            if now - self.opened_at < self.policy.cooldown_seconds:
                return Admission.REFUSED
            self.state = CircuitState.HALF_OPEN
            self.probing = False
        if self.probing:
            return Admission.REFUSED
        self.probing = True
        return Admission.PROBE

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

    def abandon(self, admission: Admission) -> None:
        """An admitted call ended with no outcome (the caller gave up): it counts for nothing,
        and a probe's slot is free again, so the next call may probe."""
        if admission is Admission.PROBE and self.state is CircuitState.HALF_OPEN:
            self.probing = False

    def _open(self, now: float) -> None:
        self.state = CircuitState.OPEN
        self.opened_at = now
        self.failures.clear()


BreakerKey = tuple[str, str, str]  # tenant, webhook, configured URL


@dataclass(slots=True)
class _Tracked:
    url: str
    circuit: CircuitBreaker


class Breakers:
    """The circuits of every endpoint this process calls, created on the first failure.

    One entry per (tenant, webhook), holding the circuit of the URL last called; a call to
    another URL drops it (the new URL starts closed).  An outcome that arrives for a URL that
    is no longer tracked (a call in flight across a URL change) is ignored if it is a
    success, and starts the new URL's circuit over if it is a failure; so a URL change can
    delay an opening by a few failures, never show one URL's state for another.
    """

    def __init__(
        self,
        policy: BreakerPolicy,
        *,
        on_change: Callable[[BreakerKey, CircuitState, CircuitState], None],
    ) -> None:
        self.policy = policy
        self._circuits: dict[tuple[str, str], _Tracked] = {}
        self._on_change = on_change

    def __len__(self) -> int:
        """How many circuits are kept (at most one per tenant and webhook)."""
        return len(self._circuits)

    def admit(self, key: BreakerKey, now: float) -> Admission:
        """Whether a call to ``key`` may go out now, and whether it is the half-open probe."""
        tenant, webhook, url = key
        tracked = self._circuits.get((tenant, webhook))
        if tracked is None:
            return Admission.CALL
        if tracked.url != url:
            del self._circuits[tenant, webhook]  # the URL changed: its old circuit is moot
            return Admission.CALL
        circuit = tracked.circuit
        before = circuit.state
        admission = circuit.admit(now)
        if circuit.state is not before:
            self._on_change(key, before, circuit.state)
        return admission

    def record(self, key: BreakerKey, now: float, *, down: bool) -> None:
        """Feed an outcome back; reports a state change."""
        tenant, webhook, url = key
        tracked = self._circuits.get((tenant, webhook))
        if tracked is None or tracked.url != url:
            if not down:
                return
            tracked = _Tracked(url, CircuitBreaker(self.policy))
            self._circuits[tenant, webhook] = tracked
        circuit = tracked.circuit
        before = circuit.state
        circuit.record(now, down=down)
        if circuit.state is not before:
            self._on_change(key, before, circuit.state)

    def settle(
        self, key: BreakerKey, admission: Admission, now: float, *, down: bool | None
    ) -> None:
        """Close one admitted call: :meth:`record` its outcome, or, when it has none
        (``down is None``: cancelled, or cut short by the caller), :meth:`abandon` it."""
        if down is None:
            self.abandon(key, admission)
        else:
            self.record(key, now, down=down)

    def abandon(self, key: BreakerKey, admission: Admission) -> None:
        """An admitted call ended without an outcome: count nothing, free a probe's slot."""
        tenant, webhook, url = key
        tracked = self._circuits.get((tenant, webhook))
        if tracked is not None and tracked.url == url:
            tracked.circuit.abandon(admission)

    def state(self, tenant: str, webhook: str, url: str | None) -> CircuitState:
        """The circuit of ``url`` (closed when it never failed); ``None``: of the URL last
        called, whatever it is."""
        tracked = self._circuits.get((tenant, webhook))
        if tracked is None or (url is not None and tracked.url != url):
            return CircuitState.CLOSED
        return tracked.circuit.state

    def next_probe_in(self, tenant: str, webhook: str, url: str, now: float) -> float | None:
        """Seconds until the open circuit of ``url`` lets its one probe through (0: the probe
        may go, or is under way); ``None`` when that circuit is closed."""
        tracked = self._circuits.get((tenant, webhook))
        if tracked is None or tracked.url != url or tracked.circuit.state is CircuitState.CLOSED:
            return None
        circuit = tracked.circuit
        if circuit.state is CircuitState.HALF_OPEN:
            return 0.0
        return max(circuit.opened_at + self.policy.cooldown_seconds - now, 0.0)


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
