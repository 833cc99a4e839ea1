"""The operators and the extra link as Airflow sees them: registration, templated fields, defaults."""

from __future__ import annotations

import json
import subprocess
import sys

import botocore.session
import pytest

from airflow_hi_stow.hooks.healthimaging import HealthImagingStowHook
from airflow_hi_stow.links.healthimaging import HealthImagingDatastoreLink
from airflow_hi_stow.operators.partition import PartitionDicomOperator
from airflow_hi_stow.operators.records import default_manifest_location
from airflow_hi_stow.operators.store import StoreDicomOperator
from airflow_hi_stow.operators.validate import ValidateDicomOperator

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
    assert PartitionDicomOperator(task_id="partition", source="/data").template_fields == ("source", "shard_location")


def test_the_manifest_location_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", "/opt/airflow")
    monkeypatch.delenv("AIRFLOW__HI_STOW__MANIFEST_LOCATION", raising=False)
    assert default_manifest_location() == "/opt/airflow/hi_stow/manifests"
    monkeypatch.setenv("AIRFLOW__HI_STOW__MANIFEST_LOCATION", "s3://records/hi-stow")
    assert default_manifest_location() == "s3://records/hi-stow"


@pytest.mark.parametrize(
    ("region", "console"),
    [
        ("us-west-2", "https://console.aws.amazon.com"),
        ("cn-north-1", "https://console.amazonaws.cn"),
        ("us-gov-west-1", "https://console.amazonaws-us-gov.com"),
    ],
)
def test_the_link_follows_the_region_s_partition(region: str, console: str) -> None:
    link = HealthImagingDatastoreLink()
    partition = botocore.session.get_session().get_partition_for_region(region)
    url = link.format_link(region_name=region, aws_domain=link.get_aws_domain(partition), datastore_id=DATASTORE)
    assert url == f"{console}/medical-imaging/home?region={region}#/data-stores/{DATASTORE}"


def test_against_a_local_endpoint_the_link_opens_the_emulator_s_page() -> None:
    link = HealthImagingDatastoreLink()
    url = link.format_link(region_name="us-east-1", aws_domain="aws.amazon.com", datastore_id=DATASTORE,
                           local_endpoint="http://127.0.0.1:8042/")  # fmt: skip
    assert url == f"http://127.0.0.1:8042/_emulator/datastores/{DATASTORE}"


def test_the_operator_reads_like_an_amazon_provider_operator() -> None:
    operator = StoreDicomOperator(task_id="store", source="/data", aws_conn_id="ahi", verify="/etc/ca.pem")
    assert {"aws_conn_id", "region_name", "verify", "botocore_config"} <= set(operator.template_fields)
    assert operator.aws_hook_class is HealthImagingStowHook
    assert (operator.aws_conn_id, operator.verify) == ("ahi", "/etc/ca.pem")


def test_the_validate_operator_stores_its_arguments_and_templates_its_locations() -> None:
    """Nothing is read or checked when the DAG is parsed: unknown checks and missing paths surface in execute()."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    operator = ValidateDicomOperator(
        task_id="validate",
        source="{{ params.incoming }}",
        quarantine="s3://{{ params.bucket }}/quarantine",
        severities={"no.such_check": "error"},
        aws_conn_id="s3",
    )
    assert {"source", "quarantine", "report_location", "aws_conn_id", "region_name"} <= set(operator.template_fields)
    assert (operator.source, operator.quarantine, operator.severities) == (
        "{{ params.incoming }}",
        "s3://{{ params.bucket }}/quarantine",
        {"no.such_check": "error"},
    )
    assert (operator.move, operator.max_failures, operator.report_location) == (False, None, None)
    assert operator.aws_hook_class is S3Hook


def test_airflow_sees_the_validate_operator_under_dicom_validation() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "get", "airflow-hi-stow", "--full", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    (info,) = json.loads(done.stdout)
    assert "DICOM validation" in {integration["integration-name"] for integration in info["integrations"]}
    assert {"integration-name": "DICOM validation", "python-modules": ["airflow_hi_stow.operators.validate"]} in info[
        "operators"
    ]
