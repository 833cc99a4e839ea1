"""DICOM status codes that STOW-RS responses carry, decoded to their meaning.

Failure reasons come from PS3.18 Table I.2-2, warning reasons from Table I.2-1, and HealthImaging adds its own
warnings (B100, B110, B111) documented on its "warning codes" page.
"""

from __future__ import annotations

_EXACT: dict[int, str] = {
    0x0110: "Processing failure",
    0x0111: "Duplicate SOP Instance",
    0x0122: "Referenced SOP Class not supported",
    0x0124: "Refused: not authorized",
    0xC122: "Referenced Transfer Syntax not supported",
    0xB000: "Coercion of data elements",
    0xB006: "Elements discarded",
    0xB007: "Data set does not match SOP Class",
    0xB100: "HealthImaging transcoding exception: pixel data kept as a blob (retrieve with transfer-syntax=*)",
    0xB110: "HealthImaging frames extraction failure: retrieve the whole instance",
    0xB111: "HealthImaging frame number mismatch",
}

_RANGES: tuple[tuple[int, int, str], ...] = (
    (0xA700, 0xA7FF, "Refused: out of resources"),
    (0xA900, 0xA9FF, "Error: data set does not match SOP Class"),
    (0xC000, 0xCFFF, "Error: cannot understand"),
)


def format_code(code: int) -> str:
    """The code as DICOM writes it: four upper-case hex digits, e.g. ``C122``."""
    return f"{code:04X}"


def describe(code: int) -> str:
    """``"C122 (Referenced Transfer Syntax not supported)"``; unknown codes keep their hex form."""
    meaning = _EXACT.get(code)
    if meaning is None:
        meaning = next((text for low, high, text in _RANGES if low <= code <= high), "unknown reason")
    return f"{format_code(code)} ({meaning})"


def is_warning(code: int) -> bool:
    """Warning codes (Bxxx) mean the instance was stored; anything else is a failure."""
    return 0xB000 <= code <= 0xBFFF
