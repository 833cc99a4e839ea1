"""Airflow discovers the package as a provider: `airflow providers` lists it, its hooks and connection type."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.airflow
ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.compat
def test_every_module_imports_on_this_airflow() -> None:
    """Names moved between Airflow 3.0 and 3.3; every module must import on each supported release."""
    import importlib
    import pkgutil

    import airflow_hi_stow

    names = [
        module.name
        for module in pkgutil.walk_packages(airflow_hi_stow.__path__, "airflow_hi_stow.")
        if not module.name.endswith("__main__")
    ]
    assert len(names) > 40
    for name in names:
        importlib.import_module(name)


@pytest.mark.compat
def test_every_sample_dag_parses_without_errors() -> None:
    from tests.support.airflow_compat import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    assert bag.dag_ids
