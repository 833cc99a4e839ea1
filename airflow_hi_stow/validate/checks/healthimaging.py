"""What HealthImaging itself rejects or does not support (the facts, with their sources, are in
:mod:`airflow_hi_stow.validate.constraints`)."""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.uid import UID

from airflow_hi_stow.validate import constraints
from airflow_hi_stow.validate.check import file_check
from airflow_hi_stow.validate.findings import Problem, Severity
from airflow_hi_stow.validate.reading import ReadInstance
from airflow_hi_stow.validate.settings import ValidationSettings


@file_check("healthimaging.transfer_syntax", Severity.ERROR, "a transfer syntax HealthImaging imports")
def transfer_syntax(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    uid = file.meta_text("TransferSyntaxUID")
    if uid and uid not in settings.transfer_syntaxes:
        name = UID(uid).name if UID(uid).is_transfer_syntax else "not a standard transfer syntax"
        yield Problem(
            f"{uid} ({name}) is not one HealthImaging imports ({constraints.TRANSFER_SYNTAXES_PAGE})",
            "TransferSyntaxUID",
        )


@file_check("healthimaging.element_length", Severity.ERROR, "values within HealthImaging's element constraints")
def element_length(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    for limit in constraints.ELEMENT_LIMITS:
        value = file.text(limit.keyword)
        if not value:
            continue
        if limit.max_length is not None and len(value) > limit.max_length:
            yield Problem(
                f"{len(value)} characters, more than the {limit.max_length} HealthImaging imports ({limit.source})",
                limit.keyword,
            )
        if limit.max_value is not None:
            try:
                number = int(value)
            except ValueError:
                yield Problem(f"not an integer, as HealthImaging needs ({limit.source})", limit.keyword)
                continue
            if number > limit.max_value:
                yield Problem(f"above the {limit.max_value} HealthImaging accepts ({limit.source})", limit.keyword)


@file_check(
    "healthimaging.binary_segmentation", Severity.ERROR, "not a Binary Segmentation (unsupported by HealthImaging)"
)
def binary_segmentation(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    if file.text("SOPClassUID") == constraints.SEGMENTATION_STORAGE and file.text("SegmentationType") == "BINARY":
        yield Problem(f"a Binary Segmentation: {constraints.UNSUPPORTED_CONTENT}", "SegmentationType")


@file_check(
    "healthimaging.icon_image", Severity.ERROR, "no pixel data in an Icon Image Sequence (unsupported by HealthImaging)"
)
def icon_image(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    for path in file.index.icon_pixel_data:
        yield Problem(f"an icon image with pixel data: {constraints.UNSUPPORTED_CONTENT}", path)


@file_check(
    "healthimaging.instance_size",
    Severity.ERROR,
    "at most 1 GB, the most one StoreDICOM request carries",
    needs_dataset=False,
)
def instance_size(file: ReadInstance, settings: ValidationSettings) -> Iterator[Problem]:
    if file.size > constraints.MAX_INSTANCE_BYTES:
        yield Problem(
            f"{file.size} bytes, more than the {constraints.MAX_INSTANCE_BYTES} one request may carry "
            f"({constraints.STORING_PAGE})"
        )


CHECKS = (transfer_syntax, element_length, binary_segmentation, icon_image, instance_size)
