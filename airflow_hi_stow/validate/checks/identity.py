"""Identity: the four UIDs every instance needs, and the syntax of every UID anywhere in the file (PS3.5 §9.1).
Duplicates within a run are a run check (:mod:`airflow_hi_stow.validate.crossfile`)."""

from __future__ import annotations

from collections.abc import Iterator

from airflow_hi_stow.validate.check import file_check
from airflow_hi_stow.validate.findings import Problem, Severity
from airflow_hi_stow.validate.reading import ReadInstance
from airflow_hi_stow.validate.settings import ValidationSettings
from airflow_hi_stow.validate.uids import has_registered_root, uid_error

REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


@file_check("identity.required_uids", Severity.ERROR, "SOP Class, SOP Instance, Study and Series UIDs present")
def required_uids(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    for keyword in REQUIRED_UIDS:
        if not file.text(keyword):
            yield Problem("missing or empty", keyword)


@file_check(
    "identity.uid_syntax",
    Severity.ERROR,
    "every UI value, file meta and sequences included: digits and dots, no leading zero, at most 64 characters",
)
def uid_syntax(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    for path, value in file.index.uids:
        error = uid_error(value)
        if error:
            yield Problem(f"not a valid UID: it {error}", path)


@file_check("identity.uid_root", Severity.WARNING, "every valid UID starts with 0, 1 or 2 (a registered root)")
def uid_root(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    for path, value in file.index.uids:
        if uid_error(value) is None and not has_registered_root(value):
            yield Problem("a UID whose first component is not 0, 1 or 2 (an unregistered root)", path)


CHECKS = (required_uids, uid_syntax, uid_root)
