"""Fail fast on a dead tenant, and keep one tenant from starving the others.

- A circuit breaker per tenant endpoint, that is per (tenant, webhook, configured URL): after
  ``failure_threshold`` failures that say "the endpoint is down" (timeout, connection
  failure, 5xx) within ``window_seconds``, calls fail at once with ``circuit_open`` for
  ``cooldown_seconds``; then one probe goes through, and its success closes the circuit (its
  failure opens it again).  Nothing else counts: not a 4xx, not a bad body, and not a call
  the caller gave up on (cancelled, or cut short by the caller's own deadline), which
  counts for nothing and, if it was the probe, frees the probe slot.  A circuit belongs to
  the configuration it was opened under (the URL, and the config's version): any save of the
  config since (a new URL, also one changed away and back; a new timeout or secret) starts
  it closed.  Each (tenant, webhook) keeps only the circuit of the configuration it calls
  now, so memory is bounded by the tenants, not by their URL changes.
- A bulkhead per tenant: at most ``max_in_flight`` calls of one tenant at a time; the next
  fails at once with ``bulkhead_full``, so a hung tenant holds a bounded share of the
  connection pool and everyone else keeps their latency.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Hashable, Iterator
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
    #: The configuration the circuit belongs to (the dispatcher passes the config's version
    #: and save time); a call under another one starts a closed circuit.
    config: Hashable
    circuit: CircuitBreaker

    def belongs_to(self, url: str, config: Hashable) -> bool:
        return self.url == url and self.config == config


class Breakers:
    """The circuits of every endpoint this process calls, created on the first failure.

    One entry per (tenant, webhook), holding the circuit of the URL last called under the
    configuration ``config`` (any hashable the caller chooses: the dispatcher passes the
    config's version and save time); a call to another URL, or under another configuration,
    drops it (and starts closed).  An outcome that arrives for a circuit no longer tracked
    (a call in flight across a save) is ignored if it is a success, and starts the circuit
    over if it is a failure; so a save can delay an opening by a few failures, never show
    one configuration's state for another.
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

    def states(self) -> Iterator[tuple[str, str, str]]:
        """``(tenant, webhook, state)`` of every kept circuit (for metrics)."""
        for (tenant, webhook), tracked in list(self._circuits.items()):
            yield tenant, webhook, str(tracked.circuit.state)

    def admit(self, key: BreakerKey, now: float, *, config: Hashable = None) -> Admission:
        """Whether a call to ``key`` under ``config`` may go out now, and whether it is the
        half-open probe."""
        tenant, webhook, url = key
        tracked = self._circuits.get((tenant, webhook))
        if tracked is None:
            return Admission.CALL
        if not tracked.belongs_to(url, config):
            # the URL or the configuration changed since: the old circuit is moot
            del self._circuits[tenant, webhook]
            return Admission.CALL
        circuit = tracked.circuit
        before = circuit.state
        admission = circuit.admit(now)
        if circuit.state is not before:
            self._on_change(key, before, circuit.state)
        return admission

    def record(self, key: BreakerKey, now: float, *, down: bool, config: Hashable = None) -> None:
        """Feed an outcome back; reports a state change."""
        tenant, webhook, url = key
        tracked = self._circuits.get((tenant, webhook))
        if tracked is None or not tracked.belongs_to(url, config):
            if not down:
                return
            tracked = _Tracked(url, config, CircuitBreaker(self.policy))
            self._circuits[tenant, webhook] = tracked
        circuit = tracked.circuit
        before = circuit.state
        circuit.record(now, down=down)
        if circuit.state is not before:
            self._on_change(key, before, circuit.state)

    def settle(
        self,
        key: BreakerKey,
        admission: Admission,
        now: float,
        *,
        down: bool | None,
        config: Hashable = None,
    ) -> None:
        """Close one admitted call: :meth:`record` its outcome, or, when it has none
        (``down is None``: cancelled, or cut short by the caller), :meth:`abandon` it."""
        if down is None:
            self.abandon(key, admission, config=config)
        else:
            self.record(key, now, down=down, config=config)

    def abandon(self, key: BreakerKey, admission: Admission, *, config: Hashable = None) -> None:
        """An admitted call ended without an outcome: count nothing, free a probe's slot."""
        tenant, webhook, url = key
        tracked = self._circuits.get((tenant, webhook))
        if tracked is not None and tracked.belongs_to(url, config):
            tracked.circuit.abandon(admission)

    def state(
        self, tenant: str, webhook: str, url: str | None, *, config: Hashable = None
    ) -> CircuitState:
        """The circuit of ``url`` under ``config`` (closed when it never failed there);
        ``url=None``: of the URL last called, whatever it is and under whatever config."""
        tracked = self._circuits.get((tenant, webhook))
        if tracked is None or (url is not None and not tracked.belongs_to(url, config)):
            return CircuitState.CLOSED
        return tracked.circuit.state

    def next_probe_in(
        self, tenant: str, webhook: str, url: str, now: float, *, config: Hashable = None
    ) -> float | None:
        """Seconds until the open circuit of ``url`` under ``config`` lets its one probe
        through (0: the probe may go, or is under way); ``None`` when that circuit is closed."""
        tracked = self._circuits.get((tenant, webhook))
        if (
            tracked is None
            or not tracked.belongs_to(url, config)
            or tracked.circuit.state is CircuitState.CLOSED
        ):
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
