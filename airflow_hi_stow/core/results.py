"""The typed outcome of storing instances: one result per input, one record per HTTP request."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """What happened to one input. Every input ends in exactly one of these."""

    STORED = "stored"
    STORED_WITH_WARNING = "stored_with_warning"
    FAILED = "failed"
    """Sent, and the server reported a failure (or the request failed for good)."""
    REJECTED = "rejected"
    """Never sent: it failed a check before sending (not DICOM, wrong study, ...)."""
    UNCONFIRMED = "unconfirmed"
    """Sent, but the response named it neither as stored nor as failed."""

    @property
    def is_stored(self) -> bool:
        return self in (Outcome.STORED, Outcome.STORED_WITH_WARNING)


@dataclass(frozen=True)
class InstanceResult:
    """The outcome for one input file. ``reason`` never holds patient data."""

    source: str
    outcome: Outcome
    size: int = 0
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    reason_code: int | None = None
    reason: str | None = None
    retrieve_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form, without empty fields (every field is a plain value: no deep copy needed)."""
        return {key: value for key in _RESULT_FIELDS if (value := getattr(self, key)) is not None}


_RESULT_FIELDS = tuple(InstanceResult.__dataclass_fields__)


@dataclass(frozen=True)
class RequestRecord:
    """One STOW-RS request as sent, after its retries."""

    status_code: int | None
    request_id: str | None
    instances: int
    sent_bytes: int
    attempts: int
    throttled: int
    """Attempts answered 429 or 503 before the final one."""
    elapsed_seconds: float
    retrieve_url: str | None = None
    other_failures: tuple[str, ...] = ()
    """Described reasons from OtherFailuresSequence, not tied to an instance."""


@dataclass(frozen=True)
class StoreResult:
    """The outcome of storing a set of inputs, over one or more requests."""

    instances: tuple[InstanceResult, ...]
    requests: tuple[RequestRecord, ...] = ()

    @property
    def status_code(self) -> int | None:
        """HTTP status of the last request; None when nothing was sent."""
        return self.requests[-1].status_code if self.requests else None

    @property
    def request_id(self) -> str | None:
        return self.requests[-1].request_id if self.requests else None

    @property
    def all_stored(self) -> bool:
        return all(result.outcome.is_stored for result in self.instances)

    def counts(self) -> dict[str, int]:
        """Number of instances per outcome, every outcome present."""
        counted = Counter(result.outcome for result in self.instances)
        return {outcome.value: counted.get(outcome, 0) for outcome in Outcome}

    def __add__(self, other: StoreResult) -> StoreResult:
        return StoreResult(self.instances + other.instances, self.requests + other.requests)
