"""The secret key and everything derived from it: UIDs, pseudonyms and date shifts, keyed and deterministic.

Every worker, task and retry that holds the same key maps the same original to the same replacement, with no shared
state; without the key the mapping can be neither reproduced nor reversed (HMAC-SHA256).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

from airflow_hi_stow.deid.errors import InvalidKeyError

MIN_KEY_BYTES = 32  # 256 bits, the output size of HMAC-SHA256 (RFC 2104 section 3: shorter keys weaken it)
WELL_KNOWN_UID_ROOT = "1.2.840.10008."
# Shift dates back by whole weeks (weekdays and intervals preserved), between 1 and about 10 years.
_SHIFT_MIN_WEEKS = 52
_SHIFT_SPAN_WEEKS = 470
_UID_MEMO = 100_000  # replacements remembered per process (a study's UIDs recur in each of its instances)


class DeidentificationKey:
    """A secret of at least ``MIN_KEY_BYTES`` bytes. Its repr and str never show it."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes | str | None) -> None:
        if secret is None or len(secret) == 0:
            raise InvalidKeyError("the de-identification key is missing")
        raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if len(raw) < MIN_KEY_BYTES:
            raise InvalidKeyError(f"the de-identification key is {len(raw)} bytes; at least {MIN_KEY_BYTES} are needed")
        self._secret = raw

    def __repr__(self) -> str:
        return f"DeidentificationKey(id={self.key_id})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[type[DeidentificationKey], tuple[bytes]]:
        return (DeidentificationKey, (self._secret,))

    def digest(self, purpose: str, value: str) -> bytes:
        """HMAC-SHA256 of ``value`` for one purpose; purposes never collide (NUL separated)."""
        message = purpose.encode("ascii") + b"\x00" + value.encode("utf-8", "surrogateescape")
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    @property
    def key_id(self) -> str:
        """A short public fingerprint naming the key in reports (for rotation); it reveals nothing of the key."""
        return self.digest("key-id", "").hex()[:12]


class Pseudonyms:
    """Replacement values derived from a key, memoised per process."""

    def __init__(self, key: DeidentificationKey) -> None:
        self.key = key
        self._uids: dict[str, str] = {}

    def uid(self, original: str) -> str:
        """``2.25.`` + the 128-bit integer of a UUID made from HMAC(key, original); well-known UIDs are kept."""
        if not original or original.startswith(WELL_KNOWN_UID_ROOT):
            return original
        mapped = self._uids.get(original)
        if mapped is None:
            if len(self._uids) >= _UID_MEMO:
                self._uids.clear()
            raw = uuid.UUID(bytes=self.key.digest("uid", original)[:16], version=4)
            mapped = self._uids[original] = f"2.25.{raw.int}"
        return mapped

    def _token(self, purpose: str, original: str, length: int) -> str:
        return base64.b32encode(self.key.digest(purpose, original)).decode("ascii")[:length]

    def patient_id(self, original: str) -> str:
        return "P" + self._token("patient-id", original, 15)

    def patient_name(self, original: str) -> str:
        return "ANON^" + self._token("patient-name", original, 10)

    def accession_number(self, original: str) -> str:
        return "A" + self._token("accession-number", original, 15)

    def study_id(self, original: str) -> str:
        return "S" + self._token("study-id", original, 15)

    def date_shift_days(self, patient: str) -> int:
        """A negative whole number of weeks, in days, the same for every date of one patient."""
        number = int.from_bytes(self.key.digest("date-shift", patient)[:8], "big")
        return -7 * (_SHIFT_MIN_WEEKS + number % _SHIFT_SPAN_WEEKS)
