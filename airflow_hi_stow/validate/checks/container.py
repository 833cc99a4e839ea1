"""The DICOM P10 container (PS3.10 §7.1): preamble and prefix, a complete file meta group that agrees with the
data set, a readable transfer syntax, and a file that is whole."""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.uid import UID, PrivateTransferSyntaxes

from airflow_hi_stow.validate.check import Check, Scope, file_check
from airflow_hi_stow.validate.findings import Problem, Severity
from airflow_hi_stow.validate.reading import ReadInstance
from airflow_hi_stow.validate.settings import ValidationSettings

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
REQUIRED_META = (
    (0x00020000, "FileMetaInformationGroupLength"),
    (0x00020001, "FileMetaInformationVersion"),
    (0x00020002, "MediaStorageSOPClassUID"),
    (0x00020003, "MediaStorageSOPInstanceUID"),
    (0x00020010, "TransferSyntaxUID"),
    (0x00020012, "ImplementationClassUID"),
)
"""The Type 1 elements of the File Meta Information (PS3.10 Table 7.1-1)."""


@file_check("container.p10", Severity.ERROR, "a 128-byte preamble and the 'DICM' prefix", needs_dataset=False)
def p10(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    if file.p10_problem:
        yield file.p10_problem


@file_check("container.file_meta", Severity.ERROR, "the Type 1 file meta elements present, the group length right")
def file_meta(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    assert file.dataset is not None
    meta = file.dataset.file_meta
    for tag, keyword in REQUIRED_META:
        element = meta.get(tag)
        if element is None or element.value in (None, "", b""):
            yield Problem("missing or empty in the file meta information", keyword)
    if file.meta_length is None:
        yield Problem("the file meta information is not encoded in Explicit VR Little Endian")
        return
    stated = meta.get(0x00020000)
    if stated is not None and isinstance(stated.value, int) and stated.value != file.meta_length:
        yield Problem(
            f"states {stated.value} bytes of file meta information, the group holds {file.meta_length}",
            "FileMetaInformationGroupLength",
        )


@file_check(
    "container.media_storage_uids", Severity.ERROR, "Media Storage SOP Class/Instance UIDs equal SOPClassUID/Instance"
)
def media_storage_uids(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    for meta_keyword, keyword in (
        ("MediaStorageSOPClassUID", "SOPClassUID"),
        ("MediaStorageSOPInstanceUID", "SOPInstanceUID"),
    ):
        in_meta, in_dataset = file.meta_text(meta_keyword), file.text(keyword)
        if in_meta and in_dataset and in_meta != in_dataset:
            yield Problem(f"differs from {keyword} in the data set", meta_keyword)


@file_check("container.transfer_syntax", Severity.ERROR, "a known transfer syntax, and the data set encoded in it")
def transfer_syntax(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    uid = file.meta_text("TransferSyntaxUID")
    if not uid:
        return
    if not UID(uid).is_transfer_syntax and uid not in PrivateTransferSyntaxes:
        yield Problem("is not a transfer syntax pydicom knows: the data set's encoding is unknown", "TransferSyntaxUID")
    elif file.switched_vr:
        yield Problem("the data set is not encoded with the implicit/explicit VR its transfer syntax declares")


@file_check(
    "container.integrity",
    Severity.ERROR,
    "the whole file reads: not truncated, no damaged element",
    needs_dataset=False,
)
def integrity(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    yield from file.damage


@file_check("container.dicomdir", Severity.ERROR, "not a DICOMDIR (a media directory, not an instance)")
def dicomdir(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    classes = {file.meta_text("MediaStorageSOPClassUID"), file.text("SOPClassUID")}
    if MEDIA_STORAGE_DIRECTORY in classes:
        yield Problem("a DICOMDIR (media directory), not an instance to store")


READABLE = Check(
    "container.readable",
    Severity.ERROR,
    "the input can be opened and read (always an error: what cannot be read cannot be passed on)",
    Scope.FILE,
    needs_dataset=False,
    configurable=False,
)
"""Reported by the engine when reading fails; it has no function of its own."""

CHECKS = (READABLE, p10, file_meta, media_storage_uids, transfer_syntax, integrity, dicomdir)
