"""Facts about AWS HealthImaging's DICOMweb STOW-RS service that both the client and the emulator use.

Sources: the HealthImaging developer guide pages "Storing instances with STOW-RS", "Understanding import jobs"
and "Supported transfer syntaxes" (see docs/healthimaging.md for what is and is not publicly confirmed).
"""

from __future__ import annotations

from dataclasses import dataclass

SERVICE = "medical-imaging"
MAX_REQUEST_BYTES = 10**9
"""StoreDICOM/StoreDICOMStudy accept "up to 1GB of DICOM data per request" (taken as the smaller, decimal GB)."""

STUDY_GROUPING_ELEMENTS: tuple[tuple[str, str], ...] = (
    ("00080020", "StudyDate"),
    ("00080050", "AccessionNumber"),
    ("00100020", "PatientID"),
    ("0020000D", "StudyInstanceUID"),
    ("00200010", "StudyID"),
)
SERIES_GROUPING_ELEMENTS: tuple[tuple[str, str], ...] = (
    ("0020000E", "SeriesInstanceUID"),
    ("00200011", "SeriesNumber"),
)
"""The elements HealthImaging compares when it groups instances into image sets; a conflict with the existing
primary image set puts the new instance into a non-primary image set."""


def dicomweb_endpoint(region: str) -> str:
    """The public DICOMweb host of a region."""
    return f"https://dicom-medical-imaging.{region}.amazonaws.com"


@dataclass(frozen=True)
class TransferSyntax:
    """A row of HealthImaging's "Supported transfer syntaxes" table."""

    uid: str
    name: str
    kept: bool
    """Stored in its original encoding (the table's asterisk); otherwise transcoded to the lossless storage format."""
    verified: bool
    """The row was checked against the AWS page; unverified rows are believed listed but were not seen."""


IMPORT_TRANSFER_SYNTAXES: tuple[TransferSyntax, ...] = (
    TransferSyntax("1.2.840.10008.1.2", "Implicit VR Little Endian", kept=False, verified=True),
    # The asterisk of Explicit VR Little Endian applies to binary segmentations only, which HealthImaging does not
    # support otherwise; other data is transcoded.
    TransferSyntax("1.2.840.10008.1.2.1", "Explicit VR Little Endian", kept=False, verified=True),
    TransferSyntax("1.2.840.10008.1.2.1.99", "Deflated Explicit VR Little Endian", kept=False, verified=True),
    TransferSyntax("1.2.840.10008.1.2.2", "Explicit VR Big Endian", kept=False, verified=True),
    TransferSyntax("1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)", kept=True, verified=True),
    TransferSyntax("1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)", kept=False, verified=True),
    TransferSyntax("1.2.840.10008.1.2.4.57", "JPEG Lossless, Non-Hierarchical (Process 14)", kept=False, verified=True),
    TransferSyntax("1.2.840.10008.1.2.4.70", "JPEG Lossless, SV1", kept=False, verified=True),
    TransferSyntax("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless", kept=False, verified=True),
    TransferSyntax("1.2.840.10008.1.2.4.81", "JPEG-LS Near-Lossless", kept=False, verified=True),
    TransferSyntax("1.2.840.10008.1.2.4.90", "JPEG 2000 (Lossless Only)", kept=False, verified=True),
    TransferSyntax("1.2.840.10008.1.2.4.91", "JPEG 2000", kept=True, verified=True),
    TransferSyntax(
        "1.2.840.10008.1.2.4.92", "JPEG 2000 Part 2 Multi-component (Lossless Only)", kept=False, verified=True
    ),
    # Not verified: HealthImaging's own storage format (HTJ2K) and RLE are believed to be in the table; rejecting
    # them would more likely be wrong than accepting them. MPEG/HEVC video rows are left out.
    TransferSyntax("1.2.840.10008.1.2.4.201", "HTJ2K (Lossless Only)", kept=False, verified=False),
    TransferSyntax("1.2.840.10008.1.2.4.202", "HTJ2K with RPCL Options (Lossless Only)", kept=False, verified=False),
    TransferSyntax("1.2.840.10008.1.2.4.203", "HTJ2K", kept=False, verified=False),
    TransferSyntax("1.2.840.10008.1.2.5", "RLE Lossless", kept=False, verified=False),
)
"""The transfer syntaxes an import accepts. That StoreDICOM accepts the same ones is inferred from "same logic as
asynchronous import jobs"."""

LOSSLESS_STORAGE_FORMATS: dict[str, str] = {
    "HTJ2K": "1.2.840.10008.1.2.4.202",
    "JPEG_2000_LOSSLESS": "1.2.840.10008.1.2.4.90",
}
"""CreateDatastore's ``losslessStorageFormat`` -> the StoredTransferSyntaxUID of transcoded instances."""
DEFAULT_LOSSLESS_STORAGE_FORMAT = "HTJ2K"


def accepted_transfer_syntaxes(*, verified_only: bool = False) -> frozenset[str]:
    return frozenset(row.uid for row in IMPORT_TRANSFER_SYNTAXES if row.verified or not verified_only)


def stored_transfer_syntax(transfer_syntax_uid: str, storage_format: str = DEFAULT_LOSSLESS_STORAGE_FORMAT) -> str:
    """The StoredTransferSyntaxUID HealthImaging reports for an instance received in ``transfer_syntax_uid``."""
    kept = any(row.uid == transfer_syntax_uid and row.kept for row in IMPORT_TRANSFER_SYNTAXES)
    return transfer_syntax_uid if kept else LOSSLESS_STORAGE_FORMATS[storage_format]
