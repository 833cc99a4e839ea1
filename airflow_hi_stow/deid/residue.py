"""The residue scan: no identifying value of the original may stand anywhere in the de-identified output.

Searched in every element's text, nested and private ones included, and in the encoded file's bytes. A finding
names the attribute the value came from and where it was found, never the value.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from airflow_hi_stow.deid.identifiers import Identifiers, Token

_BULK_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN", "SQ"})


def _texts(ds: Dataset, path: str = "") -> Iterator[tuple[str, str]]:
    """(location, lower-cased text) of every non-bulk element, at any depth."""
    for elem in ds:
        location = f"{path}{elem.keyword or elem.tag}"
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value or ()):
                yield from _texts(item, f"{location}[{index}]/")
        elif elem.VR not in _BULK_VRS and elem.value is not None:
            value = elem.value
            text = "\\".join(str(v) for v in value) if isinstance(value, MultiValue | list) else str(value)
            yield location, text.lower()
        elif elem.VR in ("OB", "UN") and isinstance(elem.value, bytes) and len(elem.value) <= 65536:
            yield location, elem.value.decode("latin-1").lower()  # private or unknown data that may hold text


def scan_dataset(ds: Dataset, identifiers: Identifiers) -> tuple[Token, str] | None:
    """The first identifying value found in the output dataset and where, or None."""
    if not len(identifiers):
        return None
    texts = list(_texts(ds))
    if identifiers.first_in("\x00".join(text for _, text in texts)) is None:
        return None
    for location, text in texts:
        token = identifiers.first_in(text)
        if token is not None:
            return token, location
    return None


def scan_bytes(encoded: bytes, identifiers: Identifiers) -> Token | None:
    """The first identifying value found in the encoded file, read as Latin-1 so any byte sequence matches."""
    if not len(identifiers):
        return None
    return identifiers.first_in(encoded.decode("latin-1").lower())
