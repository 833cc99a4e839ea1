"""The typed outcome of storing instances: one result per input, one record per HTTP request."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
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


class RetryCause(StrEnum):
    """Why a request was sent again: the outcome of the attempt before it."""

    THROTTLED = "throttled"
    """429 or 503: the server did not take the request (HealthImaging's throttling, a service busy)."""
    SERVER_ERROR = "server_error"
    """500, 502, 504: the server (or a gateway before it) failed; it may have stored what it had received."""
    TIMEOUT = "timeout"
    """No answer within the read timeout: the server may have stored the request."""
    CONNECTION_LOST = "connection_lost"
    """The connection broke during the request or before its answer: the server may have stored it."""
    UNREACHABLE = "unreachable"
    """No connection could be made (refused, no route, connect timeout, proxy): nothing was sent."""
    EXPIRED_CREDENTIALS = "expired_credentials"
    """A 401/403 for expired credentials, signed again with refreshed ones."""

    @property
    def outcome_unknown(self) -> bool:
        """Whether the server may have stored what the attempt sent (so a re-send may store it twice)."""
        return self in (RetryCause.SERVER_ERROR, RetryCause.TIMEOUT, RetryCause.CONNECTION_LOST)


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
    retries: Mapping[RetryCause, int] = field(default_factory=dict)
    """Re-sends of the request, by the cause of the attempt before."""


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
