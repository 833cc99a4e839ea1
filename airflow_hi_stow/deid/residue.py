"""The residue scan: no identifying value of the original may stand anywhere in the de-identified output.

Searched in every element's text, nested and private ones included, and in the encoded file's bytes. A finding
names the attribute the value came from and where it was found, never the value.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from airflow_hi_stow.deid.identifiers import Identifiers, Token
from airflow_hi_stow.deid.transform import element_vr, tag_keyword

_BULK_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN", "SQ"})


def _texts(ds: Dataset, path: str = "") -> Iterator[tuple[str, str]]:
    """(location, lower-cased text) of every non-bulk element, at any depth; raw values are read as Latin-1."""
    for tag in list(ds.keys()):
        vr = element_vr(ds, tag)
        location = f"{path}{tag_keyword(tag) or tag}"
        if vr == "SQ":
            for index, item in enumerate(ds[tag].value or ()):
                yield from _texts(item, f"{location}[{index}]/")
            continue
        elem = ds.get_item(tag)
        value = elem.value if elem is not None else None
        if value is None or (vr in _BULK_VRS and not (vr in ("OB", "UN") and len(value) <= 65536)):
            continue  # bulk data; private or unknown OB/UN may hold text and is read below
        if isinstance(value, bytes):
            yield location, value.decode("latin-1").lower()
        elif isinstance(value, MultiValue | list):
            yield location, "\\".join(str(v) for v in value).lower()
        else:
            yield location, str(value).lower()


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


def scan_bytes(encoded: bytes, identifiers: Identifiers, pixels: bytes | None = None) -> Token | None:
    """The first identifying value found in the encoded file.

    ASCII values are searched in the bytes as they are (lower-cased); otherwise the file is read as Latin-1, in
    which any byte sequence (UTF-8 included) stands as characters. ``pixels``, the Pixel Data value, is left out when
    it ends the file: the engine never changes pixels (burned-in text is the gate's and the OCR's), and a match in
    pixel bytes would be chance, at the cost of reading the largest part of every file once per value.
    """
    if not len(identifiers):
        return None
    if pixels and len(pixels) > 1024 and encoded.endswith(pixels):
        encoded = encoded[: len(encoded) - len(pixels)]
    if identifiers.ascii_only:
        return identifiers.first_in(encoded.lower())
    return identifiers.first_in(encoded.decode("latin-1").lower())
