"""The injected error answers of the stack runs (load test, Celery scale test)."""

from __future__ import annotations

INJECTED_STATUSES = (503, 500, 429)


def error_faults(rate: float) -> list[str]:
    """``hi-stow emulator`` arguments: answer ``rate`` of the STOW-RS requests with 503, 500 or 429 in turn, with
    no Retry-After wait."""
    statuses = ",".join(map(str, INJECTED_STATUSES))
    return ["--fail-rate", str(rate), "--fail-status", statuses, "--retry-after", "0"]
