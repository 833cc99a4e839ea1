"""Helpers for tests against a running emulator (the ``healthimaging_emulator`` fixture comes from the package's
pytest plugin)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest
import requests
from botocore.credentials import ReadOnlyCredentials

from airflow_hi_stow.core import sigv4
from airflow_hi_stow.core.sigv4 import PayloadSigning
from airflow_hi_stow.samples import SampleInstance, SampleSet, generate_dataset
from airflow_hi_stow.testing import RunningEmulator
from airflow_hi_stow.transport.auth import SigV4StowAuth
from airflow_hi_stow.transport.client import StowClient


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleSet:
    """One patient, one study of two series of three instances, and a re-delivery of it with another Patient ID."""
    return generate_dataset(
        tmp_path_factory.mktemp("sample") / "set",
        patients=1,
        studies_per_patient=(1, 1),
        series_per_study=(2, 2),
        instances_per_series=(3, 3),
    )


class Signed:
    """A StoreDICOM request as the package's signer makes it, open to tampering before it is sent."""

    def __init__(
        self,
        emulator: RunningEmulator,
        body: bytes,
        mode: PayloadSigning = PayloadSigning.STREAMING,
        *,
        secret: str | None = None,
        content_type: str = "application/dicom",
        path: str = "/studies",
        declared_length: int | None = None,
    ) -> None:
        self.url = f"{emulator.dicomweb_url}{path}"
        headers = {"Accept": "application/dicom+json", "Content-Type": content_type}
        length = len(body) if declared_length is None else declared_length
        headers.update(sigv4.payload_headers(mode, length, hashlib.sha256(body).hexdigest()))
        signature = sigv4.sign(credentials(emulator, secret), emulator.region, "POST", self.url, headers)
        self.headers = dict(signature.headers)
        self.signature = signature.signature
        self.body = (
            b"".join(sigv4.aws_chunks([body], sigv4.ChunkSigner(signature), sigv4.MIN_CHUNK_SIZE))
            if mode is PayloadSigning.AWS_CHUNKED
            else body
        )

    def send(self) -> requests.Response:
        return requests.post(self.url, data=self.body, headers=self.headers, timeout=60)


def credentials(emulator: RunningEmulator, secret: str | None = None) -> ReadOnlyCredentials:
    return ReadOnlyCredentials(emulator.access_key, secret or emulator.secret_key, emulator.session_token)


def stow_client(
    emulator: RunningEmulator, mode: str = "streaming", datastore_id: str | None = None, **options: object
) -> StowClient:
    """The package's client, signing for the emulator in one payload mode (default data store unless given)."""
    auth = SigV4StowAuth(lambda: credentials(emulator), emulator.region, mode)
    url = f"{emulator.url}/datastore/{datastore_id or emulator.datastore_id}"
    return StowClient(url, auth=auth, **options)  # type: ignore[arg-type]


def retrieve(emulator: RunningEmulator, instance: SampleInstance, *, stream: bool = False) -> requests.Response:
    """WADO-RS GetDICOMInstance, signed."""
    url = (
        f"{emulator.dicomweb_url}/studies/{instance.study_instance_uid}/series/{instance.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}"
    )
    return signed_get(emulator, url, stream=stream)


def signed_get(
    emulator: RunningEmulator, url: str, params: dict[str, str] | None = None, *, stream: bool = False
) -> requests.Response:
    prepared = requests.Request("GET", url, params=params).prepare()
    headers = {"X-Amz-Content-SHA256": hashlib.sha256(b"").hexdigest()}
    signature = sigv4.sign(credentials(emulator), emulator.region, "GET", prepared.url or url, headers)
    return requests.get(prepared.url or url, headers=signature.headers, timeout=30, stream=stream)


def instance_count(emulator: RunningEmulator) -> int:
    """Instances in the emulator's index."""
    return int(emulator.stats()["index"]["instances"])


def temporary_files(emulator: RunningEmulator) -> list[Path]:
    return [path for path in (emulator.data_dir / "tmp").rglob("*") if path.is_file()]


def stored_sop_uids(emulator: RunningEmulator) -> dict[str, bool]:
    """SOP Instance UID -> whether its image set is primary, over every image set boto3 finds."""
    client = emulator.boto3_client()
    found: dict[str, bool] = {}
    pages = client.get_paginator("search_image_sets").paginate(datastoreId=emulator.datastore_id)
    for summary in (item for page in pages for item in page["imageSetsMetadataSummaries"]):
        blob = client.get_image_set_metadata(datastoreId=emulator.datastore_id, imageSetId=summary["imageSetId"])
        document = json.loads(gzip.decompress(blob["imageSetMetadataBlob"].read()))
        for series in document["Study"]["Series"].values():
            for sop_uid in series["Instances"]:
                assert sop_uid not in found, "an instance is in two image sets"
                found[sop_uid] = summary["isPrimary"]
    return found
