"""Fault injection for reliability tests: throttling like a TPS quota, a share of requests answered 429/503,
connections dropped mid-body, slow responses.

Shares are deterministic: with ``error_rate`` 0.25, exactly every 4th request in scope is answered with an error
(a credit accumulates by the rate on each request and the fault fires when it reaches 1), so a test can count on
the number of faults whatever the order of parallel requests. With ``error_burst`` N, errors come N requests in a
row (a burst of 503s, as a service shedding load answers), the share staying ``error_rate``. One request gets one
fault at most (throttle, then error, drop, slow): a fault falling due on a request that already has one comes with
the next request.

The throttle is a token bucket of ``throttle_burst`` tokens refilled at ``throttle_rps`` per second, answered with
ThrottlingException (429, no Retry-After) as HealthImaging's TPS quotas are.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any

SCOPES = ("stow", "all")
ADMIN_PREFIX = "/_emulator"
"""The emulator's own endpoints: never affected by faults, not counted."""
_STOW_PATH = re.compile(r"^/datastore/[^/]+/studies(/[^/]+)?/?$")
_EPSILON = 1e-9


@dataclass(frozen=True)
class FaultConfig:
    error_rate: float = 0.0
    """Share of requests answered with one of ``error_statuses`` (in turn) and a Retry-After header."""
    error_statuses: tuple[int, ...] = (429, 503)
    """Used in turn, one per burst."""
    error_burst: int = 1
    """Consecutive requests that each error spans."""
    retry_after: int = 1
    """Seconds, sent in Retry-After with injected errors."""
    drop_rate: float = 0.0
    """Share of requests whose connection is closed after about half of the body was read."""
    slow_rate: float = 0.0
    """Share of requests whose response is held back ``slow_seconds``."""
    slow_seconds: float = 0.0
    throttle_rps: float | None = None
    throttle_burst: int | None = None
    """Bucket size of the throttle; default: ``throttle_rps`` rounded up (at least 1)."""
    scope: str = "stow"
    """``stow``: StoreDICOM/StoreDICOMStudy requests only; ``all``: every request but the admin endpoints."""
    max_faults: int | None = None
    """Stop injecting after this many faults: ``error_rate=1, max_faults=2`` fails the next two requests."""

    def __post_init__(self) -> None:
        for name in ("error_rate", "drop_rate", "slow_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if any(status not in (429, 500, 502, 503, 504) for status in self.error_statuses) or not self.error_statuses:
            raise ValueError("error_statuses must be among 429, 500, 502, 503, 504")
        if self.error_burst < 1:
            raise ValueError("error_burst must be at least 1")
        if self.retry_after < 0 or self.slow_seconds < 0:
            raise ValueError("retry_after and slow_seconds must not be negative")
        if self.throttle_rps is not None and self.throttle_rps <= 0:
            raise ValueError("throttle_rps must be positive")
        if self.throttle_burst is not None and self.throttle_burst < 1:
            raise ValueError("throttle_burst must be at least 1")
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        if self.max_faults is not None and self.max_faults < 0:
            raise ValueError("max_faults must not be negative")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultConfig:
        """From the admin endpoint's JSON; raises ValueError naming an unknown key or a bad value."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = dict(data)
        if "error_statuses" in values:
            values["error_statuses"] = tuple(int(status) for status in values["error_statuses"])
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Fault(Enum):
    THROTTLE = "throttle"
    ERROR = "error"
    DROP = "drop"
    SLOW = "slow"


@dataclass(frozen=True)
class Decision:
    fault: Fault
    status: int | None = None


class FaultInjector:
    """Decides, request by request, which fault (if any) to inject. Used from the event loop only."""

    def __init__(self, config: FaultConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        self.config = config
        self._credit = {Fault.ERROR: 0.0, Fault.DROP: 0.0, Fault.SLOW: 0.0}
        self._errors_sent = 0
        self._burst_left = 0
        self._burst_status = 0
        self._injected = 0
        self._burst = config.throttle_burst or math.ceil(config.throttle_rps or 1)
        self._tokens = float(self._burst)
        self._refilled_at = self.clock()

    def applies_to(self, method: str, path: str) -> bool:
        if path.startswith(ADMIN_PREFIX):
            return False
        return self.config.scope == "all" or (method == "POST" and bool(_STOW_PATH.match(path)))

    def decide(self) -> Decision | None:
        limit = self.config.max_faults
        if limit is not None and self._injected >= limit:
            return None
        decision = self._decide()
        self._injected += decision is not None
        return decision

    def _decide(self) -> Decision | None:
        if self._throttled():
            return Decision(Fault.THROTTLE, 429)
        rates = {
            Fault.ERROR: self.config.error_rate,
            Fault.DROP: self.config.drop_rate,
            Fault.SLOW: self.config.slow_rate,
        }
        continuing = self._burst_left > 0
        chosen: Fault | None = Fault.ERROR if continuing else None
        for fault, rate in rates.items():
            self._credit[fault] += rate
            size = self.config.error_burst if fault is Fault.ERROR else 1
            if chosen is None and self._credit[fault] >= size - _EPSILON:
                self._credit[fault] -= size
                chosen = fault
        if continuing:
            self._burst_left -= 1
            return Decision(Fault.ERROR, self._burst_status)
        if chosen is Fault.ERROR:
            statuses = self.config.error_statuses
            status = statuses[self._errors_sent % len(statuses)]
            self._errors_sent += 1
            self._burst_left, self._burst_status = self.config.error_burst - 1, status
            return Decision(Fault.ERROR, status)
        return Decision(chosen) if chosen else None

    def _throttled(self) -> bool:
        if self.config.throttle_rps is None:
            return False
        now = self.clock()
        self._tokens = min(float(self._burst), self._tokens + (now - self._refilled_at) * self.config.throttle_rps)
        self._refilled_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return False
        return True
