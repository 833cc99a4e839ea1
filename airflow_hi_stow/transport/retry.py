"""When and how long to wait before re-sending a request."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from airflow_hi_stow.core.results import RetryCause

THROTTLING_STATUSES = frozenset({429, 503})


def retry_cause(status: int | None, *, unreachable: bool = False, timed_out: bool = False) -> RetryCause:
    """The cause of a failed attempt, as counted in a request's ``retries``: from its HTTP status, or (without one)
    from how its connection failed."""
    if status is not None:
        return RetryCause.THROTTLED if status in THROTTLING_STATUSES else RetryCause.SERVER_ERROR
    if unreachable:
        return RetryCause.UNREACHABLE
    return RetryCause.TIMEOUT if timed_out else RetryCause.CONNECTION_LOST


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded attempts, and the server's Retry-After honoured."""

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 300.0
    """A longer Retry-After is capped to this."""
    retry_statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 500, 502, 503, 504}))

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delay(self, attempt: int, retry_after: str | None = None, *, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        jittered = (rng or random).uniform(0, ceiling)
        asked = parse_retry_after(retry_after)
        return max(jittered, min(asked, self.max_retry_after)) if asked is not None else jittered


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP-date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
