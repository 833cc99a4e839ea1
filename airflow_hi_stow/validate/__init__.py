"""Pre-import validation: catch what HealthImaging would reject or mis-file before sending, without Airflow.

The whole run::

    from airflow_hi_stow.validate import LocalFolder, ValidationSettings, local_inputs, validate_files

    run = validate_files(
        local_inputs(["/data/incoming"]),
        quarantine=LocalFolder("/data/quarantine/run-1"),
        output=LocalFolder("/data/validation/run-1"),
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
from airflow_hi_stow.validate.storage import (
    Folder,
    InputFile,
    LocalFolder,
    LocalInput,
    local_inputs,
    remove_local_input,
)

__all__ = [
    "CHECKS",
    "Check",
    "FileOutcome",
    "FileVerdict",
    "Finding",
    "Folder",
    "InputFile",
    "LocalFolder",
    "LocalInput",
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
    "local_inputs",
    "read_instance",
    "remove_local_input",
    "validate_files",
]
