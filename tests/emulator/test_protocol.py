"""Requests as STOW-RS clients really send them, per-instance failures with PS3.18 reasons, status codes, limits,
and the DICOMweb read side."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from pydicom import dcmread
from pydicom.uid import UID

from airflow_hi_stow.core import sigv4
from airflow_hi_stow.core.multipart import closing_delimiter, part_opening
from airflow_hi_stow.core.sigv4 import PayloadSigning
from airflow_hi_stow.core.store_response import parse_store_response
from airflow_hi_stow.engine.importer import store_files
from airflow_hi_stow.samples import SampleSet
from airflow_hi_stow.testing import RunningEmulator
from airflow_hi_stow.transport.errors import StowNotFound
from tests.emulator.conftest import Signed, credentials, instance_count, signed_get, stow_client

BOUNDARY = "emulator-test-boundary"


def multipart_body(*parts: bytes, boundary: str = BOUNDARY) -> bytes:
    return b"".join(part_opening(boundary) + part + b"\r\n" for part in parts) + closing_delimiter(boundary)


def with_transfer_syntax(source: Path, target: Path, transfer_syntax: str) -> bytes:
    dataset = dcmread(source)
    del dataset.PixelData
    dataset.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    dataset.save_as(target, enforce_file_format=True)
    return target.read_bytes()


def module(response: requests.Response) -> Any:
    return parse_store_response(json.loads(response.content))


@pytest.mark.parametrize(
    "content_type",
    [
        f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
        f'multipart/related; type=application/dicom; boundary="{BOUNDARY}"',
        f"multipart/related; boundary={BOUNDARY}",
        f'Multipart/Related; boundary="{BOUNDARY}"; type="application/dicom"',
    ],
)
def test_media_type_parameters_quoted_or_not(
    content_type: str, healthimaging_emulator: RunningEmulator, sample: SampleSet
) -> None:
    body = multipart_body(*(item.path.read_bytes() for item in sample.instances[:2]))
    response = Signed(healthimaging_emulator, body, content_type=content_type).send()
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/dicom+json"
    assert len(module(response).referenced) == 2


def test_a_chunked_transfer_encoding_body(healthimaging_emulator: RunningEmulator, sample: SampleSet) -> None:
    body = multipart_body(*(item.path.read_bytes() for item in sample.instances))
    request = Signed(
        healthimaging_emulator, body, content_type=f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
    )

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 10_000):
            yield body[start : start + 10_000]

    response = requests.post(request.url, data=pieces(), headers=request.headers, timeout=60)
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 200
    assert len(module(response).referenced) == len(sample.instances)


def test_expect_100_continue_is_answered_before_the_body_is_sent(
    healthimaging_emulator: RunningEmulator, sample: SampleSet
) -> None:
    body = sample.instances[0].path.read_bytes()
    request = Signed(healthimaging_emulator, body)
    target = urlsplit(request.url)
    head = [f"POST {target.path} HTTP/1.1", f"Host: {target.netloc}", "Expect: 100-continue"]
    head += [f"{name}: {value}" for name, value in request.headers.items()]
    head += [f"Content-Length: {len(body)}", "Connection: close"]
    with socket.create_connection((target.hostname, target.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK")


def test_a_host_signed_without_its_port(healthimaging_emulator: RunningEmulator, sample: SampleSet) -> None:
    emulator = healthimaging_emulator
    body = sample.instances[0].path.read_bytes()
    url = f"{emulator.dicomweb_url}/studies"
    headers = {"Host": "127.0.0.1", "Content-Type": "application/dicom"}
    headers.update(sigv4.payload_headers(PayloadSigning.SHA256, len(body), hashlib.sha256(body).hexdigest()))
    signed = sigv4.sign(credentials(emulator), emulator.region, "POST", url, headers).headers
    assert "host" in signed["Authorization"]
    del signed["Host"]  # requests sends Host: 127.0.0.1:<port>
    assert requests.post(url, data=body, headers=signed, timeout=30).status_code == 200


def test_per_instance_failures_carry_ps318_reasons(
    healthimaging_emulator: RunningEmulator, sample: SampleSet, tmp_path: Path
) -> None:
    good, other = sample.instances[0], sample.instances[1]
    mpeg2 = with_transfer_syntax(other.path, tmp_path / "mpeg2.dcm", "1.2.840.10008.1.2.4.100")
    body = multipart_body(good.path.read_bytes(), b"not dicom at all", mpeg2)
    response = Signed(
        healthimaging_emulator, body, content_type=f"multipart/related; type=application/dicom; boundary={BOUNDARY}"
    ).send()
    assert response.status_code == 202
    result = module(response)
    assert [item.sop_instance_uid for item in result.referenced] == [good.sop_instance_uid]
    assert [(item.sop_instance_uid, item.failure_reason) for item in result.failed] == [
        (other.sop_instance_uid, 0xC122)
    ]
    assert result.other_failures == (0xC000,)
    assert result.retrieve_url.endswith(f"/studies/{good.study_instance_uid}")
    assert instance_count(healthimaging_emulator) == 1


def test_nothing_stored_is_400_when_nothing_could_be_read_and_409_otherwise(
    healthimaging_emulator: RunningEmulator, sample: SampleSet
) -> None:
    emulator = healthimaging_emulator
    garbage = Signed(emulator, b"\0" * 500)
    response = garbage.send()
    assert response.status_code == 400
    assert module(response).other_failures == (0xC000,)

    instance = sample.instances[0]
    other_study = "1.2.3.4.5.6.7.8.9"
    wrong_study = Signed(emulator, instance.path.read_bytes(), path=f"/studies/{other_study}")
    response = wrong_study.send()
    assert response.status_code == 409
    assert [(item.sop_instance_uid, item.failure_reason) for item in module(response).failed] == [
        (instance.sop_instance_uid, 0xA900)
    ]
    assert instance_count(emulator) == 0


@pytest.mark.healthimaging_emulator(extra_args=["--verified-transfer-syntaxes-only"])
def test_unverified_transfer_syntaxes_can_be_refused(
    healthimaging_emulator: RunningEmulator, sample: SampleSet, tmp_path: Path
) -> None:
    htj2k = with_transfer_syntax(sample.instances[0].path, tmp_path / "htj2k.dcm", "1.2.840.10008.1.2.4.201")
    response = Signed(healthimaging_emulator, htj2k).send()
    assert response.status_code == 409
    assert module(response).failed[0].failure_reason == 0xC122


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/octet-stream", 'multipart/related; type="application/dicom+json"; boundary=b'],
)
def test_unsupported_media_types_are_415(
    content_type: str, healthimaging_emulator: RunningEmulator, sample: SampleSet
) -> None:
    response = Signed(healthimaging_emulator, sample.instances[0].path.read_bytes(), content_type=content_type).send()
    assert response.status_code == 415
    assert response.headers["x-amzn-ErrorType"] == "UnsupportedMediaTypeException"


def test_a_malformed_multipart_body_is_400(healthimaging_emulator: RunningEmulator, sample: SampleSet) -> None:
    body = multipart_body(sample.instances[0].path.read_bytes())[:-10]
    content_type = f"multipart/related; boundary={BOUNDARY}"
    response = Signed(healthimaging_emulator, body, content_type=content_type).send()
    assert response.status_code == 400
    assert "closing delimiter" in response.json()["message"]
    assert instance_count(healthimaging_emulator) == 0


def test_an_unknown_data_store_is_404(healthimaging_emulator: RunningEmulator, sample: SampleSet) -> None:
    with pytest.raises(StowNotFound) as raised:
        store_files(stow_client(healthimaging_emulator, datastore_id="0" * 32), [sample.instances[0].path])
    assert "ResourceNotFoundException" in str(raised.value)


LIMIT = 1_000_000


@pytest.mark.healthimaging_emulator(extra_args=["--max-request-bytes", str(LIMIT)])
def test_a_body_over_the_limit_is_413_whatever_its_length_headers_say(healthimaging_emulator: RunningEmulator) -> None:
    emulator = healthimaging_emulator
    body = b"\0" * (3 * LIMIT)
    declared = Signed(emulator, body, PayloadSigning.STREAMING)
    unknown_length = Signed(emulator, body, PayloadSigning.SHA256)
    understated = Signed(emulator, body, PayloadSigning.AWS_CHUNKED, declared_length=100)
    responses = [
        declared.send(),
        requests.post(unknown_length.url, data=iter([body]), headers=unknown_length.headers, timeout=60),
        understated.send(),
    ]
    assert [response.status_code for response in responses] == [413, 413, 413]
    assert {response.headers["x-amzn-ErrorType"] for response in responses} == {"RequestEntityTooLargeException"}
    assert responses[1].request.headers["Transfer-Encoding"] == "chunked"
    assert instance_count(emulator) == 0


@pytest.mark.healthimaging_emulator(extra_args=["--max-request-bytes", str(LIMIT)])
def test_curl_waiting_for_100_continue_gets_the_413_without_sending_the_body(
    healthimaging_emulator: RunningEmulator, tmp_path: Path
) -> None:
    emulator = healthimaging_emulator
    big = tmp_path / "big.dcm"
    big.write_bytes(b"\0" * (3 * LIMIT))
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-v",
            "-X",
            "POST",
            f"{emulator.dicomweb_url}/studies",
            "--aws-sigv4",
            f"aws:amz:{emulator.region}:medical-imaging",
            "--user",
            f"{emulator.access_key}:{emulator.secret_key}",
            "--header",
            "x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "--header",
            f"x-amz-decoded-content-length: {3 * LIMIT}",
            "--header",
            "Content-Type: application/dicom",
            "--upload-file",
            str(big),
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_code} %{size_upload}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    status, uploaded = (
        result.stdout.rsplit("\n", 1)[-1].split()[-2:] if "\n" in result.stdout else result.stdout.split()[-2:]
    )
    assert status == "413"
    assert int(uploaded) < LIMIT
    assert "< HTTP/1.1 100 Continue" not in result.stderr


def test_qido_and_wado_over_the_primary_image_sets(healthimaging_emulator: RunningEmulator, sample: SampleSet) -> None:
    emulator = healthimaging_emulator
    store_files(stow_client(emulator), [item.path for item in sample.instances])
    stored = store_files(stow_client(emulator), [item.path for item in sample.redelivered])
    base = emulator.dicomweb_url

    studies = signed_get(emulator, f"{base}/studies").json()
    assert len(studies) == 1
    assert studies[0]["0020000D"]["Value"] == sample.study_uids
    assert studies[0]["00201208"]["Value"] == [len(sample.instances)]
    assert studies[0]["00100020"]["Value"] == ["DEMO-0001"]
    assert signed_get(emulator, f"{base}/studies", {"PatientID": "DEMO-0001"}).json() == studies
    assert signed_get(emulator, f"{base}/studies", {"PatientID": "DEMO-0001-CORRECTED"}).json() == []
    assert signed_get(emulator, f"{base}/studies", {"PatientID": "DEMO-*"}).json() == studies
    study_date = studies[0]["00080020"]["Value"][0]
    assert signed_get(emulator, f"{base}/studies", {"StudyDate": f"{study_date}-"}).json() == studies
    assert signed_get(emulator, f"{base}/studies", {"StudyDate": f"-{int(study_date) - 1}"}).json() == []
    series = signed_get(emulator, f"{base}/studies/{sample.study_uids[0]}/series").json()
    assert sorted(item["0020000E"]["Value"][0] for item in series) == sample.series_uids
    first = sample.instances[0]
    instances = signed_get(
        emulator, f"{base}/studies/{first.study_instance_uid}/series/{first.series_instance_uid}/instances"
    )
    expected = {
        item.sop_instance_uid for item in sample.instances if item.series_instance_uid == first.series_instance_uid
    }
    assert {item["00080018"]["Value"][0] for item in instances.json()} == expected
    assert len(signed_get(emulator, f"{base}/instances", {"limit": "2", "offset": "1"}).json()) == 2
    metadata = signed_get(
        emulator, f"{base}/studies/{first.study_instance_uid}/series/{first.series_instance_uid}/metadata"
    )
    assert {item["00080018"]["Value"][0] for item in metadata.json()} == expected

    # A non-primary instance is retrieved by the URL StoreDICOM answered with (it names the image set).
    non_primary = next(item for item in stored.instances if "imageSetId=" in (item.retrieve_url or ""))
    retrieved = requests.Request("GET", non_primary.retrieve_url).prepare()
    response = signed_get(emulator, retrieved.url or "")
    assert response.content == Path(non_primary.source).read_bytes()
    assert dcmread(Path(non_primary.source)).PatientID == "DEMO-0001-CORRECTED"


def test_wado_answers_multipart_when_asked(healthimaging_emulator: RunningEmulator, sample: SampleSet) -> None:
    emulator = healthimaging_emulator
    instance = sample.instances[0]
    store_files(stow_client(emulator), [instance.path])
    url = (
        f"{emulator.dicomweb_url}/studies/{instance.study_instance_uid}/series/{instance.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}"
    )
    prepared = requests.Request("GET", url, headers={"Accept": 'multipart/related; type="application/dicom"'}).prepare()
    signature = sigv4.sign(credentials(emulator), emulator.region, "GET", url, {"Accept": prepared.headers["Accept"]})
    response = requests.get(url, headers=signature.headers, timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("multipart/related")
    assert instance.path.read_bytes() in response.content
