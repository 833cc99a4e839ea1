"""Reading and writing the few DICOM JSON (PS3.18 Annex F) elements STOW-RS uses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SOP_INSTANCE_UID = "00080018"
STUDY_INSTANCE_UID = "0020000D"
SERIES_INSTANCE_UID = "0020000E"
RETRIEVE_URL = "00081190"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
OTHER_FAILURES_SEQUENCE = "0008119A"
REFERENCED_SOP_CLASS_UID = "00081150"
REFERENCED_SOP_INSTANCE_UID = "00081155"
WARNING_REASON = "00081196"
FAILURE_REASON = "00081197"

JsonObject = Mapping[str, Any]


def values(dataset: JsonObject, tag: str) -> list[Any]:
    """The ``Value`` list of an element; empty when the element or its value is absent.

    Keys are matched case-insensitively, since servers differ in the case of hex digits.
    """
    element = dataset.get(tag)
    if element is None:
        element = next((item for key, item in dataset.items() if key.upper() == tag), None)
    # A decoded answer holds dicts: `type(...) is dict` spares the ABC check run per element of every answer.
    if type(element) is not dict and not isinstance(element, Mapping):
        return []
    value = element.get("Value")
    return list(value) if isinstance(value, list) else []


def first_string(dataset: JsonObject, tag: str) -> str | None:
    found = values(dataset, tag)
    return str(found[0]).strip() if found and found[0] is not None else None


def first_int(dataset: JsonObject, tag: str) -> int | None:
    """An US value; also accepts the number written as a decimal string."""
    found = values(dataset, tag)
    if not found:
        return None
    try:
        return int(found[0])
    except (TypeError, ValueError):
        return None


def sequence_items(dataset: JsonObject, tag: str) -> list[JsonObject]:
    return [item for item in values(dataset, tag) if type(item) is dict or isinstance(item, Mapping)]


def element(vr: str, *items: Any) -> dict[str, Any]:
    """A DICOM JSON element; with no items it has no ``Value`` (a zero-length element)."""
    return {"vr": vr, "Value": list(items)} if items else {"vr": vr}


def sequence(items: Iterable[JsonObject]) -> dict[str, Any]:
    return element("SQ", *items)
