"""The package's signing client against the emulator, which verifies SigV4 in all three payload modes and parses
the bodies; then each kind of tampering, refused with 403 and nothing stored."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from airflow_hi_stow.core.sigv4 import PayloadSigning
from airflow_hi_stow.hooks.healthimaging import HealthImagingStowHook
from airflow_hi_stow.samples import SampleSet
from airflow_hi_stow.testing import RunningEmulator
from tests.emulator.conftest import Signed, credentials, instance_count, retrieve, temporary_files

MODES = [mode.value for mode in PayloadSigning]


@pytest.mark.parametrize("mode", MODES)
def test_the_hook_stores_single_part_and_multipart_bodies_that_read_back_identical(
    mode: str, healthimaging_emulator: RunningEmulator, sample: SampleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = healthimaging_emulator
    monkeypatch.setenv("AIRFLOW_CONN_AHI", emulator.aws_connection_json(payload_signing=mode))
    hook = HealthImagingStowHook(aws_conn_id="ahi", datastore_id=emulator.datastore_id)
    assert hook.payload_signing.value == mode
    first, *rest = sample.instances

    single = hook.store_instances([first.path])
    multi = hook.store_instances([item.path for item in rest])

    assert single.all_stored
    assert multi.all_stored
    assert [request.instances for request in single.requests + multi.requests] == [1, len(rest)]
    assert {request.status_code for request in single.requests + multi.requests} == {200}
    assert emulator.stats()["operations"]["StoreDICOM"] == 2
    for instance in sample.instances:
        response = retrieve(emulator, instance)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/dicom"
        assert response.content == instance.path.read_bytes()
    assert instance_count(emulator) == len(sample.instances)


def test_the_hook_stores_a_study_through_store_dicom_study(
    healthimaging_emulator: RunningEmulator, sample: SampleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AHI", healthimaging_emulator.aws_connection_json(payload_signing="aws-chunked"))
    hook = HealthImagingStowHook(aws_conn_id="ahi", datastore_id=healthimaging_emulator.datastore_id)
    result = hook.store_instances([item.path for item in sample.instances], sample.study_uids[0])
    assert result.all_stored
    assert healthimaging_emulator.stats()["operations"] == {"StoreDICOMStudy": 1}


@pytest.mark.healthimaging_emulator(session_token="FwoGZXIvYXdzEXAMPLE-token")
def test_the_hook_signs_with_the_session_token_of_its_connection(
    healthimaging_emulator: RunningEmulator, sample: SampleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AHI", healthimaging_emulator.aws_connection_json())
    hook = HealthImagingStowHook(aws_conn_id="ahi", datastore_id=healthimaging_emulator.datastore_id)
    assert hook.store_instances([sample.instances[0].path]).all_stored
    assert hook.get_conn().get_datastore(datastoreId=healthimaging_emulator.datastore_id)["datastoreProperties"]


# Tampering: each request is signed correctly for the emulator, then one thing is changed.


def flip_byte(body: bytes, offset: int) -> bytes:
    return body[:offset] + bytes([body[offset] ^ 0x01]) + body[offset + 1 :]


def replace_last_chunk_signature(request: Signed) -> None:
    *_, last = request.body.rsplit(b";chunk-signature=", 1)
    request.body = request.body[: -len(last)] + b"0" * 64 + last[64:]


def change_decoded_length(request: Signed) -> None:
    request.headers["X-Amz-Decoded-Content-Length"] = str(int(request.headers["X-Amz-Decoded-Content-Length"]) + 1)


def change_data_byte(request: Signed) -> None:
    request.body = flip_byte(request.body, len(request.body) - 2000)


TAMPERING: list[tuple[str, PayloadSigning, Callable[[Signed], None] | None]] = [
    *((f"secret-{mode.value}", mode, None) for mode in PayloadSigning),
    ("body-byte-sha256", PayloadSigning.SHA256, change_data_byte),
    ("body-byte-aws-chunked", PayloadSigning.AWS_CHUNKED, change_data_byte),
    ("chunk-signature", PayloadSigning.AWS_CHUNKED, replace_last_chunk_signature),
    ("decoded-length-streaming", PayloadSigning.STREAMING, change_decoded_length),
    ("decoded-length-aws-chunked", PayloadSigning.AWS_CHUNKED, change_decoded_length),
]


@pytest.mark.parametrize(("kind", "mode", "tamper"), TAMPERING, ids=[item[0] for item in TAMPERING])
def test_a_tampered_request_is_refused_with_403_and_nothing_is_stored(
    kind: str,
    mode: PayloadSigning,
    tamper: Callable[[Signed], None] | None,
    healthimaging_emulator: RunningEmulator,
    sample: SampleSet,
) -> None:
    emulator = healthimaging_emulator
    body = sample.instances[0].path.read_bytes()
    request = Signed(emulator, body, mode, secret="not-the-secret" if tamper is None else None)
    if tamper is not None:
        tamper(request)
    response = request.send()
    assert response.status_code == 403, response.text
    assert response.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert response.headers["x-amzn-RequestId"]
    assert instance_count(emulator) == 0
    assert temporary_files(emulator) == []
    for secret in (emulator.secret_key, request.signature):
        assert secret not in response.text
        assert secret not in emulator.log()


def test_an_expired_signature_is_refused(
    healthimaging_emulator: RunningEmulator, sample: SampleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed_at = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=20)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: signed_at)
    request = Signed(healthimaging_emulator, sample.instances[0].path.read_bytes(), PayloadSigning.STREAMING)
    response = request.send()
    assert response.status_code == 403
    assert json.loads(response.content)["message"].startswith("Signature expired")
    assert instance_count(healthimaging_emulator) == 0


def test_the_documented_streaming_form_does_not_sign_the_body(
    healthimaging_emulator: RunningEmulator, sample: SampleSet
) -> None:
    """With the STREAMING literal and an unframed body, nothing covers the body's bytes: a changed pixel byte goes
    through. (This is HealthImaging's documented curl form; aws-chunked or sha256 protect the body.)"""
    request = Signed(healthimaging_emulator, sample.instances[0].path.read_bytes(), PayloadSigning.STREAMING)
    change_data_byte(request)
    assert request.send().status_code == 200
    assert instance_count(healthimaging_emulator) == 1


def test_a_refused_large_body_is_read_to_its_end_so_the_client_sees_the_403(
    healthimaging_emulator: RunningEmulator, tmp_path: Path
) -> None:
    """requests sends the whole body before it reads the answer: an early answer followed by a close would reach
    it as a reset connection."""
    request = Signed(healthimaging_emulator, b"\0" * (16 * 1024 * 1024), PayloadSigning.STREAMING, secret="wrong")
    response = request.send()
    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "InvalidSignatureException"


@pytest.mark.parametrize("tampered", [False, True])
def test_a_body_signed_without_a_declared_hash_is_verified_once_received(
    tampered: bool, healthimaging_emulator: RunningEmulator, sample: SampleSet
) -> None:
    """botocore's plain SigV4Auth signs the body's hash without sending it: the emulator hashes the body as it
    streams to disk and checks the signature at the end, storing nothing if it fails."""
    emulator = healthimaging_emulator
    body = sample.instances[0].path.read_bytes()
    request = AWSRequest(
        "POST", f"{emulator.dicomweb_url}/studies", data=body, headers={"Content-Type": "application/dicom"}
    )
    SigV4Auth(credentials(emulator), "medical-imaging", emulator.region).add_auth(request)
    assert "X-Amz-Content-SHA256" not in request.headers
    sent = flip_byte(body, len(body) - 10) if tampered else body
    response = requests.post(request.url, data=sent, headers=dict(request.headers.items()), timeout=30)
    assert response.status_code == (403 if tampered else 200)
    assert instance_count(emulator) == (0 if tampered else 1)
    assert temporary_files(emulator) == []
