"""The STOW-RS client against a real HTTP server on loopback: wire format, re-sends, throttling, errors."""

from __future__ import annotations

import email.parser
import email.policy
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.credentials import ReadOnlyCredentials, RefreshableCredentials
from pydicom import dcmread

from airflow_hi_stow.core import sigv4
from airflow_hi_stow.core.results import Outcome
from airflow_hi_stow.core.store_response import FailedInstance, ReferencedInstance, build_store_response
from airflow_hi_stow.emulator import sigv4_verify
from airflow_hi_stow.engine.importer import ImportSettings, store_files
from airflow_hi_stow.samples import SampleInstance, generate_dataset
from airflow_hi_stow.sources.instances import to_instance
from airflow_hi_stow.transport.auth import SigV4StowAuth
from airflow_hi_stow.transport.client import StowClient
from airflow_hi_stow.transport.errors import StowAuthError, StowRetriesExhausted
from airflow_hi_stow.transport.retry import RetryPolicy
from tests.support.scripted_server import Recorded, Reply, replying_server, scripted_server

CREDENTIALS = ReadOnlyCredentials("AKIDEXAMPLE", "secret-key-for-tests", None)
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.02)


@pytest.fixture
def sample(tmp_path: Path) -> list[SampleInstance]:
    generated = generate_dataset(
        tmp_path / "set",
        patients=1,
        studies_per_patient=(1, 1),
        series_per_study=(2, 2),
        instances_per_series=(3, 3),
        redeliver_one_study=False,
    )
    return generated.instances


def all_stored(sample: list[SampleInstance], warning: int | None = None) -> Reply:
    referenced = [
        ReferencedInstance(i.sop_instance_uid, None, f"http://x/{i.sop_instance_uid}", warning) for i in sample
    ]
    return Reply(200, build_store_response(retrieve_url="http://x/studies", referenced=referenced))


def parts(request: Recorded) -> list[bytes]:
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    return [bytes(part.get_payload(decode=True)) for part in message.iter_parts()]


def client(url: str, **options: object) -> StowClient:
    options.setdefault("retry", FAST_RETRY)
    return StowClient(url, **options)  # type: ignore[arg-type]


def test_multipart_wire_format(sample: list[SampleInstance]) -> None:
    with scripted_server(lambda _: all_stored(sample)) as server:
        result = store_files(client(server.url), [i.path for i in sample])
    (request,) = server.requests
    assert request.path == "/studies"
    assert request.headers["Accept"] == "application/dicom+json"
    assert re.fullmatch(
        r'multipart/related; type="application/dicom"; boundary=[\w-]+', request.headers["Content-Type"]
    )
    assert int(request.headers["Content-Length"]) == len(request.body)
    assert "Transfer-Encoding" not in request.headers
    assert parts(request) == [i.path.read_bytes() for i in sample]
    assert result.all_stored
    assert result.counts()["stored"] == len(sample)
    assert [r.retrieve_url for r in result.instances] == [f"http://x/{i.sop_instance_uid}" for i in sample]


def test_store_dicom_study_posts_to_the_study_url(sample: list[SampleInstance]) -> None:
    study = sample[0].study_instance_uid
    with scripted_server(lambda _: all_stored(sample)) as server:
        store_files(client(server.url), [i.path for i in sample], study)
    assert server.requests[0].path == f"/studies/{study}"


def test_a_lone_instance_goes_single_part_when_asked(sample: list[SampleInstance]) -> None:
    with scripted_server(lambda _: all_stored(sample)) as server:
        store_files(client(server.url, single_part=True), [sample[0].path])
    (request,) = server.requests
    assert request.headers["Content-Type"] == "application/dicom"
    assert request.body == sample[0].path.read_bytes()


