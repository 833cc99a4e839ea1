"""What a check reports: a problem (what is wrong, and where), and a finding (the problem with its check and the
severity the run gave that check). Neither ever holds a value read from a file."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """What a failed check does to a file."""

    ERROR = "error"
    """The file is quarantined."""
    WARNING = "warning"
    """The finding is reported and the file passes."""
    OFF = "off"
    """The check does not run."""


@dataclass(frozen=True)
class Problem:
    """One thing a check found wrong. ``message`` says what, in words and tags; ``attribute`` names the element
    (a keyword or tag, with its sequence path where nested). Never a value from the file."""

    message: str
    attribute: str | None = None


@dataclass(frozen=True)
class Finding:
    """A problem as the run reports it."""

    check: str
    severity: Severity
    message: str
    attribute: str | None = None

    @classmethod
    def of(cls, check: str, severity: Severity, problem: Problem) -> Finding:
        return cls(check, severity, problem.message, problem.attribute)

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"check": self.check, "severity": self.severity.value, "message": self.message}
        if self.attribute:
            found["attribute"] = self.attribute
        return found
