"""airflow-hi-stow: import DICOM into AWS HealthImaging through its DICOMweb STOW-RS APIs, from Apache Airflow."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
"""The package's version (pyproject.toml reads it from here: no metadata scan at import, about 60 ms)."""


def get_provider_info() -> dict[str, Any]:
    """What Airflow's ProvidersManager reads through the ``apache_airflow_provider`` entry point."""
    return {
        "package-name": "airflow-hi-stow",
        "name": "AWS HealthImaging STOW-RS",
        "description": "Import DICOM into AWS HealthImaging through its DICOMweb STOW-RS APIs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "AWS HealthImaging",
                "external-doc-url": "https://docs.aws.amazon.com/healthimaging/latest/devguide/dicomweb-storing.html",
                "tags": ["aws"],
            },
            {
                "integration-name": "DICOMweb",
                "external-doc-url": "https://dicom.nema.org/medical/dicom/current/output/chtml/part18/sect_10.5.html",
                "tags": ["protocol"],
            },
            {
                "integration-name": "DICOM de-identification",
                "external-doc-url": "https://dicom.nema.org/medical/dicom/current/output/chtml/part15/chapter_E.html",
                "tags": ["protocol"],
            },
            {
                "integration-name": "DICOM validation",
                "external-doc-url": "https://dicom.nema.org/medical/dicom/current/output/chtml/part10/chapter_7.html",
                "tags": ["software"],
            },
        ],
        "hooks": [
            {
                "integration-name": "AWS HealthImaging",
                "python-modules": ["airflow_hi_stow.hooks.healthimaging"],
            },
            {"integration-name": "DICOMweb", "python-modules": ["airflow_hi_stow.hooks.dicomweb"]},
            {
                "integration-name": "DICOM de-identification",
                "python-modules": ["airflow_hi_stow.hooks.deidentification"],
            },
        ],
        "operators": [
            {
                "integration-name": "AWS HealthImaging",
                "python-modules": ["airflow_hi_stow.operators.store", "airflow_hi_stow.operators.partition"],
            },
            {
                "integration-name": "DICOM de-identification",
                "python-modules": ["airflow_hi_stow.operators.deidentify"],
            },
            {"integration-name": "DICOM validation", "python-modules": ["airflow_hi_stow.operators.validate"]},
        ],
        "extra-links": ["airflow_hi_stow.links.healthimaging.HealthImagingDatastoreLink"],
        "config": {
            "hi_stow": {
                "description": "Defaults of the AWS HealthImaging STOW-RS operators.",
                "options": {
                    "manifest_location": {
                        "description": "Where StoreDicomOperator keeps each task instance's manifest and resume "
                        "ledger when the task gives no manifest_location (and DeidentifyDicomOperator its list of "
                        "outputs and report when it gives no report_location): a local directory, or an "
                        "s3://bucket/prefix that every worker can reach (so a retry on another worker resumes). Empty: "
                        "$AIRFLOW_HOME/hi_stow/manifests.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://my-bucket/hi-stow/manifests",
                        "default": None,
                    }
                },
            }
        },
        "connection-types": [
            {
                "connection-type": "dicomweb",
                "hook-class-name": "airflow_hi_stow.hooks.dicomweb.DicomWebStowHook",
                "hook-name": "DICOMweb (STOW-RS)",
                "ui-field-behaviour": {
                    "hidden-fields": ["port"],
                    "relabeling": {"host": "Base URL", "schema": "Path prefix"},
                    "placeholders": {
                        "host": "http://pacs.example.org:8042/dicom-web",
                        "password": "password, or the bearer token",
                    },
                },
                "conn-fields": {
                    "auth_type": {
                        "label": "Auth type",
                        "description": "basic (login and password) or bearer (the password is the token)",
                        "schema": {"type": ["string", "null"], "enum": ["basic", "bearer", None]},
                    }
                },
            }
        ],
    }
