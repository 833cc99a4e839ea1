"""What a check is: a name, a default severity, a one-line description, and (for checks of one file) the function
that finds its problems. The registry of every check is :mod:`airflow_hi_stow.validate.registry`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from airflow_hi_stow.validate.findings import Problem, Severity
from airflow_hi_stow.validate.reading import ReadInstance

if TYPE_CHECKING:
    from airflow_hi_stow.validate.settings import ValidationSettings

FileCheckFunction = Callable[[ReadInstance, "ValidationSettings"], Iterable[Problem]]


class Scope(StrEnum):
    FILE = "file"
    """Runs on each file alone (a pure function of what was read)."""
    RUN = "run"
    """Compares the files of one run (duplicates, consistency)."""
    TOOL = "tool"
    """Runs an external program on each file."""


@dataclass(frozen=True)
class Check:
    name: str
    """``group.check``: the name users set severities with, and reports show."""
    default: Severity
    description: str
    scope: Scope = Scope.FILE
    function: FileCheckFunction | None = None
    needs_dataset: bool = True
    """Skipped when the file could not be parsed (the container checks say why)."""
    configurable: bool = True

    @property
    def group(self) -> str:
        return self.name.split(".", 1)[0]


def file_check(
    name: str, default: Severity, description: str, *, needs_dataset: bool = True
) -> Callable[[FileCheckFunction], Check]:
    """Declare a function of one file as a check: ``@file_check("pixels.photometric", Severity.ERROR, "...")``."""

    def declare(function: FileCheckFunction) -> Check:
        return Check(name, default, description, Scope.FILE, function, needs_dataset)

    return declare
