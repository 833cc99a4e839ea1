"""DICOM UID syntax (PS3.5 §9.1)."""

from __future__ import annotations

import re

_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
MAX_UID_LENGTH = 64


def is_valid_uid(value: str) -> bool:
    """Digits and dots, no leading zeros in a component, at most 64 characters, first component 0, 1 or 2."""
    return len(value) <= MAX_UID_LENGTH and bool(_UID.match(value)) and value.split(".", 1)[0] in ("0", "1", "2")
