"""Airflow discovers the package as a provider: `airflow providers` lists it, its hooks and connection type."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.airflow


def airflow(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "airflow", *args], capture_output=True, text=True, check=True)
    return done.stdout


def test_providers_list_shows_the_package() -> None:
    from airflow_hi_stow import __version__

    providers = json.loads(airflow("providers", "list", "-o", "json"))
    ours = [provider for provider in providers if provider["package_name"] == "airflow-hi-stow"]
    assert (
        ours
        == [
            {
                "package_name": "airflow-hi-stow",
                "description": "Import DICOM into AWS HealthImaging through its DICOMweb STOW-RS APIs",  # Airflow drops the "."
                "version": __version__,
            }
        ]
    )


def test_the_dicomweb_connection_type_and_hooks_are_registered() -> None:
    out = airflow("providers", "hooks", "-o", "plain")
    assert "dicomweb" in out
    assert "airflow_hi_stow.hooks.dicomweb.DicomWebStowHook" in out
    widgets = airflow("providers", "widgets", "-o", "plain")
    assert "extra__dicomweb__auth_type" in widgets