def test_a_503_is_retried_with_the_whole_body_again(sample: list[SampleInstance]) -> None:
    """dicomweb-client re-sends an empty chunked body after a 503 and reports success; we must not."""
    script = [Reply(503, b"busy", {"Retry-After": "0"}), all_stored(sample)]
    with scripted_server(lambda n: script[n]) as server:
        result = store_files(client(server.url), [i.path for i in sample])
    first, second = server.requests
    assert second.body == first.body
    assert parts(second) == [i.path.read_bytes() for i in sample]
    assert result.all_stored
    assert (result.requests[0].attempts, result.requests[0].throttled) == (2, 1)


class RecordingPacer:
    """Stands in for the engine's throttling gate: records what the client tells it and waits nothing."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self.seen: list[int | None] = []

    def on_retry(self, status: int | None) -> None:
        self.seen.append(status)

    def sleep_before_retry(self, delay: float) -> None:
        self.slept.append(delay)


def test_retry_after_is_honoured_and_reported(sample: list[SampleInstance]) -> None:
    pacer = RecordingPacer()
    script = [Reply(429, headers={"Retry-After": "7"}), Reply(429, headers={"Retry-After": "3"}), all_stored(sample)]
    with scripted_server(lambda n: script[n]) as server:
        result = client(server.url).store_batch([to_instance(sample[0].path)], pacer=pacer)
    assert result.all_stored
    assert pacer.slept[0] >= 7
    assert pacer.slept[1] >= 3
    assert pacer.seen == [429, 429]


def test_throttling_retries_log_at_info_and_server_errors_at_warning(
    sample: list[SampleInstance], caplog: pytest.LogCaptureFixture
) -> None:
    """A run at a TPS quota meets many 429s, which the caller paces: they must not flood the log with warnings."""
    script = [Reply(429, headers={"Retry-After": "0"}), Reply(503, headers={"Retry-After": "0"}), all_stored(sample)]
    with caplog.at_level(logging.INFO, "airflow_hi_stow"), scripted_server(lambda n: script[n]) as server:
        assert store_files(client(server.url), [sample[0].path]).all_stored
    retries = [(r.levelno, r.getMessage()) for r in caplog.records if "retrying" in r.getMessage()]
    assert [level for level, _ in retries] == [logging.INFO, logging.WARNING]
    assert "failed (HTTP 429)" in retries[0][1]
    assert "failed (HTTP 503)" in retries[1][1]


def test_a_connection_dropped_mid_body_is_retried(sample: list[SampleInstance]) -> None:
    script = [Reply(drop_after=100), all_stored(sample)]
    with scripted_server(lambda n: script[n]) as server:
        result = store_files(client(server.url), [i.path for i in sample])
    assert result.all_stored
    assert result.requests[0].attempts == 2
    assert parts(server.requests[1]) == [i.path.read_bytes() for i in sample]


def test_giving_up_names_the_files_and_the_last_problem(sample: list[SampleInstance]) -> None:
    with scripted_server(lambda _: Reply(503)) as server, pytest.raises(StowRetriesExhausted) as raised:
        store_files(client(server.url), [i.path for i in sample])
    assert len(server.requests) == FAST_RETRY.max_attempts
    assert "gave up after 4 attempt(s), last: HTTP 503" in str(raised.value)
    assert sample[0].path.name in str(raised.value)


def test_errors_can_be_reported_per_file_instead_of_raised(sample: list[SampleInstance]) -> None:
    with scripted_server(lambda n: Reply(400, {"message": "bad"}) if n == 0 else all_stored(sample)) as server:
        result = store_files(
            client(server.url),
            [i.path for i in sample],
            settings=ImportSettings(max_batch_instances=3),
            raise_on_error=False,
        )
    counts = result.counts()
    assert (counts["failed"], counts["stored"]) == (3, 3)
    failed = [r for r in result.instances if r.outcome is Outcome.FAILED]
    assert all(r.reason == "HTTP 400: bad" for r in failed)
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("reply", "outcome", "reason"),
    [
        (Reply(503), Outcome.FAILED, "gave up after 4 attempt(s), last: HTTP 503"),
        (Reply(429), Outcome.FAILED, "gave up after 4 attempt(s), last: HTTP 429"),
        (Reply(502), Outcome.UNCONFIRMED, "gave up after 4 attempt(s), last: HTTP 502"),
        (Reply(drop_after=10), Outcome.UNCONFIRMED, "gave up after 4 attempt(s), last: connection problem"),
    ],
)
def test_a_request_that_never_got_through_is_failed_or_of_unknown_fate(
    sample: list[SampleInstance], reply: Reply, outcome: Outcome, reason: str
) -> None:
    """Throttled answers mean "not processed"; a lost connection or a server error may have stored the files."""
    with scripted_server(lambda _: reply) as server:
        result = store_files(client(server.url), [i.path for i in sample[:2]], raise_on_error=False)
    assert len(server.requests) == FAST_RETRY.max_attempts
    assert [item.outcome for item in result.instances] == [outcome, outcome]
    assert all(item.reason is not None and item.reason.startswith(reason) for item in result.instances)


def test_413_halves_the_batch_until_it_fits(sample: list[SampleInstance]) -> None:
    with scripted_server(lambda n: Reply(413) if n == 0 else all_stored(sample)) as server:
        result = store_files(client(server.url), [i.path for i in sample])
    assert result.all_stored
    assert [len(parts(r)) for r in server.requests] == [6, 3, 3]


def test_403_names_the_files_and_hints_without_secrets(sample: list[SampleInstance]) -> None:
    body = {"__type": "InvalidSignatureException", "message": "Signature expired: 20130524T000000Z is now earlier"}
    with scripted_server(lambda _: Reply(403, body, {"x-amzn-RequestId": "req-1"})) as server:
        auth = SigV4StowAuth(lambda: CREDENTIALS, "us-east-1")
        with pytest.raises(StowAuthError) as raised:
            store_files(client(server.url, auth=auth), [sample[0].path])
    text = str(raised.value)
    assert text.startswith("HTTP 403: InvalidSignatureException: Signature expired")
    assert "IAM permission" in text
    assert "request id req-1" in text
    assert sample[0].path.name in text
    assert CREDENTIALS.secret_key not in text
    signature = re.search(r"Signature=(\w+)", server.requests[0].headers["Authorization"])
    assert signature is not None
    assert signature[1] not in text


def test_partial_success_maps_every_instance(sample: list[SampleInstance]) -> None:
    ok, warned, failed, missing = sample[0], sample[1], sample[2], sample[3]
    module = build_store_response(
        retrieve_url=None,
        referenced=[
            ReferencedInstance(ok.sop_instance_uid),
            ReferencedInstance(warned.sop_instance_uid, warning_reason=0xB000),
        ],
        failed=[FailedInstance(failed.sop_instance_uid, failure_reason=0xC122)],
    )
    with scripted_server(lambda _: Reply(202, module)) as server:
        result = store_files(client(server.url), [i.path for i in (ok, warned, failed, missing)])
    assert server.requests
    outcomes = {r.sop_instance_uid: (r.outcome, r.reason) for r in result.instances}
    assert outcomes[ok.sop_instance_uid] == (Outcome.STORED, None)
    assert outcomes[warned.sop_instance_uid] == (Outcome.STORED_WITH_WARNING, "B000 (Coercion of data elements)")
    assert outcomes[failed.sop_instance_uid] == (Outcome.FAILED, "C122 (Referenced Transfer Syntax not supported)")
    assert outcomes[missing.sop_instance_uid] == (Outcome.UNCONFIRMED, "not listed in the HTTP 202 response")
    assert result.status_code == 202


@pytest.mark.parametrize("reply", [Reply(200), Reply(200, b"<html>ok</html>"), Reply(204)])
def test_success_without_a_listing_is_unconfirmed_never_stored(sample: list[SampleInstance], reply: Reply) -> None:
    with scripted_server(lambda _: reply) as server:
        result = store_files(client(server.url), [sample[0].path])
    assert server.requests
    (item,) = result.instances
    assert item.outcome is Outcome.UNCONFIRMED


def test_a_file_that_disappears_mid_run_fails_alone(sample: list[SampleInstance]) -> None:
    instances = [to_instance(i.path) for i in sample]
    sample[2].path.unlink()
    with scripted_server(lambda _: all_stored(sample)) as server:
        result = client(server.url).store_batch(instances)
    by_uid = {r.sop_instance_uid: r for r in result.instances}
    gone = by_uid[sample[2].sop_instance_uid]
    assert gone.outcome is Outcome.FAILED
    assert gone.reason is not None
    assert "cannot read the file" in gone.reason
    assert sum(r.outcome is Outcome.STORED for r in result.instances) == len(sample) - 1
    # the abandoned first try may be recorded after the re-send when the server is slow to read its headers
    (resent,) = [r for r in server.requests if r.whole and r.body]
    assert len(parts(resent)) == len(sample) - 1


def test_a_file_that_changes_size_mid_run_is_not_sent_truncated(sample: list[SampleInstance]) -> None:
    instances = [to_instance(sample[0].path), to_instance(sample[1].path)]
    with sample[0].path.open("ab") as grown:
        grown.write(b"\0" * 10)
    with scripted_server(lambda _: all_stored(sample)) as server:
        result = client(server.url).store_batch(instances)
    changed = next(r for r in result.instances if r.source == str(sample[0].path))
    assert changed.outcome is Outcome.FAILED
    assert changed.reason is not None
    assert "changed while it was being sent" in changed.reason
    # the aborted request and the resend are recorded in the order the server's threads take them up
    answered = [r for r in server.requests if len(r.body) == int(r.headers.get("Content-Length", -1))]
    assert [parts(request) for request in answered] == [[sample[1].path.read_bytes()]]


def rotating_credentials() -> tuple[RefreshableCredentials, list[str]]:
    """Credentials that expire in 5 minutes, so every freeze refreshes them (botocore refreshes within 10)."""
    issued: list[str] = []

    def refresh() -> dict[str, str]:
        issued.append(f"ASIAROTATED{len(issued):04d}")
        return {
            "access_key": issued[-1],
            "secret_key": "rotated-secret",
            "token": f"token-{len(issued)}",
            "expiry_time": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
        }

    return RefreshableCredentials.create_from_metadata(refresh(), refresh, "sts-assume-role"), issued


def test_credentials_are_frozen_per_request(sample: list[SampleInstance]) -> None:
    credentials, issued = rotating_credentials()
    auth = SigV4StowAuth(credentials.get_frozen_credentials, "us-east-1")
    with scripted_server(lambda _: all_stored(sample)) as server:
        store_files(
            client(server.url, auth=auth), [i.path for i in sample], settings=ImportSettings(max_batch_instances=2)
        )
    used = [re.search(r"Credential=(\w+)/", r.headers["Authorization"])[1] for r in server.requests]  # type: ignore[index]
    tokens = [r.headers["X-Amz-Security-Token"] for r in server.requests]
    assert len(server.requests) == 3
    assert len(set(used)) == 3
    assert set(used) <= set(issued)
    assert len(set(tokens)) == 3


@pytest.mark.parametrize("mode", list(sigv4.PayloadSigning))
def test_each_payload_mode_on_the_wire(sample: list[SampleInstance], mode: sigv4.PayloadSigning) -> None:
    auth = SigV4StowAuth(lambda: CREDENTIALS, "us-east-1", mode, chunk_size=8192)
    files = [i.path for i in sample]
    with scripted_server(lambda _: all_stored(sample)) as server:
        store_files(client(server.url, auth=auth), files)
    (request,) = server.requests
    headers = {name.lower(): value for name, value in request.headers.items()}
    authorization = sigv4_verify.parse_authorization(headers["authorization"])
    signed = {name: headers[name] for name in authorization.signed_headers}
    seed = sigv4_verify.recompute(
        CREDENTIALS, "us-east-1", "POST", server.url + request.path, signed, headers["x-amz-date"]
    )
    assert seed.signature == authorization.signature
    body = request.body
    if mode is sigv4.PayloadSigning.AWS_CHUNKED:
        assert headers["content-encoding"] == "aws-chunked"
        body = decode_and_verify_chunks(body, sigv4.ChunkSigner(seed).sign)
    payload = b"".join(files_as_multipart_parts(request, body))
    assert payload == b"".join(f.read_bytes() for f in files)
    expected_hash = {
        sigv4.PayloadSigning.STREAMING: sigv4.STREAMING_PAYLOAD,
        sigv4.PayloadSigning.AWS_CHUNKED: sigv4.STREAMING_PAYLOAD,
    }.get(mode)
    if expected_hash:
        assert headers["x-amz-content-sha256"] == expected_hash
        assert int(headers["x-amz-decoded-content-length"]) == len(body)
    else:
        import hashlib

        assert headers["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()


def decode_and_verify_chunks(body: bytes, sign: Callable[[bytes], str]) -> bytes:
    decoded = bytearray()
    while True:
        header, body = body.split(b"\r\n", 1)
        size_hex, signature = header.decode().split(";chunk-signature=")
        size = int(size_hex, 16)
        chunk, body = body[:size], body[size + 2 :]
        assert sign(chunk) == signature
        decoded += chunk
        if size == 0:
            assert body == b""
            return bytes(decoded)


def files_as_multipart_parts(request: Recorded, body: bytes) -> list[bytes]:
    return parts(Recorded(request.method, request.path, request.headers, body))


def test_a_uid_with_a_trailing_newline_never_reaches_the_url() -> None:
    with pytest.raises(ValueError, match="not a valid DICOM UID"):
        client("http://127.0.0.1:1").studies_url("1.2.3\n")


def test_an_old_vendor_root_is_sent_as_orthanc_and_healthimaging_accept_it(tmp_path: Path) -> None:
    """UIDs rooted at 999.999 break no request; refusing them lost real files (the validation step warns)."""
    generated = generate_dataset(tmp_path / "g", patients=1, studies_per_patient=(1, 1), series_per_study=(1, 1),
                                 instances_per_series=(1, 1), redeliver_one_study=False)  # fmt: skip
    dataset = dcmread(generated.instances[0].path)
    dataset.StudyInstanceUID = "999.999.2.19941105.112000"
    dataset.SOPInstanceUID = "999.999.2.19941105.112000.2.107"
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    old = tmp_path / "old.dcm"
    dataset.save_as(old, enforce_file_format=True)
    reply = Reply(200, build_store_response(retrieve_url=None, referenced=[ReferencedInstance(dataset.SOPInstanceUID)]))
    with scripted_server(lambda _: reply) as server:
        result = store_files(client(server.url), [str(old)], "999.999.2.19941105.112000")
    assert result.all_stored
    assert server.requests[0].path == "/studies/999.999.2.19941105.112000"


def test_closing_the_client_releases_its_connections(sample: list[SampleInstance]) -> None:
    with scripted_server(lambda _: all_stored(sample)) as server:
        with client(server.url) as c:
            c.store_batch([to_instance(sample[0].path)])
            pool = c.session.get_adapter(server.url).poolmanager  # type: ignore[attr-defined]
            assert len(pool.pools) == 1
        assert len(pool.pools) == 0


def test_a_415_refusal_is_shared_by_threads_without_changing_the_configuration(
    sample: list[SampleInstance],
) -> None:
    """The client is shared by the engine's sender threads: the 415 fallback is a one-way latch, the configured
    ``single_part`` stays as given (stage 1 rewrote it at run time)."""

    def answer(request: Recorded) -> Reply:
        if request.headers["Content-Type"] == "application/dicom":
            return Reply(415, {"message": "multipart only"})
        return all_stored(sample)

    with replying_server(answer) as server:
        shared = client(server.url, single_part=True)
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda item: shared.store_batch([to_instance(item.path)]), sample))
    assert all(result.all_stored for result in results)
    assert shared.single_part is True
    assert shared.sends_single_part is False
    refused = [r for r in server.requests if r.headers["Content-Type"] == "application/dicom"]
    assert 1 <= len(refused) <= 6
    assert len(server.requests) - len(refused) == len(sample)
