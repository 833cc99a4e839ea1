"""The small, JSON-serialisable summary of an import, and the failure policy evaluated on it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_hi_stow.core.results import InstanceResult, Outcome, RequestRecord, RetryCause

TOP_REASONS = 10
MAX_DISTINCT_REASONS = 1000
"""Distinct reasons counted one by one; further ones are counted together, so memory stays bounded."""
OTHER_REASONS = "(other reasons)"
_PATH = re.compile(r"\S*/\S*")


def reason_key(reason: str) -> str:
    """A reason without the file names or URLs it may quote, so that like reasons count together."""
    return _PATH.sub("...", reason)


@dataclass
class ImportTally:
    """Counts the outcome of every input as results arrive; never keeps the results themselves."""

    counts: Counter[Outcome] = field(default_factory=Counter)
    resumed: int = 0
    """Inputs confirmed stored by an earlier try and not sent again (counted in their outcome too)."""
    bytes_stored: int = 0
    bytes_sent: int = 0
    requests: int = 0
    throttled: int = 0
    """429/503 answers that were retried."""
    retries: Counter[RetryCause] = field(default_factory=Counter)
    """Re-sent requests, by the cause of the attempt before."""
    possibly_stored_twice: int = 0
    """Instances re-sent after an attempt the server may have stored (a lost connection, a timeout, a 5xx other
    than 503): at most this many were uploaded twice."""
    ledger_failures: int = 0
    """Resume-ledger writes that failed (their files would be sent again by a retry)."""
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    studies: set[str] = field(default_factory=set)
    """Studies with at least one stored instance."""

    @property
    def files(self) -> int:
        return sum(self.counts.values())

    def add(self, result: InstanceResult, *, resumed: bool = False) -> None:
        self.counts[result.outcome] += 1
        self.resumed += resumed
        if result.outcome.is_stored:
            self.bytes_stored += result.size
            if result.study_instance_uid:
                self.studies.add(result.study_instance_uid)
        if result.reason and result.outcome is not Outcome.STORED:
            key = (result.outcome.value, reason_key(result.reason))
            if key not in self.reasons and len(self.reasons) >= MAX_DISTINCT_REASONS:
                key = (result.outcome.value, OTHER_REASONS)
            self.reasons[key] += 1

    def add_request(self, record: RequestRecord) -> None:
        self.requests += 1
        self.bytes_sent += record.sent_bytes
        self.throttled += record.throttled
        self.retries.update(record.retries)
        self.possibly_stored_twice += record.instances * sum(
            count for cause, count in record.retries.items() if cause.outcome_unknown
        )

    def summary(self, duration: float, **extra: Any) -> dict[str, Any]:
        """The summary: counts per outcome, bytes, duration, throughput, the most frequent reasons, plus ``extra``
        (manifest URI, image sets...). Its size does not grow with the number of files."""
        seconds = max(duration, 1e-9)
        return {
            "files": self.files,
            "counts": {outcome.value: self.counts.get(outcome, 0) for outcome in Outcome},
            "resumed": self.resumed,
            "bytes_stored": self.bytes_stored,
            "bytes_sent": self.bytes_sent,
            "requests": self.requests,
            "throttled": self.throttled,
            "retries": {cause.value: self.retries.get(cause, 0) for cause in RetryCause},
            "possibly_stored_twice": self.possibly_stored_twice,
            "ledger_failures": self.ledger_failures,
            "duration_seconds": round(duration, 3),
            "throughput_mb_per_s": round(self.bytes_sent / seconds / 1e6, 3),
            "files_per_s": round((self.files - self.resumed) / seconds, 3),
            "studies": len(self.studies),
            "top_reasons": [
                {"outcome": outcome, "reason": reason, "count": count}
                for (outcome, reason), count in self.reasons.most_common(TOP_REASONS)
            ],
            **extra,
        }


@dataclass(frozen=True)
class FailurePolicy:
    """When an import counts as failed: more than ``max_failures`` inputs ended in one of the ``fail_on`` outcomes.

    ``max_failures`` is a count (an int) or a share of all inputs (a float from 0 to 1).
    """

    max_failures: int | float = 0
    fail_on: frozenset[Outcome] = frozenset({Outcome.FAILED, Outcome.UNCONFIRMED})

    @classmethod
    def of(cls, max_failures: int | float, fail_on: Iterable[str | Outcome]) -> FailurePolicy:
        """Validated from user arguments; raises ValueError naming the bad value."""
        if isinstance(max_failures, bool) or not isinstance(max_failures, int | float):
            raise ValueError(f"max_failures must be a count (int) or a share (float from 0 to 1), not {max_failures!r}")
        if isinstance(max_failures, float) and not 0.0 <= max_failures <= 1.0:
            raise ValueError(f"max_failures as a float is a share of the inputs, from 0 to 1, not {max_failures}")
        if isinstance(max_failures, int) and max_failures < 0:
            raise ValueError(f"max_failures must not be negative, not {max_failures}")
        if isinstance(fail_on, str):
            fail_on = [fail_on]
        outcomes = set()
        for value in fail_on:
            try:
                outcomes.add(Outcome(value))
            except ValueError:
                choices = ", ".join(outcome.value for outcome in Outcome)
                raise ValueError(f"fail_on: {value!r} is not an outcome; choose from {choices}") from None
        return cls(max_failures, frozenset(outcomes))

    def allowed(self, files: int) -> int:
        """How many inputs may end in a ``fail_on`` outcome."""
        if isinstance(self.max_failures, float):
            return int(self.max_failures * files)
        return self.max_failures

    def violation(self, counts: Mapping[str, int]) -> str | None:
        """Why the import failed under this policy, or None when it did not."""
        files = sum(counts.values())
        failures = sum(counts.get(outcome.value, 0) for outcome in self.fail_on)
        allowed = self.allowed(files)
        if failures <= allowed:
            return None
        kinds = "/".join(sorted(outcome.value for outcome in self.fail_on))
        return f"{failures} of {files} file(s) ended {kinds}, more than the {allowed} allowed (max_failures)"
