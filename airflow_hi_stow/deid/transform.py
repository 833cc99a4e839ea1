"""The table-driven transform of one dataset: every action of Table E.1-1, at any sequence depth, and private data.

Two walks over the instance: the first records its identifying values and the UIDs to replace (for cleaning free
text, for remapping references held outside the table, and for the residue scan), the second applies the actions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from airflow_hi_stow.deid.dates import shift_date, shift_datetime
from airflow_hi_stow.deid.identifiers import IDENTIFYING_KEYWORD, TEXT_VRS, Identifiers
from airflow_hi_stow.deid.iod import IodTypes, resolve
from airflow_hi_stow.deid.keys import Pseudonyms
from airflow_hi_stow.deid.profile import COMPOUND_CODES, ProfileOptions, ProfileTable, Rule, SafePrivate

# Resolved actions: the table's codes, plus R (keep a sequence and replace the UIDs in it: X/Z/U*) and
# M (a UID outside the table: replaced when it is one this instance's U attributes replace, else kept).
KEEP, REMOVE, EMPTY, DUMMY, UID, CLEAN, REFERENCES, MAYBE_UID = "K", "X", "Z", "D", "U", "C", "R", "M"
_OVERLAY_DATA = 0x3000
_DATE_VRS = frozenset({"DA", "DT"})
# Free text outside the table inside a sequence the table replaces (D: SR content, graphic annotations) is replaced
# by a dummy too, or cleaned where an option cleans the sequence (C).
_FREE_TEXT_VRS = frozenset({"ST", "LT", "UT", "UC"})
_DUMMIES: dict[str, Any] = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000D",
    "IS": "0",
    "DS": "0",
    "PN": "ANONYMIZED",
    "AT": 0,
    "UR": "",
    **dict.fromkeys(("US", "SS", "UL", "SL", "UV", "SV"), 0),
    **dict.fromkeys(("FL", "FD"), 0.0),
    **dict.fromkeys(("OB", "OW", "OD", "OF", "OL", "OV", "UN"), b"\x00\x00"),
}
_DEFAULT_DUMMY = "ANONYMIZED"
_DUMMY_CODE = ("ANON", "99HISTOW", "Removed by de-identification")
# Replacement values kept consistent across instances (one patient stays one patient, one study one image set).
_PSEUDONYMS = {
    0x00100010: ("patient_name", Pseudonyms.patient_name),
    0x00100020: ("patient_id", Pseudonyms.patient_id),
    0x00080050: ("accession_number", Pseudonyms.accession_number),
    0x00200010: ("study_id", Pseudonyms.study_id),
}
_LINKED_UIDS = {0x0020000D: "study_instance_uid", 0x0020000E: "series_instance_uid", 0x00080018: "sop_instance_uid"}


@dataclass(frozen=True)
class LinkageRecord:
    """One original value and its replacement, for the optional linkage export. Holds patient data."""

    kind: str
    original: str
    replacement: str


@dataclass
class InstanceContext:
    """What one instance's transform needs and learns: its IOD, date shift and identifying values."""

    sop_class_uid: str
    shift_days: int | None
    identifiers: Identifiers = field(default_factory=Identifiers)
    linkage: dict[tuple[str, str], str] = field(default_factory=dict)


