"""De-identify one instance: a dataset in, a dataset out with findings; or the bytes of a file in, bytes out.

No file system, network or Airflow here: the runner (``runner.py``) or an operator does the I/O around it.
"""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass
from io import BytesIO

from pydicom import dcmread
from pydicom.datadict import dictionary_has_tag, dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.uid import UID, ExplicitVRLittleEndian

from airflow_hi_stow.deid.burned_in import (
    BurnedInPolicy,
    burned_in_reason,
    frames_as_pgm,
    frames_with_text,
    tesseract_path,
)
from airflow_hi_stow.deid.identifiers import Identifiers
from airflow_hi_stow.deid.iod import iod_types
from airflow_hi_stow.deid.keys import DeidentificationKey, Pseudonyms
from airflow_hi_stow.deid.markers import rebuild_file_meta, set_markers
from airflow_hi_stow.deid.profile import ProfileOptions, known_private_dates, profile_table, standard_safe_private
from airflow_hi_stow.deid.quiet import install_log_filter, withheld_values
from airflow_hi_stow.deid.residue import scan_bytes, scan_dataset
from airflow_hi_stow.deid.transform import InstanceContext, LinkageRecord, Transform

logger = logging.getLogger("airflow_hi_stow.deid")
_REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


@dataclass(frozen=True)
class Finding:
    """Why an instance is quarantined. ``reason`` is a stable code; nothing here holds a value of the patient."""

    reason: str  # unreadable, no-file-meta, burned-in, ocr-text, ocr-unreadable, ocr-failed, residue, failed
    detail: str
    attribute: str = ""


@dataclass(frozen=True)
class DatasetResult:
    """A de-identified dataset (changed in place) and what the transform found."""

    dataset: Dataset
    findings: tuple[Finding, ...]
    linkage: tuple[LinkageRecord, ...]
    identifiers: Identifiers  # the original's identifying values, for the scan of the encoded bytes


