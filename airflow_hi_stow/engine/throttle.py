"""A gate that admits requests as the AIMD controller allows: bounded in flight, paced after throttling."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from airflow_hi_stow.core.aimd import AimdController
from airflow_hi_stow.transport.retry import THROTTLING_STATUSES


class AdaptiveGate:
    """Threads call :meth:`acquire` before sending a request and :meth:`release` after it; the client's
    ``on_retry`` callback goes to :meth:`on_retry`, so 429/503 answers slow everyone down."""

    def __init__(
        self,
        controller: AimdController,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.controller = controller
        self.clock = clock
        self.sleep = sleep
        self.in_flight = 0
        self.throttled = 0
        """Throttling answers (429/503) retried so far."""
        self._changed = threading.Condition()

    def acquire(self) -> None:
        """Wait for a free slot and the pace, then take the slot."""
        with self._changed:
            while True:
                if self.in_flight < self.controller.limit:
                    now = self.clock()
                    wait = self.controller.wait_time(now)
                    if wait <= 0:
                        self.in_flight += 1
                        self.controller.on_start(now)
                        return
                    self._changed.wait(wait)
                else:
                    self._changed.wait()

    def sleep_before_retry(self, delay: float) -> None:
        """The client's back-off before re-sending (the request keeps its slot), then the pace: retries count
        towards the request rate like new requests."""
        self.sleep(delay)
        with self._changed:
            while (wait := self.controller.wait_time(self.clock())) > 0:
                self._changed.wait(wait)
            self.controller.on_start(self.clock())

    def release(self, *, answered: bool) -> None:
        """The request is over; ``answered``: the server answered it (a success for AIMD)."""
        with self._changed:
            self.in_flight -= 1
            if answered:
                self.controller.on_success()
            self._changed.notify_all()

    def on_retry(self, status: int | None) -> None:
        if status in THROTTLING_STATUSES:
            with self._changed:
                self.throttled += 1
                self.controller.on_throttle(self.clock())

    def describe(self) -> str:
        with self._changed:
            rate = self.controller.rate
            pace = f"{rate:.1f} requests/s" if rate is not None else "unpaced"
            throttled = f", {self.throttled} throttled answer(s) retried" if self.throttled else ""
            return f"{self.controller.limit} connection(s), {pace}{throttled}"
