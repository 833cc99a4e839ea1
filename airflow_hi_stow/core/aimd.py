"""Adaptive throttling: additive increase, multiplicative decrease (AIMD) of a concurrency and a request rate.

HealthImaging answers 429 (or 503) when a caller exceeds its transactions-per-second quota. Retrying alone keeps
hammering the service; the controller instead slows the sender down on each throttling answer and speeds it up
again, gently, while requests succeed, as TCP does with its congestion window. Pure: the caller passes the clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass
class AimdController:
    """The number of requests allowed in flight and the pace at which new ones may start.

    - A throttling answer cuts the concurrency and the rate by ``decrease``; answers arriving within ``cooldown``
      seconds of a cut belong to the same congestion event (requests already in flight) and cut nothing more.
      The first cut sets the rate from the start rate measured over the last ``rate_window`` seconds.
    - Each success adds ``1 / concurrency`` to the concurrency (one more connection per round of successes) and
      ``rate_increase / rate`` to the rate (about ``rate_increase`` requests/s more per second).
    - The rate is unlimited until the first throttling answer, unless ``max_rate`` caps it from the start.
    """

    max_concurrency: int
    max_rate: float | None = None
    min_rate: float = 0.2
    decrease: float = 0.5
    rate_increase: float = 1.0
    cooldown: float = 1.0
    rate_window: float = 2.0
    concurrency: float = field(init=False)
    rate: float | None = field(init=False)
    throttle_events: int = field(default=0, init=False)
    """Cuts made (throttling answers within a cool-down are one event)."""
    _starts: deque[float] = field(default_factory=deque, init=False, repr=False)
    _last_cut: float | None = field(default=None, init=False, repr=False)
    _next_start: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if self.max_rate is not None and self.max_rate <= 0:
            raise ValueError("max_rate must be positive (or None for no cap)")
        if not 0 < self.decrease < 1:
            raise ValueError("decrease must be between 0 and 1")
        self.concurrency = float(self.max_concurrency)
        self.rate = self.max_rate

    @property
    def limit(self) -> int:
        """Requests allowed in flight now."""
        return max(1, math.floor(self.concurrency))

    def wait_time(self, now: float) -> float:
        """Seconds to wait before the next request may start (0 when it may start now)."""
        return 0.0 if self._next_start is None else max(0.0, self._next_start - now)

    def on_start(self, now: float) -> None:
        """A request starts now."""
        self._starts.append(now)
        self._forget_before(now - self.rate_window)
        if self.rate is not None:
            base = now if self._next_start is None else max(now, self._next_start)
            self._next_start = base + 1.0 / self.rate

    def on_success(self) -> None:
        """A request was answered without throttling."""
        self.concurrency = min(float(self.max_concurrency), self.concurrency + 1.0 / self.concurrency)
        if self.rate is not None:
            self.rate += self.rate_increase / self.rate
            if self.max_rate is not None:
                self.rate = min(self.rate, self.max_rate)

    def on_throttle(self, now: float) -> bool:
        """A request was answered 429/503. Returns whether this cut the limits (False within a cool-down)."""
        if self._last_cut is not None and now - self._last_cut < self.cooldown:
            return False
        self._last_cut = now
        self.throttle_events += 1
        self.concurrency = max(1.0, self.concurrency * self.decrease)
        current = self.rate if self.rate is not None else self.observed_rate(now)
        self.rate = max(self.min_rate, current * self.decrease)
        self._next_start = now + 1.0 / self.rate
        return True

    def observed_rate(self, now: float) -> float:
        """Request starts per second over the last ``rate_window`` seconds (or since the first start)."""
        self._forget_before(now - self.rate_window)
        if not self._starts:
            return self.min_rate
        span = min(self.rate_window, max(now - self._starts[0], 1.0 / len(self._starts), 1e-3))
        return max(self.min_rate, len(self._starts) / span)

    def _forget_before(self, moment: float) -> None:
        while self._starts and self._starts[0] < moment:
            self._starts.popleft()
