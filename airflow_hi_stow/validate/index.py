"""One walk over a data set and all its sequences, noting what the recursive checks look at: every UI value (with
the path of its attribute), every private element (with its creator), Icon Image Sequences that hold pixel data,
and sequences that cannot be parsed. Elements are converted only where the walk must look inside (sequences,
private creators); UI values are read from their raw bytes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from airflow_hi_stow.validate.constraints import ICON_IMAGE_SEQUENCE
from airflow_hi_stow.validate.findings import Problem

PIXEL_DATA = 0x7FE00010


@dataclass(frozen=True)
class PrivateElement:
    path: str
    """Where it sits: ``(0009,1001)`` or ``ReferencedImageSequence[1].(0009,1001)``."""
    tag: int
    creator: str | None
    """The private creator of its block (a creator element's own value); None when the block has none."""


@dataclass
class DatasetIndex:
    uids: list[tuple[str, str]] = field(default_factory=list)
    """(attribute path, value) for every value of every non-empty UI element, file meta included."""
    private: list[PrivateElement] = field(default_factory=list)
    icon_pixel_data: list[str] = field(default_factory=list)
    """Paths of Icon Image Sequences with Pixel Data in an item."""
    damage: list[Problem] = field(default_factory=list)


def index_dataset(dataset: Dataset, file_meta: Dataset | None = None, *, private: bool = True) -> DatasetIndex:
    """The index of ``dataset`` (and ``file_meta``); ``private=False`` leaves private elements out of it."""
    index = DatasetIndex()
    if file_meta is not None:
        _walk(file_meta, "", index, private)
    _walk(dataset, "", index, private)
    return index


@cache
def _standard_vr(tag: int) -> str | None:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


@cache
def attribute_name(tag: int) -> str:
    """The keyword of a standard tag, else the tag as ``(gggg,eeee)``."""
    return keyword_for_tag(tag) or str(Tag(tag))


def element_vr(element: DataElement | RawDataElement) -> str | None:
    """The element's VR, from the data dictionary where the file does not say (implicit VR, or UN)."""
    vr = element.VR
    if vr in (None, "UN") and not element.tag >> 16 & 1:
        return _standard_vr(element.tag) or vr
    return vr


def _walk(dataset: Dataset, prefix: str, index: DatasetIndex, private: bool) -> None:
    creators: dict[int, str | None] | None = None
    for tag, element in dataset.items():
        if private and tag >> 16 & 1:
            if creators is None:
                creators = _creators(dataset)
            index.private.append(PrivateElement(f"{prefix}{attribute_name(tag)}", tag, _creator(creators, tag)))
        vr = element_vr(element)
        if vr == "UI":
            path = f"{prefix}{attribute_name(tag)}"
            index.uids.extend((path, value) for value in _uid_values(element))
        elif vr == "SQ":
            path = f"{prefix}{attribute_name(tag)}"
            for number, item in enumerate(_items(dataset, tag, path, index), start=1):
                if tag == ICON_IMAGE_SEQUENCE and PIXEL_DATA in item:
                    index.icon_pixel_data.append(path)
                _walk(item, f"{path}[{number}].", index, private)


def _items(dataset: Dataset, tag: int, path: str, index: DatasetIndex) -> Iterator[Dataset]:
    try:
        value = dataset[tag].value
    except Exception as exc:  # a damaged sequence: pydicom raises many kinds
        index.damage.append(Problem(f"the sequence cannot be read ({type(exc).__name__})", path))
        return
    if value is None:
        return
    for item in value:
        if isinstance(item, Dataset):
            yield item


def _uid_values(element: DataElement | RawDataElement) -> Iterator[str]:
    value = element.value
    if isinstance(element, RawDataElement):
        if not value:
            return
        yield from bytes(value).rstrip(b"\0").decode("latin-1").split("\\")
        return
    if value is None or value == "":
        return
    if isinstance(value, str):
        yield value
    else:
        yield from (str(part) for part in value)


def _creators(dataset: Dataset) -> dict[int, str | None]:
    """(group << 8 | block) -> the private creator of each block of the data set."""
    found: dict[int, str | None] = {}
    for tag, _ in dataset.items():
        if tag >> 16 & 1 and 0x0010 <= tag & 0xFFFF <= 0x00FF:
            try:
                value = dataset[tag].value
            except Exception:  # an unreadable creator is reported as a block without one
                value = None
            found[(tag >> 16) << 8 | (tag & 0xFF)] = str(value).strip() if value else None
    return found


def _creator(creators: dict[int, str | None], tag: int) -> str | None:
    element = tag & 0xFFFF
    if 0x0010 <= element <= 0x00FF:
        block = element
    elif element >= 0x1000:
        block = element >> 8
    else:
        return None
    return creators.get((tag >> 16) << 8 | block)
