"""The identifying values of one original instance, and searching text or encoded bytes for them.

Used twice: to clean free text (option code C) and, after de-identification, by the residue scan. The values live in
memory only for the instance being processed; nothing here logs, prints or returns them, only the attribute they came
from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_TOKEN = 4  # shorter values would match everywhere (pixel bytes included)
MIN_DIGITS_TOKEN = 6  # a short number is as likely a slice location or a pixel run as an identifier
_PN_SPLIT = re.compile(r"[\^=]+")
SCRUBBED = "***"
# Words of the engine's own replacement values (dummies, the dummy date): an original holding one of them (already
# anonymised data often says "ANON") is not found again in every output.
OWN_WORDS = frozenset({"anon", "anonymized", "removed", "99histow", "removed by de-identification", "19000101"})

# Keywords of the attributes whose removed or replaced values are identifying (names, IDs, accession, addresses,
# device and station identifiers...). PN, DA and DT values always are; descriptions and comments are not.
IDENTIFYING_KEYWORD = re.compile(
    r"Name|ID$|IDs|Identifier|Number|Address|Serial|Station|Institution|Department|Telephone|Accession|"
    r"Location|Locator|Physician|Operator|Author|Issuer|Room|Bed|Insurance|Branch|Country|Region|Occupation|"
    r"Organization|Contact|Label|Signature|Facility|Site"
)
# Text VRs whose values can identify; CS (coded strings such as "TEXT" or "CHEST") cannot, and would match everywhere.
TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "AE", "UR"})


@dataclass(frozen=True)
class Token:
    """One identifying value, lower-cased, and the keyword of the attribute it came from."""

    text: str
    attribute: str
    uid: bool = False

    def _joins(self, char: str | bytes) -> bool:
        return bool(char) and (char.isalnum() or char in ("_", b"_") or (self.uid and char in (".", b".")))

    def occurs_in(self, haystack: str | bytes) -> bool:
        """True when the value stands in ``haystack`` (lower-cased; bytes for ASCII values) as a whole word."""
        needle: str | bytes = self.text if isinstance(haystack, str) else self.text.encode("ascii")
        start, size = 0, len(needle)
        while (found := haystack.find(needle, start)) >= 0:  # type: ignore[arg-type]
            before, after = haystack[found - 1 : found] if found else "", haystack[found + size : found + size + 1]
            if not self._joins(before) and not self._joins(after):
                return True
            start = found + 1
        return False


class Identifiers:
    """The identifying values of one instance, each once, with the attribute that first held it."""

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        self.uids: set[str] = set()

    def __len__(self) -> int:
        return len(self._tokens)

    def _add(self, value: str, attribute: str, uid: bool = False) -> None:
        text = value.strip().lower()
        minimum = MIN_DIGITS_TOKEN if text.replace(".", "").isdigit() else MIN_TOKEN
        if len(text) < minimum or text in self._tokens or text in OWN_WORDS:
            return
        self._tokens[text] = Token(text, attribute, uid)
        if not text.isascii():
            # As it stands in a UTF-8 file read as Latin-1: case folds byte by byte there, so each case is a form.
            for variant in (value.strip(), text, text.upper()):
                form = variant.encode("utf-8").decode("latin-1").lower()
                self._tokens.setdefault(form, Token(form, attribute, uid))

    def add_text(self, value: str, attribute: str) -> None:
        self._add(value, attribute)

    def add_person_name(self, value: str, attribute: str) -> None:
        self._add(value, attribute)
        for part in _PN_SPLIT.split(value):
            self._add(part, attribute)

    def add_date(self, value: str, attribute: str) -> None:
        """A DA or DT value: its date part (YYYYMMDD) is what must not survive."""
        date = value.strip()[:8]
        if len(date) == 8 and date.isdigit():
            self._add(date, attribute)

    def add_uid(self, value: str, attribute: str) -> None:
        self.uids.add(value)
        self._add(value, attribute, uid=True)

    @property
    def ascii_only(self) -> bool:
        """True when every value is ASCII, so that encoded bytes can be searched without decoding them."""
        return all(token.text.isascii() for token in self._tokens.values())

    def first_in(self, haystack: str | bytes) -> Token | None:
        """The first identifying value standing in ``haystack`` (lower-cased by the caller; bytes if ascii_only)."""
        return next((token for token in self._tokens.values() if token.occurs_in(haystack)), None)

    def scrub(self, text: str) -> str:
        """``text`` with every identifying value replaced by ``***`` (option code C for free text)."""
        lowered = text.lower()
        for token in self._tokens.values():
            if token.occurs_in(lowered):
                text = re.sub(rf"(?<![0-9A-Za-z_]){re.escape(token.text)}(?![0-9A-Za-z_])", SCRUBBED, text, flags=re.I)
                lowered = text.lower()
        return text
