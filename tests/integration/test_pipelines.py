"""The full sample pipelines with ``dag.test()`` against the emulator: ``hi_stow_local_pipeline`` from a folder and
``hi_stow_s3_pipeline`` from an S3 batch on moto. Every input ends stored or quarantined with its reason, and no
planted identifying value reaches the data store."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from airflow_hi_stow.demo import write_demo_set
from airflow_hi_stow.samples import planted_values
from airflow_hi_stow.testing import RunningEmulator
from tests.support import airflow_dags
from tests.support.airflow_compat import DagBag
from tests.support.s3 import MotoS3

pytestmark = pytest.mark.airflow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def airflow_database() -> None:
    airflow_dags.migrate_database()


@pytest.fixture
def connections(healthimaging_emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_HI_STOW_DEID_KEY", json.dumps({"conn_type": "generic", "password": secrets.token_urlsafe(48)})
    )
    monkeypatch.setenv("AIRFLOW__HI_STOW__MANIFEST_LOCATION", str(tmp_path / "records"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_HEALTHIMAGING",
        healthimaging_emulator.aws_connection_json(datastore_id=healthimaging_emulator.datastore_id),
    )


def dag(dag_id: str) -> Any:
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.get_dag(dag_id)


def stored_objects(emulator: RunningEmulator) -> list[bytes]:
    return [path.read_bytes() for path in (emulator.data_dir / "objects").rglob("*.dcm")]


@pytest.mark.compat
@pytest.mark.usefixtures("connections")
def test_the_local_pipeline_stores_everything_good_and_nothing_identifying(
    healthimaging_emulator: RunningEmulator, tmp_path: Path
) -> None:
    sample = write_demo_set(tmp_path / "data" / "dicom", patients=2)
    report_path = tmp_path / "report.json"
    conf = {"source": str(tmp_path / "data" / "dicom"), "destination": str(tmp_path / "deidentified"),
            "quarantine": str(tmp_path / "quarantine"), "report_path": str(report_path)}  # fmt: skip
    run = dag("hi_stow_local_pipeline").test(run_conf=conf)
    assert run.state == "success"
    report = json.loads(report_path.read_text())
    inputs = len(sample.instances) + 3  # the three bad files
    deid, validation = report["deidentification"], report["validation"]
    assert (deid["counts"]["inputs"], deid["counts"]["deidentified"], deid["counts"]["quarantined"]) == (
        inputs,
        len(sample.instances),
        3,
    )
    assert len(list((tmp_path / "quarantine" / "deidentify").glob("*/reason.json"))) == 3
    assert validation["inputs"] == validation["files"] + validation["quarantined"] == len(sample.instances)
    assert report["counts"]["stored"] == validation["files"]
    assert report["image_sets"]["non_primary"] >= 1  # the misfiled series
    stored = stored_objects(healthimaging_emulator)
    assert len(stored) == len(sample.instances)
    for value in planted_values(sample):
        assert not [data for data in stored if value.encode() in data], "an identifying value reached the data store"


@pytest.mark.usefixtures("connections")
def test_the_s3_pipeline_imports_a_batch_sharded_and_emits_its_assets(
    healthimaging_emulator: RunningEmulator, tmp_path: Path, moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_HEALTHIMAGING",
        healthimaging_emulator.aws_connection_json(
            datastore_id=healthimaging_emulator.datastore_id, s3_endpoint_url=moto_s3.url
        ),
    )
    sample = write_demo_set(tmp_path / "data" / "dicom", patients=3)
    uploaded = moto_s3.upload_tree(tmp_path / "data" / "dicom", "incoming/batch-1")
    bucket = f"s3://{moto_s3.bucket}"
    conf = {"source": f"{bucket}/incoming/batch-1/", "destination": f"{bucket}/deidentified/",
            "quarantine": f"{bucket}/quarantine/", "report_path": str(tmp_path / "report.json")}  # fmt: skip
    run = dag("hi_stow_s3_pipeline").test(run_conf=conf)
    assert run.state == "success"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["validation"]["inputs"] == len(sample.instances)
    assert report["counts"]["stored"] == len(sample.instances)
    stores = [ti for ti in run.get_task_instances() if ti.task_id == "store"]
    # one mapped chain per shard of whole studies, and each bad file alone (it ends in the quarantine)
    assert len(stores) == len(sample.study_uids) + 3
    client = moto_s3.client()
    keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=moto_s3.bucket)
            for item in page.get("Contents", [])]  # fmt: skip
    assert sum(key.startswith("deidentified/") for key in keys) == len(sample.instances)
    assert sum(key.startswith("quarantine/deidentify/") and key.endswith("/reason.json") for key in keys) == 3
    assert len(uploaded) == len(sample.instances) + 3
    assert healthimaging_emulator.stats()["instances"]["stored"] == len(sample.instances)
    events = asset_events(run.run_id)
    assert events["hi_stow_deidentified"] == len(stores)
    assert events["hi_stow_imported"] == len(stores)


def asset_events(run_id: str) -> dict[str, int]:
    """Asset events the run's tasks emitted, by asset name."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.name, func.count())
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_run_id == run_id)
            .group_by(AssetModel.name)
        ).all()
    return {str(name): int(count) for name, count in rows}