@dataclass(frozen=True)
class DeidentifiedFile:
    """The encoded de-identified instance and the new UIDs that place it."""

    data: bytes
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    linkage: tuple[LinkageRecord, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def relative_path(self) -> str:
        """The output layout: ``<new Study UID>/<new Series UID>/<new SOP Instance UID>.dcm``."""
        return f"{self.study_instance_uid}/{self.series_instance_uid}/{self.sop_instance_uid}.dcm"


@dataclass(frozen=True)
class Quarantined:
    """An instance that must not flow on, and why."""

    finding: Finding
    notes: tuple[str, ...] = ()


_DAMAGE_KINDS: tuple[tuple[type[Exception], str], ...] = (
    (BytesLengthException, "an element's length does not fit its VR"),
    (NotImplementedError, "an element has an unknown VR"),
    (OSError, "a sequence is damaged or cut short"),
    (ValueError, "an element's value does not fit its VR or the transfer syntax"),
)
UNDEFINED_LENGTH = 0xFFFFFFFF
_TAG = re.compile(r"\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)")


def damaged_element(error: Exception) -> Finding:
    """The finding for an exception met while cleaning or encoding: what kind of damage, and the attribute when
    pydicom's message names its tag (only the tag is taken from the message: the rest may quote the value)."""
    kind = next((text for kind, text in _DAMAGE_KINDS if isinstance(error, kind)), "an element cannot be encoded")
    found = _TAG.search(str(error))
    attribute = ""
    if found:
        tag = int(found[1] + found[2], 16)
        attribute = keyword_for_tag(tag) or f"({found[1].upper()},{found[2].upper()})"
    return Finding("failed", f"de-identification failed: {kind} ({type(error).__name__})", attribute)


def read_without_vrs(ds: Dataset) -> bool:
    """The data set was read as Implicit VR (pydicom reads it so, with a warning, when its syntax says Explicit):
    its elements not converted yet have no VR."""
    for tag in ds.keys():  # noqa: SIM118 (iterating a Dataset converts its elements)
        element = ds.get_item(tag)
        if isinstance(element, RawDataElement):
            return element.VR is None
    return False


def give_vrs(ds: Dataset) -> None:
    """Give every element read without a VR (an Implicit VR data set) its dictionary's VR (UN for a tag the
    dictionary lacks), in every sequence item, so that the writer can encode the data set explicitly. Values stay
    raw (a value that does not convert is written as it was read); sequences and ambiguous VRs are converted."""
    for tag in list(ds.keys()):
        element = ds.get_item(tag)
        if isinstance(element, RawDataElement) and element.VR is None:
            vr = dictionary_VR(tag) if not tag.is_private and dictionary_has_tag(tag) else "UN"
            if vr != "SQ" and " or " not in vr and element.length != UNDEFINED_LENGTH:  # (UN of undefined length: SQ)
                ds[tag] = element._replace(VR=vr)
                continue
        element = ds[tag]
        if element.VR == "SQ":
            for item in element.value:
                give_vrs(item)


class Deidentifier:
    """PS3.15 Annex E de-identification under one key and one set of options; reusable for any number of instances."""

    def __init__(
        self,
        key: DeidentificationKey | bytes | str | None,
        options: ProfileOptions | None = None,
        burned_in: BurnedInPolicy | None = None,
        collect_linkage: bool = False,
    ) -> None:
        self.key = key if isinstance(key, DeidentificationKey) else DeidentificationKey(key)
        self.options = options or ProfileOptions()
        self.burned_in = burned_in or BurnedInPolicy()
        self.collect_linkage = collect_linkage
        self.table = profile_table()
        self._pseudonyms = Pseudonyms(self.key)
        dates = known_private_dates() if self.options.retain_longitudinal_modified_dates else ()
        safe = (*standard_safe_private(), *dates, *self.options.safe_private_extra)
        self._transform = Transform(self.table, iod_types(), self.options, self._pseudonyms, safe)
        install_log_filter()  # from now on pydicom's log records lose their values, in this process
        self._tesseract = tesseract_path() if self.burned_in.ocr else None
        if self.burned_in.ocr and self._tesseract is None:
            logger.warning("tesseract is not installed: the OCR check of burned-in text is skipped")

    def deidentify_dataset(self, ds: Dataset) -> DatasetResult:
        """Apply the profile to ``ds`` in place: actions, private attributes, markers, file meta; then scan it.

        A dataset without file meta (built in memory) gets Explicit VR Little Endian in its new one.
        """
        with withheld_values():
            return self._deidentify_dataset(ds)

    def _deidentify_dataset(self, ds: Dataset) -> DatasetResult:
        meta = getattr(ds, "file_meta", None)
        transfer_syntax = (
            UID(meta.get("TransferSyntaxUID") or ExplicitVRLittleEndian) if meta else ExplicitVRLittleEndian
        )
        patient = str(ds.get("PatientID") or ds.get("PatientName") or "")
        shift = self._pseudonyms.date_shift_days(patient) if self.options.retain_longitudinal_modified_dates else None
        context = InstanceContext(str(ds.get("SOPClassUID", "")), shift)
        self._transform.collect(ds, context)
        self._transform.apply(ds, context)
        findings = []
        missing = [k for k in _REQUIRED_UIDS if not ds.get(k)]
        if missing:
            findings.append(Finding("failed", f"no {missing[0]}", missing[0]))
        else:
            set_markers(ds, self.options, self.table.edition)
            rebuild_file_meta(ds, transfer_syntax)
            hit = scan_dataset(ds, context.identifiers)
            if hit is not None:
                token, location = hit
                findings.append(
                    Finding("residue", f"a value of {token.attribute} remains in {location}", token.attribute)
                )
        linkage: tuple[LinkageRecord, ...] = ()
        if self.collect_linkage:
            records = [LinkageRecord(kind, original, new) for (kind, original), new in context.linkage.items()]
            if shift is not None and patient:
                records.append(LinkageRecord("date_shift_days", patient, str(shift)))
            linkage = tuple(records)
        return DatasetResult(ds, tuple(findings), linkage, context.identifiers)

    def deidentify_bytes(self, data: bytes) -> DeidentifiedFile | Quarantined:
        """A P10 file's bytes in; the de-identified file's bytes out, or the reason it is quarantined."""
        with withheld_values():
            return self._deidentify_bytes(data)

    def _deidentify_bytes(self, data: bytes) -> DeidentifiedFile | Quarantined:
        try:
            ds = dcmread(BytesIO(data))
        except InvalidDicomError:
            return Quarantined(Finding("unreadable", "not a DICOM P10 file (no preamble and DICM prefix)"))
        except Exception as error:  # pydicom's reader raises many kinds; the class name is enough and holds no value
            return Quarantined(Finding("unreadable", f"pydicom could not read it ({type(error).__name__})"))
        if "TransferSyntaxUID" not in ds.file_meta:
            return Quarantined(Finding("no-file-meta", "no File Meta Information (no Transfer Syntax UID)"))
        suspect = burned_in_reason(ds)
        if suspect and not self.burned_in.allow:
            attribute, reason = suspect
            return Quarantined(Finding("burned-in", reason, attribute))
        notes: tuple[str, ...] = ()
        if self.burned_in.ocr:
            if self._tesseract is None:
                notes = ("OCR check skipped: tesseract is not installed",)
            else:
                quarantined = self._ocr(ds)
                if quarantined is not None:
                    return quarantined
        try:
            if read_without_vrs(ds) and not UID(ds.file_meta.TransferSyntaxUID).is_implicit_VR:
                give_vrs(ds)  # an Implicit VR data set under an Explicit VR syntax: written explicitly, with VRs
            result = self._deidentify_dataset(ds)
            if result.findings:
                return Quarantined(result.findings[0], notes)
            buffer = BytesIO()
            result.dataset.save_as(buffer, enforce_file_format=True)
        except Exception as error:  # a damaged element met while cleaning or encoding; never its value
            return Quarantined(damaged_element(error), notes)
        encoded = buffer.getvalue()
        pixels = result.dataset.get_item(0x7FE00010)
        token = scan_bytes(encoded, result.identifiers, pixels.value if pixels is not None else None)
        if token is not None:
            detail = f"a value of {token.attribute} remains in the encoded file"
            return Quarantined(Finding("residue", detail, token.attribute), notes)
        out = result.dataset
        return DeidentifiedFile(
            encoded,
            str(out.StudyInstanceUID),
            str(out.SeriesInstanceUID),
            str(out.SOPInstanceUID),
            result.linkage,
            notes,
        )

    def _ocr(self, ds: Dataset) -> Quarantined | None:
        assert self._tesseract is not None
        try:
            frames = frames_as_pgm(ds)
        except (ValueError, AttributeError) as error:
            return Quarantined(
                Finding("ocr-unreadable", f"the OCR check cannot read the pixels ({error})", "PixelData")
            )
        try:
            flagged = frames_with_text(frames, self._tesseract, self.burned_in.ocr_languages)
        except (RuntimeError, OSError, subprocess.SubprocessError) as error:
            return Quarantined(Finding("ocr-failed", f"the OCR check failed ({type(error).__name__})", "PixelData"))
        if flagged:
            shown = ", ".join(str(n) for n in flagged[:10]) + (" ..." if len(flagged) > 10 else "")
            return Quarantined(Finding("ocr-text", f"OCR read text in frame(s) {shown}", "PixelData"))
        return None
