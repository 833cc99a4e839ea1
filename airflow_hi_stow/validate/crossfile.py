"""Checks across the files of one run: no SOP Instance UID twice, and the instances of one study (one series)
agreeing on the elements HealthImaging groups image sets by, which would otherwise put some of them into
non-primary image sets. Values are compared as keyed digests: the run holds no patient value to compare."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from airflow_hi_stow.core.healthimaging import SERIES_GROUPING_ELEMENTS, STUDY_GROUPING_ELEMENTS
from airflow_hi_stow.validate.check import Check, Scope
from airflow_hi_stow.validate.findings import Problem, Severity
from airflow_hi_stow.validate.reading import ReadInstance

STUDY_ATTRIBUTES = (
    *(keyword for _, keyword in STUDY_GROUPING_ELEMENTS if keyword != "StudyInstanceUID"),
    "PatientName",
)
"""HealthImaging's study-level grouping elements, and Patient's Name (whether HealthImaging compares it is not
documented; instances of one study that disagree on it are wrong anyway)."""
SERIES_ATTRIBUTES = (*(keyword for _, keyword in SERIES_GROUPING_ELEMENTS if keyword != "SeriesInstanceUID"),)
SERIES_STUDY = "StudyInstanceUID"
"""Compared per series as well: a series belongs to one study."""

DUPLICATES = Check(
    "identity.duplicate_sop_instance",
    Severity.ERROR,
    "no SOP Instance UID twice in a run (later copies are duplicates of the first)",
    Scope.RUN,
)
STUDY = Check(
    "consistency.study",
    Severity.WARNING,
    f"the instances of a study agree on {', '.join(STUDY_ATTRIBUTES)} (error: quarantine the minority)",
    Scope.RUN,
)
SERIES = Check(
    "consistency.series",
    Severity.WARNING,
    "the instances of a series agree on SeriesNumber and their study (error: quarantine the minority)",
    Scope.RUN,
)
CHECKS = (DUPLICATES, STUDY, SERIES)


@dataclass(frozen=True)
class Identity:
    """The identifiers of one instance and digests of its grouping values (in the order of the attributes)."""

    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    study_values: tuple[bytes, ...]
    series_values: tuple[bytes, ...]


def identity_of(file: ReadInstance, key: bytes) -> Identity | None:
    """None without the UIDs a comparison needs (``identity.required_uids`` reports that)."""
    sop, study, series = (file.text(k) for k in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"))
    if not (sop and study and series):
        return None
    return Identity(
        sop,
        study,
        series,
        study_values=tuple(_digest(_normalised(file, k), key) for k in STUDY_ATTRIBUTES),
        series_values=tuple(_digest(_normalised(file, k), key) for k in (*SERIES_ATTRIBUTES, SERIES_STUDY)),
    )


def _normalised(file: ReadInstance, keyword: str) -> str:
    value = file.text(keyword)
    if keyword == "SeriesNumber" and value.lstrip("+-").isdigit():
        return str(int(value))
    return value


def _digest(value: str, key: bytes) -> bytes:
    return hashlib.blake2b(value.encode("utf-8", "surrogateescape"), key=key, digest_size=16).digest()


def duplicates(identities: Sequence[Identity | None]) -> dict[int, int]:
    """Position of each later instance -> position of the first with its SOP Instance UID (None entries, files
    already failing, take no part)."""
    first: dict[str, int] = {}
    found: dict[int, int] = {}
    for position, identity in enumerate(identities):
        if identity is None:
            continue
        owner = first.setdefault(identity.sop_instance_uid, position)
        if owner != position:
            found[position] = owner
    return found


@dataclass(frozen=True)
class Conflict:
    """Instances of one study or series that disagree: on which attributes, and who is in the minority."""

    level: str
    uid: str
    attributes: tuple[str, ...]
    instances: int
    minority: dict[int, tuple[str, ...]]
    """Position -> the attributes on which that instance differs from the majority."""

    def to_dict(self, names: Sequence[str]) -> dict[str, Any]:
        return {
            "level": self.level,
            f"{self.level}_instance_uid": self.uid,
            "attributes": list(self.attributes),
            "instances": self.instances,
            "minority": [names[position] for position in sorted(self.minority)],
        }

    def problem(self, position: int) -> Problem:
        differing = self.minority[position]
        return Problem(
            f"differs from the other instances of its {self.level} ({self.instances} in this run) on "
            f"{', '.join(differing)}: HealthImaging would put it into a non-primary image set",
            ", ".join(differing),
        )


def conflicts(identities: Sequence[Identity | None], level: str) -> list[Conflict]:
    """The disagreements within each study (``level="study"``) or series (``"series"``). The majority is the
    value most instances hold; on a tie, the value of the first instance."""
    attributes = STUDY_ATTRIBUTES if level == "study" else (*SERIES_ATTRIBUTES, SERIES_STUDY)
    groups: dict[str, list[int]] = defaultdict(list)
    for position, identity in enumerate(identities):
        if identity is not None:
            groups[identity.study_instance_uid if level == "study" else identity.series_instance_uid].append(position)
    found = []
    for uid, positions in groups.items():
        rows = {p: _values(identities[p], level) for p in positions}
        majority = [Counter(row[i] for row in rows.values()).most_common(1)[0][0] for i in range(len(attributes))]
        minority = {
            p: differing
            for p, row in rows.items()
            if (differing := tuple(a for i, a in enumerate(attributes) if row[i] != majority[i]))
        }
        if minority:
            differing = tuple(a for a in attributes if any(a in d for d in minority.values()))
            found.append(Conflict(level, uid, differing, len(positions), minority))
    return found


def _values(identity: Identity | None, level: str) -> tuple[bytes, ...]:
    assert identity is not None
    return identity.study_values if level == "study" else identity.series_values
