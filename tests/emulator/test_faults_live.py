"""Injected faults as clients meet them: 429/503 with Retry-After, dropped connections, slow answers, a TPS
throttle; the package's client retries through them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import ClientError

from airflow_hi_stow.engine.importer import store_files
from airflow_hi_stow.samples import SampleSet
from airflow_hi_stow.testing import RunningEmulator
from airflow_hi_stow.transport.auth import SigV4StowAuth, refresh_now
from airflow_hi_stow.transport.client import StowClient
from airflow_hi_stow.transport.errors import StowAuthError, StowRetriesExhausted
from airflow_hi_stow.transport.retry import RetryPolicy
from airflow_hi_stow.transport.session import HttpSettings
from tests.emulator.conftest import Signed, instance_count, stow_client

QUICK_RETRIES = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


@pytest.mark.healthimaging_emulator(extra_args=["--fail-rate", "1", "--fail-status", "503", "--retry-after", "7"])
def test_errors_set_at_start_carry_retry_after_and_can_be_cleared(
    healthimaging_emulator: RunningEmulator, sample: SampleSet
) -> None:
    body = sample.instances[0].path.read_bytes()
    response = Signed(healthimaging_emulator, body).send()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert response.headers["x-amzn-ErrorType"] == "ServiceUnavailableException"
    assert instance_count(healthimaging_emulator) == 0
    healthimaging_emulator.clear_faults()
    assert Signed(healthimaging_emulator, body).send().status_code == 200


def test_the_client_retries_through_a_share_of_429_and_503(
    healthimaging_emulator: RunningEmulator, sample: SampleSet
) -> None:
    emulator = healthimaging_emulator
    emulator.set_faults(error_rate=0.5, retry_after=0)
    client = stow_client(emulator, retry=QUICK_RETRIES)
    results = [store_files(client, [item.path]) for item in sample.instances]
    # requests 2, 4, 6, ... are refused: the first instance goes through, each other one at its second attempt
    assert all(result.all_stored for result in results)
    assert [request.throttled for result in results for request in result.requests] == [0, 1, 1, 1, 1, 1]
    stats = emulator.stats()
    assert stats["responses"] == {"200": 6, "429": 3, "503": 2}
    assert stats["faults"] == {"error": 5}
    assert stats["instances"]["stored"] == len(sample.instances)


def test_the_next_requests_can_be_made_to_fail(healthimaging_emulator: RunningEmulator, sample: SampleSet) -> None:
    healthimaging_emulator.set_faults(error_rate=1.0, error_statuses=[429], retry_after=0, max_faults=2)
    result = store_files(stow_client(healthimaging_emulator, retry=QUICK_RETRIES), [sample.instances[0].path])
    assert result.all_stored
    assert (result.requests[0].attempts, result.requests[0].throttled) == (3, 2)


def test_dropped_connections_are_retried_and_store_nothing_twice(
    healthimaging_emulator: RunningEmulator, sample: SampleSet
) -> None:
    emulator = healthimaging_emulator
    emulator.set_faults(drop_rate=0.5)
    client = stow_client(emulator, retry=QUICK_RETRIES, single_part=True)
    results = [store_files(client, [item.path]) for item in sample.instances]
    assert all(result.all_stored for result in results)
    assert [request.attempts for result in results for request in result.requests] == [1, 2, 2, 2, 2, 2]
    stats = emulator.stats()
    assert stats["faults"] == {"drop": 5}
    assert stats["instances"]["received"] == len(sample.instances)
    assert "Exception in ASGI application" not in emulator.log()


def test_slow_answers_make_a_client_time_out(healthimaging_emulator: RunningEmulator, sample: SampleSet) -> None:
    emulator = healthimaging_emulator
    emulator.set_faults(slow_rate=1.0, slow_seconds=2)
    client = stow_client(
        emulator,
        retry=RetryPolicy(max_attempts=2, base_delay=0.01),
        http=HttpSettings(connect_timeout=5.0, read_timeout=0.2),
    )
    with pytest.raises(StowRetriesExhausted) as raised:
        store_files(client, [sample.instances[0].path])
    assert "ReadTimeout" in str(raised.value)
    assert emulator.stats()["faults"] == {"slow": 2}


def test_a_tps_throttle_answers_429_throttling_exception(
    healthimaging_emulator: RunningEmulator, sample: SampleSet
) -> None:
    emulator = healthimaging_emulator
    emulator.set_faults(throttle_rps=0.1, throttle_burst=2)
    body = sample.instances[0].path.read_bytes()
    responses = [Signed(emulator, body).send() for _ in range(4)]
    assert [response.status_code for response in responses] == [200, 200, 429, 429]
    assert responses[2].headers["x-amzn-ErrorType"] == "ThrottlingException"
    assert "Retry-After" not in responses[2].headers


def test_faults_can_cover_the_boto3_apis(healthimaging_emulator: RunningEmulator) -> None:
    emulator = healthimaging_emulator
    emulator.set_faults(throttle_rps=0.1, throttle_burst=1, scope="all")
    client = emulator.boto3_client(retries={"total_max_attempts": 1})
    client.list_datastores()
    with pytest.raises(ClientError) as raised:
        client.list_datastores()
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429


@pytest.mark.healthimaging_emulator(session_token="first-session-token")
def test_a_rotated_session_token_is_refused_as_expired_and_refreshed_credentials_get_through(
    healthimaging_emulator: RunningEmulator, sample: SampleSet
) -> None:
    """An assumed-role session replaced mid-run: the emulator answers the old token 403 ExpiredTokenException; the
    client refreshes its RefreshableCredentials (whose expiry was an hour away) and re-signs."""
    emulator = healthimaging_emulator
    refreshed: list[str] = []

    def assume_role() -> dict[str, str]:
        refreshed.append(str(emulator.session_token))
        return {
            "access_key": emulator.access_key,
            "secret_key": emulator.secret_key,
            "token": str(emulator.session_token),
            "expiry_time": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        }

    credentials = RefreshableCredentials.create_from_metadata(assume_role(), assume_role, "assume-role")
    auth = SigV4StowAuth(credentials.get_frozen_credentials, emulator.region, refresh=lambda: refresh_now(credentials))
    client = StowClient(emulator.dicomweb_url, auth=auth, retry=QUICK_RETRIES)
    assert store_files(client, [sample.instances[0].path]).all_stored
    emulator.rotate_credentials(session_token="second-session-token")
    result = store_files(client, [sample.instances[1].path])
    assert result.all_stored
    assert result.requests[0].retries == {"expired_credentials": 1}
    assert refreshed == ["first-session-token", "second-session-token"]
    assert emulator.stats()["responses"]["403"] == 1

    emulator.rotate_credentials(session_token="third-session-token")  # static credentials cannot be refreshed
    static = StowClient(emulator.dicomweb_url, auth=SigV4StowAuth(credentials.get_frozen_credentials, emulator.region))
    with pytest.raises(StowAuthError, match="ExpiredTokenException"):
        store_files(static, [sample.instances[2].path])
