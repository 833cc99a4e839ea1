"""The key and what is derived from it: UIDs, pseudonyms, date shifts."""

from __future__ import annotations

import pickle

import pytest
from pydicom.uid import UID

from airflow_hi_stow.deid import MIN_KEY_BYTES, DeidentificationKey, InvalidKeyError
from airflow_hi_stow.deid.keys import Pseudonyms
from tests.deid.conftest import KEY, OTHER_KEY


@pytest.mark.parametrize("secret", [None, b"", ""])
def test_a_missing_key_is_refused(secret: bytes | str | None) -> None:
    with pytest.raises(InvalidKeyError, match="missing"):
        DeidentificationKey(secret)


def test_a_short_key_is_refused_without_showing_it() -> None:
    secret = b"s3cret-but-short"
    with pytest.raises(InvalidKeyError, match=f"16 bytes; at least {MIN_KEY_BYTES}") as raised:
        DeidentificationKey(secret)
    assert "s3cret" not in str(raised.value)


def test_the_key_never_shows_in_its_repr_and_reaches_worker_processes() -> None:
    key = DeidentificationKey(KEY)
    assert KEY.hex() not in repr(key)
    assert str(KEY) not in repr(key)
    assert key.key_id in repr(key)
    copy = pickle.loads(pickle.dumps(key))  # noqa: S301  (our own bytes, as a process pool sends them)
    assert copy.digest("uid", "1.2.3") == key.digest("uid", "1.2.3")
    assert DeidentificationKey("p" * 32).key_id != key.key_id  # a str key (a connection's password) is accepted


def test_uids_are_keyed_deterministic_valid_2_25_uuids() -> None:
    one, again = Pseudonyms(DeidentificationKey(KEY)), Pseudonyms(DeidentificationKey(KEY))
    other = Pseudonyms(DeidentificationKey(OTHER_KEY))
    original = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    mapped = one.uid(original)
    assert mapped == again.uid(original) != other.uid(original)
    assert mapped.startswith("2.25.")
    assert len(mapped) <= 64
    assert UID(mapped).is_valid
    number = int(mapped.removeprefix("2.25."))
    assert number < 2**128
    assert (number >> 76) & 0xF == 4
    assert one.uid("1.2.840.10008.5.1.4.1.1.2") == "1.2.840.10008.5.1.4.1.1.2"  # well-known: kept
    assert one.uid(original + "1") != mapped


def test_pseudonyms_fit_their_vr_and_differ_by_purpose() -> None:
    names = Pseudonyms(DeidentificationKey(KEY))
    assert names.patient_id("123") != names.study_id("123") != names.accession_number("123")
    assert len(names.patient_id("123")) <= 64
    assert len(names.accession_number("123")) <= 16
    assert len(names.study_id("123")) <= 16
    assert names.patient_name("Doe^John").startswith("ANON^")


def test_date_shift_is_per_patient_whole_weeks_into_the_past() -> None:
    names = Pseudonyms(DeidentificationKey(KEY))
    shifts = {names.date_shift_days(f"patient-{n}") for n in range(200)}
    assert len(shifts) > 150
    assert all(s % 7 == 0 and -3654 <= s <= -364 for s in shifts)
    assert names.date_shift_days("patient-1") == Pseudonyms(DeidentificationKey(KEY)).date_shift_days("patient-1")
