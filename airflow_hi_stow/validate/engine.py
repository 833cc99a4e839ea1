"""One file through every enabled check of one file: read it (one bounded read into memory, or in place when it
is large), run the checks, run dciodvfy when asked, and note what the run checks compare across files."""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from airflow_hi_stow.sources.instances import InstanceFile
from airflow_hi_stow.validate import dciodvfy
from airflow_hi_stow.validate.checks.container import READABLE
from airflow_hi_stow.validate.checks.deid import private_attributes
from airflow_hi_stow.validate.crossfile import Identity, identity_of
from airflow_hi_stow.validate.findings import Finding, Problem, Severity
from airflow_hi_stow.validate.inputs import open_seekable
from airflow_hi_stow.validate.reading import ReadInstance, pydicom_silenced, read_instance
from airflow_hi_stow.validate.registry import FILE_CHECKS
from airflow_hi_stow.validate.settings import ValidationSettings

log = logging.getLogger(__name__)

MAX_FINDINGS_PER_CHECK = 20
"""More findings of one check in one file are summed up in one last finding."""


@dataclass(frozen=True)
class FileVerdict:
    """What the checks of one file found, and what the run checks need of it."""

    name: str
    size: int
    findings: tuple[Finding, ...]
    identity: Identity | None = None
    iod: dciodvfy.IodResult | None = None

    @property
    def failed(self) -> bool:
        return any(finding.severity == Severity.ERROR for finding in self.findings)


def check_instance(file: ReadInstance, settings: ValidationSettings) -> list[Finding]:
    """The findings of every enabled check of one file (pure: no I/O)."""
    findings: list[Finding] = []
    with pydicom_silenced():
        for check in FILE_CHECKS:
            if not settings.enabled(check.name) or (check.needs_dataset and file.dataset is None):
                continue
            assert check.function is not None
            severity = settings.severity(check.name)
            try:
                problems = list(check.function(file, settings))
            except Exception as exc:  # a check that cannot run on this file is a failed check, not a pass
                log.warning("check %s could not run on a file (%s)", check.name, type(exc).__name__)
                problems = [Problem(f"the check could not run on this file ({type(exc).__name__})")]
            findings.extend(_capped(check.name, severity, problems))
    return findings


def _capped(check: str, severity: Severity, problems: list[Problem]) -> Iterator[Finding]:
    for problem in problems[:MAX_FINDINGS_PER_CHECK]:
        yield Finding.of(check, severity, problem)
    if len(problems) > MAX_FINDINGS_PER_CHECK:
        yield Finding(check, severity, f"and {len(problems) - MAX_FINDINGS_PER_CHECK} more of the same check")


def inspect_file(file: InstanceFile, settings: ValidationSettings, key: bytes) -> FileVerdict:
    """Every enabled check of one file; ``key`` keys the digests of the values compared across files."""
    try:
        size = file.size
        with open_seekable(file) as stream:
            if size <= settings.max_in_memory_bytes:
                data = stream.read(settings.max_in_memory_bytes + 1)
                if len(data) <= settings.max_in_memory_bytes:
                    return _inspect(file, io.BytesIO(data), len(data), settings, key)
                stream.seek(0)  # it grew since it was listed: read it in place
                size = stream.seek(0, 2)
                stream.seek(0)
            return _inspect(file, stream, size, settings, key)
    except OSError as exc:
        reason = f"cannot be read ({exc.strerror or type(exc).__name__})"
        return FileVerdict(file.name, 0, (Finding(READABLE.name, Severity.ERROR, reason),))
    except Exception as exc:  # pydicom meeting data nobody foresaw: this file fails, the run goes on
        log.warning("reading a file failed (%s)", type(exc).__name__)
        reason = f"cannot be read: the reader failed ({type(exc).__name__})"
        return FileVerdict(file.name, 0, (Finding(READABLE.name, Severity.ERROR, reason),))


def _inspect(file: InstanceFile, stream: BinaryIO, size: int, settings: ValidationSettings, key: bytes) -> FileVerdict:
    read = read_instance(stream, size, private=settings.enabled(private_attributes.name))
    findings = check_instance(read, settings)
    identity = None
    if read.dataset is not None:
        with pydicom_silenced():
            identity = identity_of(read, key)
    iod = None
    if settings.enabled(dciodvfy.CHECK.name) and settings.dciodvfy and read.p10_problem is None:
        with _local_copy(file, stream) as path, pydicom_silenced():
            iod = dciodvfy.run_dciodvfy(settings.dciodvfy, path, settings.dciodvfy_timeout, read.dataset)
        severity = settings.severity(dciodvfy.CHECK.name)
        findings.extend(_capped(dciodvfy.CHECK.name, severity, list(iod.problems)))
    return FileVerdict(file.name, size, tuple(findings), identity, iod)


@contextmanager
def _local_copy(file: InstanceFile, stream: BinaryIO) -> Iterator[Path]:
    """The file's own path when it is a local file, else a temporary copy of the stream."""
    path = getattr(file, "path", None)
    if isinstance(path, Path):
        yield path
        return
    with tempfile.NamedTemporaryFile(prefix="hi-stow-validate-", suffix=".dcm") as copy:
        stream.seek(0)
        shutil.copyfileobj(stream, copy)
        copy.flush()
        yield Path(copy.name)
