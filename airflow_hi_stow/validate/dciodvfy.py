"""The deep IOD check: David Clunie's ``dciodvfy`` (dicom3tools, BSD licence) run as a separate program on one
file, with a timeout. Its messages quote values, so each is reduced to the attribute it names and the kind of
error before it goes anywhere; a crash or a timeout is an unknown result, never a pass."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pydicom.datadict import keyword_dict, keyword_for_tag
from pydicom.dataset import Dataset

from airflow_hi_stow.validate.check import Check, Scope
from airflow_hi_stow.validate.findings import Problem, Severity
from airflow_hi_stow.validate.index import element_vr

CHECK = Check(
    "iod.dciodvfy",
    Severity.OFF,
    "the IOD's modules, attributes and values, by dciodvfy (when installed; a crash is 'unknown', never a pass)",
    Scope.TOOL,
)
CHECKS = (CHECK,)

_MESSAGE = re.compile(r"^(Error|Warning) - (.*)$")
_TAG = re.compile(r"\(0x([0-9a-fA-F]{4}),0x([0-9a-fA-F]{4})\)")
_NAMED = re.compile(r"(?:Element=|attribute )<([^<>]{1,80})>")
_KIND_END = re.compile(r" - |[<>\"'=(\[{]|(?<!Type )[0-9]")
_IOD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{1,80}")
_VALUE_TOKEN = re.compile(r"[A-Za-z0-9]{3,}")
_TEXT_VRS = frozenset({"AE", "AS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UT"})
MAX_KIND = 120
WITHHELD = "a message that could quote a value (withheld)"


class IodStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class IodResult:
    status: IodStatus
    iod: str | None = None
    problems: tuple[Problem, ...] = field(default=())


def run_dciodvfy(executable: str, path: Path, timeout: float, dataset: Dataset | None = None) -> IodResult:
    """Run dciodvfy on ``path``. ``dataset`` (the file's, when it was read) guards the reduced messages: any that
    still holds a word of one of its text values is withheld."""
    try:
        done = subprocess.run([executable, str(path)], capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return IodResult(IodStatus.UNKNOWN, problems=(Problem(f"dciodvfy did not finish within {timeout:g} s"),))
    except OSError as exc:
        return IodResult(IodStatus.UNKNOWN, problems=(Problem(f"dciodvfy could not be run ({type(exc).__name__})"),))
    output = (done.stdout + done.stderr).decode("latin-1").splitlines()
    iod = next((line.strip() for line in output if _is_iod(line)), None)
    errors = [message for line in output if (message := _MESSAGE.match(line)) and message.group(1) == "Error"]
    if done.returncode not in (0, 1):
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit status {done.returncode}"
        return IodResult(IodStatus.UNKNOWN, iod, (Problem(f"dciodvfy crashed ({how}): the IOD was not verified"),))
    if done.returncode == 1 and not errors:
        return IodResult(IodStatus.UNKNOWN, iod, (Problem("dciodvfy failed without naming an error"),))
    if not errors:
        return IodResult(IodStatus.PASSED, iod)
    guard = _value_words(dataset) if dataset is not None else frozenset()
    counted = Counter(reduce_message(message.group(2), guard) for message in errors)
    return IodResult(
        IodStatus.FAILED,
        iod,
        tuple(
            Problem(f"{kind}{f' ({count} times)' if count > 1 else ''}", attribute)
            for (kind, attribute), count in counted.items()
        ),
    )


def _is_iod(line: str) -> bool:
    return bool(_IOD_NAME.fullmatch(line.strip())) and not line.startswith(("Error", "Warning"))


def reduce_message(text: str, guard: frozenset[str] = frozenset()) -> tuple[str, str | None]:
    """(kind, attribute) of a dciodvfy message: the words before its first value-like part (a quote, a bracket, a
    number, an equals sign, " - "), and the attribute it names as a known keyword or tag. Nothing else survives."""
    kind = _KIND_END.split(text, maxsplit=1)[0].strip(" -:;,.")[:MAX_KIND] or "an error"
    if guard & set(_VALUE_TOKEN.findall(kind)):
        kind = WITHHELD
    return kind, _attribute(text)


def _attribute(text: str) -> str | None:
    tag = _TAG.search(text)
    if tag:
        number = int(tag.group(1) + tag.group(2), 16)
        return keyword_for_tag(number) or f"({tag.group(1).upper()},{tag.group(2).upper()})"
    named = _NAMED.search(text)
    if named:
        name = named.group(1).replace(" ", "").replace("'", "")
        if name in keyword_dict:
            return name
        return _KEYWORD_BY_NAME.get(named.group(1))
    return None


def _keywords_by_name() -> dict[str, str]:
    from pydicom.datadict import DicomDictionary

    return {entry[2]: entry[4] for entry in DicomDictionary.values() if entry[4]}


_KEYWORD_BY_NAME = _keywords_by_name()


def _value_words(dataset: Dataset) -> frozenset[str]:
    """Words of the file's top-level text values (names, IDs, dates, descriptions)."""
    words: set[str] = set()
    for element in dataset.elements():
        if element_vr(element) in _TEXT_VRS and element.value:
            raw = element.value if isinstance(element.value, bytes) else str(element.value).encode()
            words.update(_VALUE_TOKEN.findall(raw.decode("latin-1")))
    return frozenset(words)
