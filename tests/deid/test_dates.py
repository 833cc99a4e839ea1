"""Whole-day shifts of DA and DT values."""

from __future__ import annotations

import pytest

from airflow_hi_stow.deid.dates import shift_date, shift_datetime


@pytest.mark.parametrize(
    ("value", "days", "shifted"),
    [
        ("20240305", -7, "20240227"),
        ("20240301", -1, "20240229"),  # a leap day
        ("2024.03.05", -7, "20240227"),  # ACR-NEMA form
        ("20241305", -7, None),  # month 13
        ("2024030", -7, None),
        ("Quixote1", -7, None),
    ],
)
def test_shift_date(value: str, days: int, shifted: str | None) -> None:
    assert shift_date(value, days) == shifted


@pytest.mark.parametrize(
    ("value", "days", "shifted"),
    [
        ("20240305101520.000000", -7, "20240227101520.000000"),
        ("20240305101520+0100", -7, "20240227101520+0100"),
        ("202403", -31, "202402"),  # the precision it had
        ("2024", -366, "2023"),
        ("2024031", -1, None),
        ("2024XX05", -1, None),
    ],
)
def test_shift_datetime(value: str, days: int, shifted: str | None) -> None:
    assert shift_datetime(value, days) == shifted