class Transform:
    """The profile and options applied to datasets; one per process, reused for every instance."""

    def __init__(
        self,
        table: ProfileTable,
        iod_types: IodTypes,
        options: ProfileOptions,
        pseudonyms: Pseudonyms,
        safe_private: Iterable[SafePrivate],
    ) -> None:
        self.table = table
        self.iod_types = iod_types
        self.options = options
        self.pseudonyms = pseudonyms
        self._safe_private = (
            {(s.creator.strip(), s.group, s.element): s.vr for s in safe_private} if options.retain_safe_private else {}
        )
        self._safe_offsets = {(group, element) for _, group, element in self._safe_private}
        self._actions: dict[tuple[str, str, int, str], str] = {}

    # -- actions --------------------------------------------------------------------------------------------

    def action(self, sop_class_uid: str, path: str, tag: int, vr: str) -> str:
        """The resolved action for an attribute at a sequence path (``path`` ends with its own keyword)."""
        key = (sop_class_uid, path, tag, vr)
        found = self._actions.get(key)
        if found is None:
            found = self._actions[key] = self._resolve(sop_class_uid, path, self.table.rule_for(tag), vr)
        return found

    def _resolve(self, sop_class_uid: str, path: str, rule: Rule | None, vr: str) -> str:
        if rule is None:
            if vr == "UI":
                return KEEP if self.options.retain_uids else MAYBE_UID
            if vr in _DATE_VRS and not self.options.retain_longitudinal_full_dates:
                # PS3.15 E.1 allows handling dates by VR: the few outside the table go, or shift with Modified Dates.
                return CLEAN if self.options.retain_longitudinal_modified_dates else REMOVE
            return REMOVE if vr == "PN" else KEEP  # a person's name outside the table (a reviewer's, say) goes too
        code = rule.code(self.options)
        if code == UID and self.options.retain_uids:
            return KEEP  # E.3.9 keeps every UID; the option column lacks a few U rows, e.g. (0040,A124) UID
        if code == "X/Z/U*":
            return REFERENCES
        if code in COMPOUND_CODES:
            return resolve(code, self.iod_types.strength(sop_class_uid, path))
        return code

    # -- first walk: what the instance holds ----------------------------------------------------------------

    def collect(self, ds: Dataset, context: InstanceContext, path: tuple[str, ...] = (), removed: bool = False) -> None:
        """Record the identifying values and the UIDs to replace, without changing ``ds``.

        Elements are read raw and converted only when their value matters, which is most of the speed of a run.
        """
        for tag in list(ds.keys()):
            if tag.is_private or tag.group == 0x0002:
                continue
            vr, keyword = element_vr(ds, tag), tag_keyword(tag)
            action = self.action(context.sop_class_uid, "/".join((*path, keyword)), tag, vr)
            if vr == "SQ":
                replaced = action in (REMOVE, EMPTY) or (action == DUMMY and keyword.endswith("CodeSequence"))
                for item in ds[tag].value or ():
                    self.collect(item, context, (*path, keyword), removed or replaced)
            elif removed or action not in (KEEP, MAYBE_UID, REFERENCES):
                elem = ds[tag]
                if elem.value not in (None, "", b""):
                    _record(context.identifiers, elem, keyword, action)

    # -- second walk: apply ---------------------------------------------------------------------------------

    def apply(self, ds: Dataset, context: InstanceContext, path: tuple[str, ...] = (), free_text: str = KEEP) -> None:
        """Apply the profile to ``ds`` in place, recursing into every sequence that is kept.

        ``free_text`` is the action for free text outside the table, inherited from a sequence coded D or C.
        """
        kept_blocks: set[tuple[int, int]] = set()
        overlay_groups: set[int] = set()
        for tag in list(ds.keys()):
            if tag.is_private:
                if 0x10 <= tag.element <= 0xFF:  # a private creator: kept below while its block holds something
                    continue
                if (tag.group, tag.element & 0xFF) in self._safe_offsets and self._keep_private(ds, ds[tag], context):
                    kept_blocks.add((tag.group, tag.element >> 8))
                else:
                    del ds[tag]
                continue
            if tag.group == 0x0002 or tag.element == 0:  # stray meta or group length: rewritten by the writer
                del ds[tag]
                continue
            vr, keyword = element_vr(ds, tag), tag_keyword(tag)
            action = self.action(context.sop_class_uid, "/".join((*path, keyword)), tag, vr)
            if action == KEEP and vr in _FREE_TEXT_VRS and self.table.rule_for(tag) is None:
                action = free_text
            if action == REMOVE or (action == CLEAN and tag.group & 0xFF00 in (0x5000, 0x6000)):
                # No cleaner for curve or overlay bitmaps: Clean Graphics still removes them here.
                if tag.group & 0xFF00 == 0x6000 and tag.element == _OVERLAY_DATA:
                    overlay_groups.add(tag.group)
                del ds[tag]
            elif action != KEEP or vr == "SQ":  # anything else kept stays raw and is written as it was read
                self._apply_one(ds, ds[tag], action, context, (*path, keyword), free_text)
        remaining: list[BaseTag] = list(ds.keys())
        for tag in remaining:
            creator_unused = (
                tag.is_private and 0x10 <= tag.element <= 0xFF and (tag.group, tag.element) not in kept_blocks
            )
            if creator_unused or tag.group in overlay_groups:  # or an overlay plane without its data
                del ds[tag]

    def _apply_one(
        self,
        ds: Dataset,
        elem: DataElement,
        action: str,
        context: InstanceContext,
        path: tuple[str, ...],
        free_text: str,
    ) -> None:
        if elem.VR == "SQ":
            self._apply_sequence(elem, action, context, path, free_text)
            return
        if elem.tag in _PSEUDONYMS and action in (EMPTY, DUMMY):
            self._pseudonymise(elem, context)
        elif action == EMPTY:
            elem.value = None
        elif action == DUMMY:
            elem.value = _DUMMIES.get(elem.VR, _DEFAULT_DUMMY) if elem.VR != "UI" else self._uids(elem, context, True)
        elif action == UID or (action == MAYBE_UID and elem.VR == "UI"):
            elem.value = self._uids(elem, context, action == UID)
        elif action == CLEAN:
            self._clean(elem, context)

    def _apply_sequence(
        self, elem: DataElement, action: str, context: InstanceContext, path: tuple[str, ...], free_text: str
    ) -> None:
        if action == EMPTY:
            elem.value = Sequence()
        elif action == DUMMY and path[-1].endswith("CodeSequence"):
            code = Dataset()
            code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = _DUMMY_CODE
            elem.value = Sequence([code])
        else:  # K, C, R, U, and D on a sequence that is not a code: the profile applied to each item
            inner = action if action in (DUMMY, CLEAN) else free_text
            for item in elem.value or ():
                self.apply(item, context, path, inner)

    def _pseudonymise(self, elem: DataElement, context: InstanceContext) -> None:
        original = str(elem.value or "").strip()
        if not original:
            elem.value = None
            return
        kind, derive = _PSEUDONYMS[elem.tag]
        replacement = derive(self.pseudonyms, original)
        context.linkage[(kind, original)] = replacement
        elem.value = replacement

    def _uids(self, elem: DataElement, context: InstanceContext, always: bool) -> Any:
        def one(value: str) -> str:
            if not value or not (always or value in context.identifiers.uids):
                return value
            replacement = self.pseudonyms.uid(value)
            kind = _LINKED_UIDS.get(elem.tag)
            if kind and replacement != value:
                context.linkage[(kind, value)] = replacement
            return replacement

        value = elem.value
        if isinstance(value, MultiValue | list):
            return [one(str(v)) for v in value]
        return one(str(value)) if value is not None else None

    def _clean(self, elem: DataElement, context: InstanceContext) -> None:
        if elem.VR in _DATE_VRS:
            self._shift(elem, context)
        elif elem.VR in TEXT_VRS or elem.VR == "PN":
            values = elem.value if isinstance(elem.value, MultiValue | list) else [elem.value]
            cleaned = [context.identifiers.scrub(str(v)) if v is not None else v for v in values]
            elem.value = cleaned if len(cleaned) > 1 else cleaned[0]

    def _shift(self, elem: DataElement, context: InstanceContext) -> None:
        """Modified Dates: shift by the patient's days; Full Dates: keep; otherwise (C outside a date option) empty."""
        if self.options.retain_longitudinal_full_dates:
            return
        if context.shift_days is None:
            elem.value = None
            return
        shift = shift_date if elem.VR == "DA" else shift_datetime
        values = elem.value if isinstance(elem.value, MultiValue | list) else [elem.value]
        shifted = [shift(str(v), context.shift_days) if v else None for v in values]
        kept = [v for v in shifted if v]
        elem.value = (kept if len(kept) > 1 else kept[0]) if kept else None

    # -- private attributes ---------------------------------------------------------------------------------

    def _keep_private(self, ds: Dataset, elem: DataElement, context: InstanceContext) -> bool:
        """Retain Safe Private: keep an allow-listed private attribute (dates shifted under Modified Dates)."""
        if not self._safe_private:
            return False
        tag: BaseTag = elem.tag
        creator_tag = (tag.group << 16) | (tag.element >> 8)
        creator = ds.get(creator_tag)
        if creator is None:
            return False
        vr = self._safe_private.get((str(creator.value).strip(), tag.group, tag.element & 0xFF))
        if vr is None:
            return False
        if vr in _DATE_VRS and self.options.retain_longitudinal_modified_dates:
            if elem.VR == "UN" and isinstance(elem.value, bytes):
                ds[tag] = elem = DataElement(tag, vr, elem.value.decode("ascii", "replace").strip(" \x00"))
            self._shift(elem, context)
        elif elem.VR == "SQ":
            for item in elem.value or ():
                self.apply(item, context, ())
        return True


@cache
def tag_keyword(tag: int) -> str:
    return keyword_for_tag(tag)


def element_vr(ds: Dataset, tag: BaseTag) -> str:
    """The VR of an element without converting its value (from the dictionary for implicit VR data)."""
    raw = ds.get_item(tag)
    vr = raw.VR if raw is not None else None
    if vr:
        return str(vr)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _record(identifiers: Identifiers, elem: DataElement, keyword: str, action: str) -> None:
    values = elem.value if isinstance(elem.value, MultiValue | list) else [elem.value]
    for value in values:
        if value is None:
            continue
        text = str(value)
        if elem.VR == "UI":
            if action in (UID, DUMMY, REMOVE, EMPTY) and not text.startswith("1.2.840.10008."):
                identifiers.add_uid(text, keyword)
        elif elem.VR == "PN":
            identifiers.add_person_name(text, keyword)
        elif elem.VR in _DATE_VRS:
            identifiers.add_date(text, keyword)
        elif elem.VR in TEXT_VRS and IDENTIFYING_KEYWORD.search(keyword):
            identifiers.add_text(text, keyword)
