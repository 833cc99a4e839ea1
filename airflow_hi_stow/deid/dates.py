"""Whole-day shifts of DA and DT values (the Modified Dates option); times of day and UTC offsets are kept."""

from __future__ import annotations

import datetime as dt
import re

# A DT: YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX] (PS3.5 6.2); the date part is what a whole-day shift changes.
_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(.*)$")


def shift_date(value: str, days: int) -> str | None:
    """A DA value shifted by ``days``; None when it is not a valid date (the caller then empties it)."""
    text = value.strip()
    if len(text) == 10 and text[4] == "." and text[7] == ".":  # ACR-NEMA "YYYY.MM.DD"
        text = text.replace(".", "")
    try:
        parsed = dt.date(int(text[0:4]), int(text[4:6]), int(text[6:8])) if len(text) == 8 else None
    except ValueError:
        return None
    if parsed is None or not text.isdigit():
        return None
    return _format(parsed + dt.timedelta(days=days), 8)


def shift_datetime(value: str, days: int) -> str | None:
    """A DT value shifted by ``days`` at the precision it had; None when it is not valid."""
    match = _DT.match(value.strip())
    if match is None:
        return None
    year, month, day, rest = match.groups()
    if rest and not (month and day):
        return None
    try:  # a partial date stands for the middle of its month or year, so that it shifts like its full dates
        parsed = dt.date(int(year), int(month or 7), int(day or (15 if month else 1)))
    except ValueError:
        return None
    precision = 4 + (2 if month else 0) + (2 if day else 0)
    return _format(parsed + dt.timedelta(days=days), precision) + rest


def _format(date: dt.date, precision: int) -> str:
    return f"{date.year:04d}{date.month:02d}{date.day:02d}"[:precision]
