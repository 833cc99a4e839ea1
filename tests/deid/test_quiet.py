"""Patient data never reaches a log or a warning, even with pydicom's debug logging on."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from io import BytesIO

import pytest
from pydicom import config, dcmread
from pydicom.dataelem import DataElement

from airflow_hi_stow.deid import DeidentifiedFile, Deidentifier
from airflow_hi_stow.deid.quiet import redact
from tests.deid.conftest import KEY, pydicom_file

MARKER = "Quixote"


@pytest.fixture
def pydicom_debug() -> Iterator[None]:
    config.debug(True)
    yield
    config.debug(False)


def _file_with_bad_values() -> bytes:
    ds = dcmread(pydicom_file("CT_small.dcm"))
    ds.InstitutionName = f"{MARKER} Clinic"
    buffer = BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom complains here too, while the test builds the file
        ds.add(DataElement(0x00081155, "UI", f"1.2.{MARKER}"))  # an invalid UID, which pydicom quotes
        ds.add(DataElement(0x00100030, "DA", f"{MARKER}47"))  # an invalid date
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.usefixtures("pydicom_debug")
def test_no_value_in_logs_or_warnings(caplog: pytest.LogCaptureFixture) -> None:
    data = _file_with_bad_values()
    caplog.clear()
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        result = Deidentifier(KEY).deidentify_bytes(data)
    assert isinstance(result, DeidentifiedFile)
    assert caplog.records, "pydicom's debug log ran"
    assert MARKER not in caplog.text
    assert [str(w.message) for w in escaped] == []  # none escapes: they are logged, redacted
    assert "pydicom warned" in caplog.text  # its warnings are reported, without their values


def test_redact_keeps_the_complaint_and_drops_the_value() -> None:
    assert redact("Invalid value for VR UI: '1.2.Quixote'") == "Invalid value for VR UI (value withheld)"
    assert redact("Expected explicit VR, but found implicit VR") == "Expected explicit VR, but found implicit VR"
