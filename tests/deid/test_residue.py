"""The residue scan's search: whole words, case-insensitive, in elements and in encoded bytes."""

from __future__ import annotations

from airflow_hi_stow.deid.identifiers import Identifiers
from airflow_hi_stow.deid.residue import scan_bytes

PIXELS = bytes(range(256)) * 8


def _identifiers() -> Identifiers:
    found = Identifiers()
    found.add_person_name("Quixote^Alonso", "PatientName")
    found.add_text("MRN7734219", "PatientID")
    found.add_uid("1.2.826.0.1.3680043.2.1125.1", "StudyInstanceUID")
    found.add_date("20240305", "StudyDate")
    found.add_text("CT1", "StationName")  # too short to search
    return found


def test_whole_words_case_insensitive() -> None:
    found = _identifiers()
    token = found.first_in("seen by dr. quixote today")
    assert token is not None
    assert token.attribute == "PatientName"
    assert found.first_in("quixotesque") is None
    assert found.first_in("a ct1 scanner") is None
    assert found.first_in("mrn7734219") is not None
    assert found.first_in("1.2.826.0.1.3680043.2.1125.12") is None  # another UID that starts the same
    assert found.first_in("ref 1.2.826.0.1.3680043.2.1125.1 end") is not None


def test_bytes_scan_reads_the_header_and_leaves_out_trailing_pixels() -> None:
    found = _identifiers()
    token = scan_bytes(b"DICM PN ALONSO\x00" + PIXELS, found, PIXELS)
    assert token is not None
    assert token.attribute == "PatientName"
    assert scan_bytes(b"DICM DA 20240305" + PIXELS, found, PIXELS) is not None
    assert scan_bytes(b"DICM " + PIXELS + b" 20240305", found, PIXELS) is not None  # pixels not at the end
    assert scan_bytes(b"DICM " + PIXELS, found, PIXELS) is None
    assert scan_bytes(b"DICM " + PIXELS[:-8] + b" alonso ", found, PIXELS[:-8] + b" alonso ") is None


def test_non_ascii_values_are_found_in_utf8_bytes() -> None:
    found = Identifiers()
    found.add_person_name("Muñoz^José", "PatientName")
    for text in ("name=MUÑOZ", "name=muñoz", "name=José", "name=JOSÉ"):
        token = scan_bytes(text.encode(), found)
        assert token is not None, text
    assert scan_bytes("name=Muñozo".encode(), found) is None


def test_scrub_replaces_identifying_words_only() -> None:
    assert _identifiers().scrub("CT chest for Alonso QUIXOTE, MRN7734219") == "CT chest for *** ***, ***"
