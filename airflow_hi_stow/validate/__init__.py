"""Pre-import validation: catch what HealthImaging would reject or mis-file before sending, without Airflow.

The whole run, over any source ``StoreDicomOperator`` takes (paths, globs, ``s3://`` prefixes, file lists)::

    from pathlib import Path

    from airflow_hi_stow.sources.resolve import resolve_sources
    from airflow_hi_stow.storage.locations import LocalLocation
    from airflow_hi_stow.validate import ValidationSettings, validate_files

    run = validate_files(
        resolve_sources(["/data/incoming"]),
        quarantine=LocalLocation(Path("/data/quarantine/run-1")),
        output=LocalLocation(Path("/data/validation/run-1")),
        settings=ValidationSettings.of({"deid": "error"}),
        max_failures=0.05,
    )
    run.store_source  # the good files, as StoreDicomOperator(source=...) takes them

One file, no I/O beyond the stream: :func:`read_instance` then :func:`check_instance`. The checks, their default
severities and the HealthImaging facts they use are listed in docs/validation.md.
"""

from airflow_hi_stow.validate.check import Check, Scope
from airflow_hi_stow.validate.engine import FileVerdict, check_instance, inspect_file
from airflow_hi_stow.validate.findings import Finding, Problem, Severity
from airflow_hi_stow.validate.inputs import remove_input
from airflow_hi_stow.validate.reading import ReadInstance, read_instance
from airflow_hi_stow.validate.registry import CHECKS, check_named
from airflow_hi_stow.validate.runner import (
    FileOutcome,
    QuarantineFailed,
    TooManyFailures,
    ValidationRun,
    validate_files,
)
from airflow_hi_stow.validate.settings import PrivateAttribute, ValidationSettings

__all__ = [
    "CHECKS",
    "Check",
    "FileOutcome",
    "FileVerdict",
    "Finding",
    "PrivateAttribute",
    "Problem",
    "QuarantineFailed",
    "ReadInstance",
    "Scope",
    "Severity",
    "TooManyFailures",
    "ValidationRun",
    "ValidationSettings",
    "check_instance",
    "check_named",
    "inspect_file",
    "read_instance",
    "remove_input",
    "validate_files",
]
