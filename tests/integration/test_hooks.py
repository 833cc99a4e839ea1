"""The hooks read Airflow connections the way users write them, and sign with the credentials they yield."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from airflow_hi_stow.core.store_response import ReferencedInstance, build_store_response
from airflow_hi_stow.hooks.dicomweb import DicomWebStowHook
from airflow_hi_stow.hooks.healthimaging import HealthImagingStowHook
from airflow_hi_stow.samples import generate_dataset
from tests.support.orthanc import free_port
from tests.support.scripted_server import Recorded, Reply, scripted_server

DATASTORE = "d9a2a515ab294163a2d2f4069eed584c"


def aws_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str = "aws_test", **extra: object) -> str:
    connection = {"conn_type": "aws", "login": "AKIDTEST", "password": "test-secret", "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    return conn_id


@pytest.fixture
def one_file(tmp_path: Path) -> Path:
    sample = generate_dataset(tmp_path / "s", patients=1, studies_per_patient=(1, 1), series_per_study=(1, 1),
                              instances_per_series=(1, 1), redeliver_one_study=False)  # fmt: skip
    return sample.instances[0].path


def listing_everything(path: Path) -> Reply:
    from pydicom import dcmread

    uid = str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)
    return Reply(200, build_store_response(retrieve_url=None, referenced=[ReferencedInstance(uid)]))


def credential_of(request: Recorded) -> str:
    match = re.search(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/", request.headers["Authorization"])
    assert match is not None
    return "/".join(match.groups())


def test_endpoint_defaults_to_the_regions_dicomweb_host(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = HealthImagingStowHook(aws_connection(monkeypatch, region_name="eu-west-1"), datastore_id=DATASTORE)
    assert hook.dicomweb_endpoint_url == "https://dicom-medical-imaging.eu-west-1.amazonaws.com"
    assert hook.datastore_url() == f"https://dicom-medical-imaging.eu-west-1.amazonaws.com/datastore/{DATASTORE}"
    assert hook.payload_signing.value == "streaming"


def test_the_region_argument_wins_over_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = HealthImagingStowHook(aws_connection(monkeypatch, region_name="eu-west-1"), DATASTORE, "us-west-2")
    assert hook.dicomweb_endpoint_url == "https://dicom-medical-imaging.us-west-2.amazonaws.com"


def test_endpoint_url_redirects_dicomweb_and_boto3_without_the_runtime_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore prefixes the runtime operations' host with "runtime-"; against a custom endpoint the hook must not."""
    with scripted_server(lambda _: Reply(200, {"imageSetsMetadataSummaries": []})) as server:
        hook = HealthImagingStowHook(
            aws_connection(monkeypatch, region_name="us-east-1", endpoint_url=server.url + "/"), DATASTORE
        )
        assert hook.dicomweb_endpoint_url == server.url
        found = hook.get_conn().search_image_sets(datastoreId=DATASTORE)
    assert found["imageSetsMetadataSummaries"] == []
    (request,) = server.requests
    assert request.path == f"/datastore/{DATASTORE}/searchImageSets"
    assert credential_of(request) == "AKIDTEST/us-east-1/medical-imaging"


def test_dicomweb_endpoint_url_extra_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = aws_connection(
        monkeypatch, region_name="us-east-1", endpoint_url="http://control", dicomweb_endpoint_url="http://dicomweb"
    )
    assert HealthImagingStowHook(conn, DATASTORE).dicomweb_endpoint_url == "http://dicomweb"


def test_configuration_mistakes_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="no AWS region for connection 'aws_test'"):
        HealthImagingStowHook(aws_connection(monkeypatch), DATASTORE).datastore_url()
    hook = HealthImagingStowHook(aws_connection(monkeypatch, region_name="us-east-1", payload_signing="md5"), DATASTORE)
    with pytest.raises(ValueError, match="payload_signing must be one of streaming, aws-chunked, sha256"):
        _ = hook.payload_signing
    with pytest.raises(ValueError, match="datastore_id is required"):
        HealthImagingStowHook(aws_connection(monkeypatch, region_name="us-east-1")).datastore_url()


def test_store_signs_with_the_connections_keys(monkeypatch: pytest.MonkeyPatch, one_file: Path) -> None:
    with scripted_server(lambda _: listing_everything(one_file)) as server:
        conn = aws_connection(monkeypatch, region_name="eu-west-2", endpoint_url=server.url, payload_signing="sha256")
        result = HealthImagingStowHook(conn, DATASTORE).store_instances([one_file])
    assert result.all_stored
    (request,) = server.requests
    assert request.path == f"/datastore/{DATASTORE}/studies"
    assert credential_of(request) == "AKIDTEST/eu-west-2/medical-imaging"
    assert request.headers["Content-Type"] == "application/dicom"  # HealthImaging's single-part form
    assert request.headers["X-Amz-Content-SHA256"] != "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"


