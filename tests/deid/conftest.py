"""Fixtures of the de-identification tests: the synthetic study and one de-identified copy of it, shared."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import FileDataset

from airflow_hi_stow.deid import RunReport, deidentify_local
from tests.deid.synthetic import write_study

KEY = bytes(range(32))
OTHER_KEY = bytes(range(100, 140))


@dataclass(frozen=True)
class Run:
    source: Path
    destination: Path
    report: RunReport

    def outputs(self) -> list[Path]:
        return sorted(self.destination.rglob("*.dcm"))

    def datasets(self) -> list[FileDataset]:
        return [dcmread(path) for path in self.outputs()]


@pytest.fixture(scope="session")
def study(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_study(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="session")
def basic_run(study: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The study through the Basic Profile with no option, in this process."""
    destination = tmp_path_factory.mktemp("basic") / "out"
    report = deidentify_local(study[0].parent, destination, KEY, workers=1)
    return Run(study[0].parent, destination, report)


def pydicom_file(name: str) -> str:
    """The path of one of pydicom's bundled test files."""
    path = get_testdata_file(name)
    assert isinstance(path, str), name
    return path
