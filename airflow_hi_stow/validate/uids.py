"""The strict DICOM UID rules of PS3.5 §9.1, each failure named (unlike ``core.uids``, which only answers yes or no
for the client).

https://dicom.nema.org/medical/dicom/current/output/chtml/part05/chapter_9.html
"""

from __future__ import annotations

import re

MAX_UID_LENGTH = 64
"""PS3.5 §9.1 (HealthImaging accepts longer ones, up to 256; see :mod:`.constraints`)."""
REGISTERED_ROOTS = frozenset({"0", "1", "2"})
"""The first arc of every OID: 0 (ITU-T), 1 (ISO), 2 (joint ISO/ITU-T)."""

_VALID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*")
_DIGITS_AND_DOTS = re.compile(r"[0-9]+(?:\.[0-9]+)*")


def uid_error(value: str) -> str | None:
    """Why ``value`` is not a UID (an empty value, a character other than digits and dots, an empty component, a
    leading zero, more than 64 characters), or None when it is one. The reason never quotes the value."""
    if len(value) <= MAX_UID_LENGTH and _VALID.fullmatch(value):
        return None
    if not value:
        return "is empty"
    if len(value) > MAX_UID_LENGTH:
        return f"is longer than {MAX_UID_LENGTH} characters ({len(value)})"
    if not _DIGITS_AND_DOTS.fullmatch(value):
        if value.strip(" ") != value:
            return "is padded with spaces (UIDs are padded with a NUL byte)"
        if set(value) <= set("0123456789."):
            return "has an empty component (two dots in a row, or a dot at either end)"
        return "holds characters other than digits and dots"
    return "has a component with a leading zero"


def has_registered_root(value: str) -> bool:
    """Whether the first arc is 0, 1 or 2. Others (``999.``, ``9.8.7``) break PS3.5 but HealthImaging and Orthanc
    accept them."""
    return value.split(".", 1)[0] in REGISTERED_ROOTS