@pytest.fixture
def moto_sts() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_an_assumed_role_signs_with_its_session_credentials(
    monkeypatch: pytest.MonkeyPatch, one_file: Path, moto_sts: str
) -> None:
    """role_arn on the connection: the hook assumes the role (here on moto's STS server) and signs with the
    temporary key and its session token."""
    with scripted_server(lambda _: listing_everything(one_file)) as server:
        conn = aws_connection(
            monkeypatch,
            region_name="us-east-1",
            endpoint_url=server.url,
            role_arn="arn:aws:iam::123456789012:role/hi-stow-import",
            service_config={"sts": {"endpoint_url": moto_sts}},
        )
        result = HealthImagingStowHook(conn, DATASTORE).store_instances([one_file])
    assert result.all_stored
    (request,) = server.requests
    assert credential_of(request).startswith("ASIA")
    assert request.headers["X-Amz-Security-Token"]
    assert "x-amz-security-token" in request.headers["Authorization"]


def test_a_token_refused_as_expired_makes_the_hook_assume_the_role_again(
    monkeypatch: pytest.MonkeyPatch, one_file: Path, moto_sts: str
) -> None:
    """The session was replaced before its expiry time (revoked, rotated): the first answer is 403
    ExpiredTokenException; the hook assumes the role again on moto's STS and re-signs with the new session, whose
    secrets join Airflow's masker."""
    from airflow.providers.common.compat.sdk import redact

    expired = Reply(403, {"message": "The security token included in the request is expired"},
                    {"x-amzn-ErrorType": "ExpiredTokenException"})  # fmt: skip
    with scripted_server(lambda n: expired if n == 0 else listing_everything(one_file)) as server:
        conn = aws_connection(
            monkeypatch,
            region_name="us-east-1",
            endpoint_url=server.url,
            role_arn="arn:aws:iam::123456789012:role/hi-stow-import",
            service_config={"sts": {"endpoint_url": moto_sts}},
        )
        hook = HealthImagingStowHook(conn, DATASTORE)
        result = hook.store_instances([one_file])
    assert result.all_stored
    first, second = server.requests
    assert credential_of(first) != credential_of(second)
    assert first.headers["X-Amz-Security-Token"] != second.headers["X-Amz-Security-Token"]
    assert result.requests[0].retries == {"expired_credentials": 1}
    token = second.headers["X-Amz-Security-Token"]
    assert token not in str(redact(f"token {token}"))


@pytest.mark.parametrize(
    ("connection", "base_url"),
    [
        ({"conn_type": "http", "host": "http://pacs:8042/dicom-web"}, "http://pacs:8042/dicom-web"),
        ({"conn_type": "http", "host": "pacs", "port": 8042, "schema": "dicom-web"}, "http://pacs:8042/dicom-web"),
        ({"conn_type": "http", "host": "https://pacs/wado/", "port": 443}, "https://pacs:443/wado"),
        ({"conn_type": "dicomweb", "host": "pacs.example.org", "schema": "https"}, "https://pacs.example.org"),
        ("http://user:pass@pacs:8042/dicom-web", "http://pacs:8042/dicom-web"),
    ],
)
def test_dicomweb_base_url(monkeypatch: pytest.MonkeyPatch, connection: object, base_url: str) -> None:
    value = connection if isinstance(connection, str) else json.dumps(connection)
    monkeypatch.setenv("AIRFLOW_CONN_PACS", value)
    assert DicomWebStowHook("pacs").base_url == base_url


@pytest.mark.parametrize(
    ("connection", "authorization"),
    [
        ({"login": "alice", "password": "s3cret"}, "Basic YWxpY2U6czNjcmV0"),
        ({"password": "token-123", "extra": {"auth_type": "bearer"}}, "Bearer token-123"),
        ({}, None),
    ],
)
def test_dicomweb_auth(
    monkeypatch: pytest.MonkeyPatch, one_file: Path, connection: dict[str, object], authorization: str | None
) -> None:
    with scripted_server(lambda _: listing_everything(one_file)) as server:
        monkeypatch.setenv("AIRFLOW_CONN_PACS", json.dumps({"conn_type": "http", "host": server.url, **connection}))
        assert DicomWebStowHook("pacs").store_instances([one_file]).all_stored
    (request,) = server.requests
    assert request.headers.get("Authorization") == authorization
    assert request.headers["Content-Type"].startswith("multipart/related")


def test_bearer_without_a_token_is_a_named_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_PACS", json.dumps({"conn_type": "http", "host": "h", "extra": {"auth_type": "bearer"}})
    )
    with pytest.raises(ValueError, match="bearer needs the token"):
        DicomWebStowHook("pacs").get_conn()
