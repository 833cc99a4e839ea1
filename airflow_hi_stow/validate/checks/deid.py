"""The de-identification gate (off unless a pipeline asks for it): the file says its identity was removed and how
(PS3.15 E.1, PS3.3 C.7.1.1), and it keeps no private attribute beyond an allow-list."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

from airflow_hi_stow.validate.check import file_check
from airflow_hi_stow.validate.findings import Problem, Severity
from airflow_hi_stow.validate.index import PrivateElement
from airflow_hi_stow.validate.reading import ReadInstance
from airflow_hi_stow.validate.settings import PrivateAttribute, ValidationSettings

_PRINTABLE_CREATOR = re.compile(r"[A-Za-z0-9 _.\-/]{1,64}")


@file_check(
    "deid.identity_removed",
    Severity.OFF,
    "Patient Identity Removed is YES and the de-identification method is recorded",
)
def identity_removed(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    assert file.dataset is not None
    if file.text("PatientIdentityRemoved") != "YES":
        yield Problem("is not YES", "PatientIdentityRemoved")
    method = file.dataset.get("DeidentificationMethodCodeSequence")
    if not file.text("DeidentificationMethod") and not (method is not None and method.value):
        yield Problem("neither DeidentificationMethod nor DeidentificationMethodCodeSequence records the method")


@file_check("deid.private_attributes", Severity.OFF, "no private attribute beyond the allow-list")
def private_attributes(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    allowed = settings.private_allow_list
    creators = {(item.creator, item.group) for item in allowed}
    blocks: Counter[tuple[str, str]] = Counter()
    for element in file.index.private:
        if not _allowed(element, allowed, creators):
            blocks[_block(element)] += 1
    for (where, creator), count in sorted(blocks.items()):
        yield Problem(f"{count} private element(s) of {creator} not on the allow-list", where)


def _allowed(element: PrivateElement, allowed: frozenset[PrivateAttribute], creators: set[tuple[str, int]]) -> bool:
    group, number = element.tag >> 16, element.tag & 0xFFFF
    if element.creator is None:
        return False
    if number <= 0x00FF:  # a private creator element: allowed when an element of its creator is
        return (element.creator, group) in creators
    return PrivateAttribute(element.creator, group, number & 0xFF) in allowed


def _block(element: PrivateElement) -> tuple[str, str]:
    """Where the element's block sits (its sequence path and ``(gggg,xxee)`` form) and its creator, printable."""
    group, number = element.tag >> 16, element.tag & 0xFFFF
    prefix = element.path.rsplit(".", 1)[0] + "." if "." in element.path else ""
    creator = element.creator or "no private creator"
    if not _PRINTABLE_CREATOR.fullmatch(creator):
        creator = "an unprintable private creator"
    else:
        creator = f"private creator {creator!r}"
    if number >= 0x1000:
        block = f"({group:04X},{number >> 8:02X}xx)"
    elif number >= 0x0010:
        block = f"({group:04X},{number:02X}xx)"
    else:
        block = f"({group:04X},{number:04X})"
    return f"{prefix}{block}", creator


CHECKS = (identity_removed, private_attributes)
