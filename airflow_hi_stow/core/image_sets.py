"""How HealthImaging places an incoming instance into an image set (primary or not).

Documented ("Understanding import jobs", "Storing instances with STOW-RS"): the instances of one series become one
primary image set; an instance whose grouping elements conflict with an existing primary image set goes to a
non-primary image set; an instance stored again overwrites the older copy and the image set's version is
incremented. Inferred here: the study-level elements of a new series are also compared with the primary image sets
already holding other series of the same study, and non-primary instances with the same conflicting values share
one non-primary image set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from airflow_hi_stow.core.healthimaging import SERIES_GROUPING_ELEMENTS, STUDY_GROUPING_ELEMENTS

STUDY_KEYWORDS = tuple(keyword for _, keyword in STUDY_GROUPING_ELEMENTS)
GROUPING_KEYWORDS = STUDY_KEYWORDS + tuple(keyword for _, keyword in SERIES_GROUPING_ELEMENTS)

Grouping = Mapping[str, str]
"""Grouping element keyword -> its normalised value ("" when absent)."""


def normalise_grouping(values: Mapping[str, object]) -> dict[str, str]:
    """The grouping elements of an instance, compared as HealthImaging would: trimmed text, numbers as numbers
    (Series Number ``"01"`` equals ``1``), absent equal to empty."""
    grouping = {}
    for keyword in GROUPING_KEYWORDS:
        value = values.get(keyword)
        text = "" if value is None else str(value).strip()
        if keyword == "SeriesNumber" and text.lstrip("+-").isdigit():
            text = str(int(text))
        grouping[keyword] = text
    return grouping


@dataclass(frozen=True)
class ExistingImageSet:
    """An image set already holding instances of the study."""

    image_set_id: str
    series_instance_uid: str
    is_primary: bool
    grouping: Grouping


@dataclass(frozen=True)
class Placement:
    """Where an instance goes. ``image_set_id`` None means a new image set is created."""

    image_set_id: str | None
    is_primary: bool
    conflicts: tuple[str, ...] = ()
    """The grouping elements (keywords) whose values differ from the primary image set's."""


def place_instance(grouping: Grouping, study_image_sets: Sequence[ExistingImageSet]) -> Placement:
    """Choose the image set for an instance, given the image sets of its study (any series, primary or not)."""
    series_uid = grouping["SeriesInstanceUID"]
    same_series = [item for item in study_image_sets if item.series_instance_uid == series_uid]
    primary = next((item for item in same_series if item.is_primary), None)
    if primary is not None:
        conflicts = _differences(grouping, primary.grouping, GROUPING_KEYWORDS)
    else:
        other_primary = next((item for item in study_image_sets if item.is_primary), None)
        conflicts = _differences(grouping, other_primary.grouping, STUDY_KEYWORDS) if other_primary else ()
    if not conflicts:
        return Placement(primary.image_set_id if primary else None, is_primary=True)
    twin = next(
        (item for item in same_series if not item.is_primary and dict(item.grouping) == dict(grouping)),
        None,
    )
    return Placement(twin.image_set_id if twin else None, is_primary=False, conflicts=conflicts)


def _differences(grouping: Grouping, reference: Grouping, keywords: Sequence[str]) -> tuple[str, ...]:
    return tuple(keyword for keyword in keywords if grouping.get(keyword, "") != reference.get(keyword, ""))
