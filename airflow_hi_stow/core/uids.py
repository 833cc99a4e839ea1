"""DICOM UID syntax, as far as sending needs it (PS3.5 §9.1 is stricter; the validation step checks that)."""

from __future__ import annotations

import re

MAX_UID_LENGTH = 64
_DIGITS_AND_DOTS = re.compile(r"[0-9]+(\.[0-9]+)*")
_HEALTHIMAGING_UID = re.compile(r"(?:[0-9][0-9]*|0)(\.(?:[1-9][0-9]*|0))*")
"""The UID pattern of HealthImaging's API shapes (DICOMStudyInstanceUID...): no rule on the first arc."""


def is_valid_uid(value: str) -> bool:
    """What a request can carry: non-empty components of digits separated by dots, at most 64 characters.

    Nothing stricter: real-world files with roots such as ``999.999`` or leading zeros are stored by Orthanc and
    HealthImaging, so refusing them here would lose data; the validation step reports them as warnings.
    """
    return len(value) <= MAX_UID_LENGTH and _DIGITS_AND_DOTS.fullmatch(value) is not None


def matches_healthimaging_pattern(value: str) -> bool:
    """Whether HealthImaging's documented UID pattern accepts ``value`` (at most 64 characters)."""
    return len(value) <= MAX_UID_LENGTH and _HEALTHIMAGING_UID.fullmatch(value) is not None
