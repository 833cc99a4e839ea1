"""SigV4 verification against the HealthImaging-shaped fixtures of docs/reference (computed independently with
hashlib and botocore), in the three payload modes, and each reason to refuse a request."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from airflow_hi_stow.core import sigv4
from airflow_hi_stow.emulator.auth import Authenticator, EmulatorCredentials, PayloadCheck
from airflow_hi_stow.emulator.aws_chunked import AwsChunkedDecoder
from airflow_hi_stow.emulator.errors import AwsError

CREDENTIALS = EmulatorCredentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
SIGNED_AT = datetime(2013, 5, 24, tzinfo=UTC)
PATH = "/datastore/d9a2a515ab294163a2d2f4069eed584c/studies"
HOST = "dicom-medical-imaging.us-east-1.amazonaws.com"
PAYLOAD = b"a" * 66560
SCOPE = "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/medical-imaging/aws4_request"
MODE_A = "c96c792ec07295a1599bf4ca7ac989aab16de114928bdd8bb104f908c84fbbeb"
MODE_C = "2f190f8e3fd8c9742af9473ba973a258a5a4aac8669f4a4f5f4a7f719d1fc3a8"
MODE_B_SEED = "f8d0970594d5acac9ec17db5a10c61d215003b6cdcc7b44dec11246cdf64b3b8"
MODE_B_CHUNKS = (
    "ff725c1db9f0c206d84601fa30a70252ff6f43efaf9dbf69f5da88a614bb7057",
    "deaf67ba8b03da3b1e2a2928eb70870418b69b0c53cb6d15b31ccadcc5c595a1",
    "3da702e4a7c6170cdab4eae8987c713e3bc930a37b729e693bd1bf152dc8f822",
)


def authenticator(now: datetime = SIGNED_AT, credentials: EmulatorCredentials = CREDENTIALS) -> Authenticator:
    return Authenticator(credentials, "us-east-1", clock=lambda: now)


def headers(mode: str) -> dict[str, str]:
    common = {
        "accept": "application/dicom+json",
        "content-type": "application/dicom",
        "host": HOST,
        "x-amz-date": "20130524T000000Z",
    }
    if mode == "A":
        signed = "accept;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length"
        extra = {"x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "x-amz-decoded-content-length": "66560"}
        signature = MODE_A
    elif mode == "B":
        signed = (
            "accept;content-encoding;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length"
        )
        extra = {
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "x-amz-decoded-content-length": "66560",
            "content-encoding": "aws-chunked",
        }
        signature = MODE_B_SEED
    else:
        signed = "accept;content-type;host;x-amz-content-sha256;x-amz-date"
        extra = {"x-amz-content-sha256": hashlib.sha256(PAYLOAD).hexdigest()}
        signature = MODE_C
    authorization = f"AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders={signed}, Signature={signature}"
    return {**common, **extra, "authorization": authorization}


def refused(request_headers: dict[str, str], verifier: Authenticator | None = None) -> AwsError:
    with pytest.raises(AwsError) as raised:
        (verifier or authenticator()).authenticate("POST", PATH, "", request_headers)
    assert "Signature=" not in raised.value.message
    assert CREDENTIALS.secret_key not in raised.value.message
    return raised.value


def test_mode_a_the_documented_streaming_form() -> None:
    signed = authenticator().authenticate("POST", PATH, "", headers("A"))
    assert signed.check is PayloadCheck.NONE
    assert signed.seed is not None
    assert signed.seed.signature == MODE_A


def test_mode_c_checks_the_declared_hash_against_the_body() -> None:
    signed = authenticator().authenticate("POST", PATH, "", headers("C"))
    assert signed.check is PayloadCheck.SHA256
    signed.verify_payload(hashlib.sha256(PAYLOAD).hexdigest())
    with pytest.raises(AwsError) as raised:
        signed.verify_payload(hashlib.sha256(PAYLOAD[:-1] + b"b").hexdigest())
    assert raised.value.status == 403


def test_mode_b_seed_and_every_published_chunk_signature_verify() -> None:
    signed = authenticator().authenticate("POST", PATH, "", headers("B"))
    assert signed.check is PayloadCheck.CHUNKS
    assert signed.seed is not None
    body = b"".join(
        f"{len(data):x};chunk-signature={signature}\r\n".encode() + data + b"\r\n"
        for data, signature in zip((PAYLOAD[:65536], PAYLOAD[65536:], b""), MODE_B_CHUNKS, strict=True)
    )
    decoder = AwsChunkedDecoder(signed.seed)
    assert b"".join(bytes(piece) for piece in decoder.feed(body)) == PAYLOAD
    assert decoder.done


def test_a_body_signed_without_declaring_its_hash_is_verified_at_its_end() -> None:
    """botocore's plain SigV4Auth (the control-plane requests) signs the body's hash without sending it."""
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest("POST", f"http://127.0.0.1:8042{PATH}?maxResults=5", data=b'{"filters": []}')
    botocore.auth.SigV4Auth(
        Credentials(CREDENTIALS.access_key, CREDENTIALS.secret_key), "medical-imaging", "us-east-1"
    ).add_auth(request)
    now = datetime.now(UTC)
    received = {name.lower(): str(value) for name, value in request.headers.items()} | {"host": "127.0.0.1:8042"}
    signed = authenticator(now).authenticate("POST", PATH, "maxResults=5", received)
    assert signed.check is PayloadCheck.DEFERRED
    signed.verify_payload(hashlib.sha256(b'{"filters": []}').hexdigest())
    with pytest.raises(AwsError):
        signed.verify_payload(hashlib.sha256(b'{"filters": [1]}').hexdigest())


def test_a_host_signed_without_its_port_is_accepted() -> None:
    """Some signers (curl 7.x) sign the host name while the Host header carries the port."""
    signed = authenticator().authenticate("POST", PATH, "", {**headers("A"), "host": f"{HOST}:443"})
    assert signed.seed is not None


@pytest.mark.parametrize(
    ("now", "message"),
    [
        (SIGNED_AT + timedelta(minutes=15, seconds=1), "Signature expired"),
        (SIGNED_AT - timedelta(minutes=15, seconds=1), "Signature not yet current"),
    ],
)
def test_the_clock_skew_window_is_15_minutes(now: datetime, message: str) -> None:
    assert authenticator(SIGNED_AT + timedelta(minutes=14)).authenticate("POST", PATH, "", headers("A"))
    error = refused(headers("A"), authenticator(now))
    assert error.status == 403
    assert message in error.message


@pytest.mark.parametrize(
    ("change", "error_type"),
    [
        ({"x-amz-decoded-content-length": "66561"}, "InvalidSignatureException"),
        ({"content-type": "application/octet-stream"}, "InvalidSignatureException"),
        ({"x-amz-date": "20130524T000001Z"}, "InvalidSignatureException"),
        ({"x-amz-date": "20130525T000000Z"}, "InvalidSignatureException"),
        (
            {"authorization": headers("A")["authorization"].replace("us-east-1", "eu-west-1")},
            "InvalidSignatureException",
        ),
        (
            {"authorization": headers("A")["authorization"].replace("/medical-imaging/", "/s3/")},
            "InvalidSignatureException",
        ),
        (
            {"authorization": headers("A")["authorization"].replace("AKIAIOSFODNN7", "AKIAOTHERKEY7")},
            "UnrecognizedClientException",
        ),
        ({"authorization": "AWS4-HMAC-SHA256 Credential=nonsense"}, "IncompleteSignatureException"),
        ({"authorization": ""}, "MissingAuthenticationTokenException"),
        ({"x-amz-security-token": "a-token"}, "UnrecognizedClientException"),
        ({"x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"}, "ValidationException"),
    ],
)
def test_each_tampering_is_refused(change: dict[str, str], error_type: str) -> None:
    error = refused({**headers("A"), **change})
    assert error.error_type == error_type


def test_another_secret_is_refused() -> None:
    other = EmulatorCredentials(CREDENTIALS.access_key, "another secret")
    assert refused(headers("A"), authenticator(credentials=other)).error_type == "InvalidSignatureException"


def test_a_configured_session_token_is_required_and_signed() -> None:
    with_token = authenticator(credentials=EmulatorCredentials(CREDENTIALS.access_key, CREDENTIALS.secret_key, "t0k"))
    assert refused(headers("A"), with_token).error_type == "UnrecognizedClientException"
    unsigned = refused({**headers("A"), "x-amz-security-token": "t0k"}, with_token)
    assert unsigned.error_type == "IncompleteSignatureException"


def test_rotated_credentials_are_refused_as_expired() -> None:
    """The emulator's rotation (an assumed-role session replaced): the old key pair or token is ExpiredToken, which
    clients refresh on; a key it never accepted stays UnrecognizedClient; the new credentials verify."""
    rotated = authenticator()
    rotated.rotate(EmulatorCredentials("ASIANEWKEYEXAMPLE000", "another secret", "new-token"))
    assert refused(headers("A"), rotated).error_type == "ExpiredTokenException"
    assert refused(headers("A"), rotated).status == 403
    stranger = headers("A") | {"authorization": headers("A")["authorization"].replace("AKIAIOSFODNN7", "AKIASTRANGER")}
    assert refused(stranger, rotated).error_type == "UnrecognizedClientException"
    same_key = authenticator(credentials=EmulatorCredentials(CREDENTIALS.access_key, CREDENTIALS.secret_key, "t1"))
    same_key.rotate(EmulatorCredentials(CREDENTIALS.access_key, CREDENTIALS.secret_key, "t2"))
    assert refused({**headers("A"), "x-amz-security-token": "t1"}, same_key).error_type == "ExpiredTokenException"
    back = authenticator()
    back.rotate(EmulatorCredentials("ASIANEWKEYEXAMPLE000", "another secret"))
    back.rotate(CREDENTIALS)  # rotating back accepts them again
    assert back.authenticate("POST", PATH, "", headers("A")).check is PayloadCheck.NONE


def test_unsigned_payload_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: SIGNED_AT.replace(tzinfo=None))
    url = f"https://{HOST}{PATH}"
    signed = sigv4.sign(CREDENTIALS, "us-east-1", "POST", url, {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    received = {name.lower(): value for name, value in signed.headers.items()} | {"host": HOST}
    assert authenticator().authenticate("POST", PATH, "", received).check is PayloadCheck.NONE
