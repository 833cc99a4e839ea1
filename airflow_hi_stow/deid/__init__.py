"""De-identification following DICOM PS3.15 Annex E: pure library code, usable without Airflow.

``Deidentifier`` transforms one instance (a dataset, or a file's bytes); ``run_deidentification`` runs a set of inputs
through it into an output store and a quarantine, with a report; ``deidentify_local`` does the same over local files.
See docs/deidentification.md.
"""

from __future__ import annotations

from airflow_hi_stow.deid.burned_in import BurnedInPolicy
from airflow_hi_stow.deid.deidentifier import DatasetResult, DeidentifiedFile, Deidentifier, Finding, Quarantined
from airflow_hi_stow.deid.errors import InvalidKeyError, UnavailableInput
from airflow_hi_stow.deid.keys import MIN_KEY_BYTES, DeidentificationKey
from airflow_hi_stow.deid.profile import ProfileOptions, SafePrivate, profile_table
from airflow_hi_stow.deid.runner import FileOutcome, RunReport, deidentify_local, run_deidentification
from airflow_hi_stow.deid.storage import (
    InputFile,
    LinkageFile,
    LinkageSink,
    LocalDirectory,
    LocalInput,
    MissingInput,
    OutputStore,
    local_inputs,
)
from airflow_hi_stow.deid.transform import LinkageRecord

__all__ = [
    "MIN_KEY_BYTES",
    "BurnedInPolicy",
    "DatasetResult",
    "DeidentificationKey",
    "DeidentifiedFile",
    "Deidentifier",
    "FileOutcome",
    "Finding",
    "InputFile",
    "InvalidKeyError",
    "LinkageFile",
    "LinkageRecord",
    "LinkageSink",
    "LocalDirectory",
    "LocalInput",
    "MissingInput",
    "OutputStore",
    "ProfileOptions",
    "Quarantined",
    "RunReport",
    "SafePrivate",
    "UnavailableInput",
    "deidentify_local",
    "local_inputs",
    "profile_table",
    "run_deidentification",
]
