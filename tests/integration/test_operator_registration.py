"""The operators and the extra link as Airflow sees them: registration, templated fields, defaults."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from airflow_hi_stow.links.healthimaging import HealthImagingDatastoreLink
from airflow_hi_stow.operators.partition import PartitionDicomOperator
from airflow_hi_stow.operators.store import StoreDicomOperator, default_manifest_location

DATASTORE = "d9a2a515ab294163a2d2f4069eed584c"


def test_airflow_lists_the_extra_link() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "links", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    links = [item["extra_link_class_name"] for item in json.loads(done.stdout)]
    assert "airflow_hi_stow.links.healthimaging.HealthImagingDatastoreLink" in links


def test_the_operator_stores_its_arguments_and_templates_the_source() -> None:
    operator = StoreDicomOperator(task_id="store", datastore_id="{{ params.ds }}", source=["{{ params.dir }}"])
    assert set(operator.template_fields) >= {"source", "datastore_id", "study_instance_uid", "manifest_location"}
    assert operator.source == ["{{ params.dir }}"]
    assert (operator.max_connections, operator.max_failures, tuple(operator.fail_on)) == (
        4,
        0,
        ("failed", "unconfirmed"),
    )
    assert [type(link) for link in operator.operator_extra_links] == [HealthImagingDatastoreLink]
    assert PartitionDicomOperator(task_id="partition", source="/data").template_fields == ("source",)


def test_the_manifest_location_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", "/opt/airflow")
    monkeypatch.delenv("AIRFLOW__HI_STOW__MANIFEST_LOCATION", raising=False)
    assert default_manifest_location() == "/opt/airflow/hi_stow/manifests"
    monkeypatch.setenv("AIRFLOW__HI_STOW__MANIFEST_LOCATION", "s3://records/hi-stow")
    assert default_manifest_location() == "s3://records/hi-stow"


def link_for(**attributes: Any) -> str:
    operator = StoreDicomOperator(task_id="store", source="/data", datastore_id=DATASTORE)
    for name, value in attributes.items():
        setattr(operator, name, value)
    return HealthImagingDatastoreLink().get_link(operator, ti_key=None)  # type: ignore[arg-type]


def test_the_link_points_to_the_data_store_in_its_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AHI", json.dumps({"conn_type": "aws", "extra": {"region_name": "eu-west-1"}}))
    assert link_for(region_name="us-west-2") == (
        f"https://us-west-2.console.aws.amazon.com/medical-imaging/home?region=us-west-2#/data-stores/{DATASTORE}"
    )
    assert "region=eu-west-1#" in link_for(aws_conn_id="ahi")
    assert link_for(aws_conn_id="missing") == ""
    assert link_for(region_name="us-west-2", datastore_id="") == ""
