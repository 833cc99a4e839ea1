"""With every logger at DEBUG (as Airflow's ``logging_level = DEBUG`` sets it), a store prints no secret key, no
session token and no request signature: not for the STOW-RS requests (a leaked ``streaming`` signature would let its
reader POST any body for 15 minutes), not for boto3's own S3 reads and image-set look-ups. The user's other DEBUG
lines stay."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_hi_stow.core import redaction
from airflow_hi_stow.hooks.healthimaging import HealthImagingStowHook
from airflow_hi_stow.samples import SampleSet, generate_dataset
from airflow_hi_stow.testing import RunningEmulator, start_emulator
from airflow_hi_stow.transport.errors import StowAuthError
from tests.support.s3 import MotoS3

SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLEsessionTOKENvalue0123456789abcdefABCDEF"


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with start_emulator(session_token=SESSION_TOKEN) as running:
        yield running


@pytest.fixture
def sample(tmp_path: Path) -> SampleSet:
    return generate_dataset(tmp_path / "set", patients=1, studies_per_patient=(1, 1), series_per_study=(1, 1),
                            instances_per_series=(3, 3), redeliver_one_study=False)  # fmt: skip


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """Everything logged at DEBUG or above, by any logger, while the test runs."""
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in ("botocore", "urllib3", "airflow_hi_stow"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield captured
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def signatures_sent(hook: HealthImagingStowHook) -> list[str]:
    """Collects the signature of every request the hook's STOW-RS client and boto3 client send from now on."""
    sent: list[str] = []

    def keep(authorization: Any) -> None:
        text = authorization.decode() if isinstance(authorization, bytes) else str(authorization)
        sent.extend(re.findall(r"Signature=([0-9a-f]{64})", text))

    hook.stow_client.session.hooks["response"].append(
        lambda response, **_: keep(response.request.headers.get("Authorization", ""))
    )
    hook.conn.meta.events.register("before-send", lambda request, **_: keep(request.headers.get("Authorization", "")))
    return sent


def connection(
    monkeypatch: pytest.MonkeyPatch, emulator: RunningEmulator, secret: str | None = None, s3_url: str | None = None
) -> None:
    """One AWS connection for both services, each on its own endpoint (``service_config``) when S3 is used."""
    data = json.loads(emulator.aws_connection_json(datastore_id=emulator.datastore_id, s3_endpoint_url=s3_url))
    if secret:
        data["password"] = secret
    monkeypatch.setenv("AIRFLOW_CONN_AHI_DEBUG", json.dumps(data))


def assert_clean(log: str, secrets: list[str]) -> None:
    assert secrets
    leaked = [secret[:6] + "..." for secret in secrets if secret in log]
    assert not leaked, f"secrets in the DEBUG log: {leaked}"
    found = re.search(r"Signature[=:]\s*[0-9a-f]{64}", log)
    assert not found, log[max(0, found.start() - 300) : found.end()] if found else ""
    assert "x-amz-security-token:" + SESSION_TOKEN[:10] not in log


def test_a_successful_store_logs_no_secret_at_debug(
    monkeypatch: pytest.MonkeyPatch,
    emulator: RunningEmulator,
    sample: SampleSet,
    moto_s3: MotoS3,
    debug_log: io.StringIO,
) -> None:
    connection(monkeypatch, emulator, s3_url=moto_s3.url)  # moto takes any key
    uris = moto_s3.upload_tree(sample.root, "in")
    debug_log.seek(0)
    debug_log.truncate()  # the test's own uploads, signed by a plain boto3 client, are not the store's lines
    hook = HealthImagingStowHook("ahi_debug")
    sent = signatures_sent(hook)
    result = hook.store_instances(f"s3://{moto_s3.bucket}/in/")
    assert result.counts()["stored"] == len(uris)
    hook.conn.search_image_sets(datastoreId=emulator.datastore_id)
    log = debug_log.getvalue()
    assert "Sending http request" in log  # botocore's DEBUG lines are there, only cleaned
    assert "POST /datastore/" in log  # so are urllib3's
    assert len(sent) >= 2
    assert_clean(log, [emulator.secret_key, SESSION_TOKEN, *sent])


def test_a_refused_store_logs_no_secret_at_debug(
    monkeypatch: pytest.MonkeyPatch, emulator: RunningEmulator, sample: SampleSet, debug_log: io.StringIO
) -> None:
    wrong = "wrong-secret-key-0123456789abcdefghijkl"
    connection(monkeypatch, emulator, secret=wrong)
    hook = HealthImagingStowHook("ahi_debug")
    sent = signatures_sent(hook)
    with pytest.raises(StowAuthError) as raised:
        hook.store_instances(str(sample.root))
    assert raised.value.status_code == 403
    log = debug_log.getvalue() + str(raised.value)
    assert_clean(log, [wrong, SESSION_TOKEN, *sent])


def test_the_session_token_is_registered_with_airflow_s_secrets_masker(
    monkeypatch: pytest.MonkeyPatch, emulator: RunningEmulator, sample: SampleSet
) -> None:
    from airflow.providers.common.compat.sdk import redact

    connection(monkeypatch, emulator)
    hook = HealthImagingStowHook("ahi_debug")
    assert hook.store_instances([str(sample.instances[0].path)]).all_stored
    assert SESSION_TOKEN not in str(redact(f"token {SESSION_TOKEN}"))
    assert emulator.secret_key not in str(redact(f"key {emulator.secret_key}"))


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("CanonicalRequest:\nPOST\n/x\n\nhost:h\nx-amz-security-token:IQoJb3JpZ2luX2VjEAo\n", "IQoJb3JpZ2luX2VjEAo"),
        ("Signature:\n" + "ab" * 32, "ab" * 32),
        ("headers={'X-Amz-Security-Token': b'IQoJtoken', 'Authorization': b'AWS4-HMAC-SHA256 Cred'}", "IQoJtoken"),
        (
            "Response body:\nb'<SecretAccessKey>wJalrXUtnFEMI</SecretAccessKey><SessionToken>tok</SessionToken>'",
            "wJalr",
        ),
        ('{"AccessKeyId": "ASIAEXAMPLEKEY1234", "SecretAccessKey": "s3cr3t", "Token": "tok-1"}', "s3cr3t"),
        ('{"DICOMPatientName": "DOE^JANE", "DICOMPatientId": "MRN-1"}', "DOE^JANE"),
        ("GET /b/k?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIAEXAMPLE", "deadbeef"),
    ],
)
def test_the_redaction_of_botocore_s_debug_lines(line: str, secret: str) -> None:
    assert secret in line
    assert secret not in redaction.redact(line)
