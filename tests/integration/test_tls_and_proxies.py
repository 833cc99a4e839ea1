"""The AWS connection governs the STOW-RS requests as it governs boto3: TLS verification with its CA bundle (or
``AWS_CA_BUNDLE``), its proxies (or ``HTTPS_PROXY``/``NO_PROXY``), through a real forward proxy (tinyproxy) to the
emulator serving ``https://``. A certificate problem fails at once, naming the setting that fixes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_hi_stow.cli import EXIT_OK, main
from airflow_hi_stow.core.results import Outcome
from airflow_hi_stow.engine.importer import ImportSettings, run_import
from airflow_hi_stow.hooks.healthimaging import HealthImagingStowHook
from airflow_hi_stow.samples import SampleSet, generate_dataset
from airflow_hi_stow.testing import RunningEmulator, start_emulator
from airflow_hi_stow.transport.errors import StowTLSError
from tests.support import tinyproxy
from tests.support.tinyproxy import Proxy, running_proxy


@pytest.fixture(scope="module")
def https_emulator() -> Iterator[RunningEmulator]:
    with start_emulator(tls=True) as emulator:
        yield emulator


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    reason = tinyproxy.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with running_proxy(tmp_path / "proxy") as running:
        yield running


@pytest.fixture
def sample(tmp_path: Path) -> SampleSet:
    return generate_dataset(tmp_path / "set", patients=1, studies_per_patient=(1, 1), series_per_study=(2, 2),
                            instances_per_series=(3, 3), redeliver_one_study=False)  # fmt: skip


@pytest.fixture(autouse=True)
def no_proxy_or_bundle_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "AWS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def hook(monkeypatch: pytest.MonkeyPatch, emulator: RunningEmulator, **extra: object) -> HealthImagingStowHook:
    connection = json.loads(emulator.aws_connection_json(datastore_id=emulator.datastore_id))
    connection["extra"].pop("verify", None)
    connection["extra"].update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_AHI_TLS", json.dumps(connection))
    return HealthImagingStowHook("ahi_tls")


def emulator_host(emulator: RunningEmulator) -> str:
    return emulator.url.removeprefix("https://")


def test_a_store_goes_through_the_connection_s_proxy_and_ca_bundle(
    monkeypatch: pytest.MonkeyPatch, https_emulator: RunningEmulator, proxy: Proxy, sample: SampleSet
) -> None:
    assert https_emulator.url.startswith("https://")
    ahi = hook(
        monkeypatch,
        https_emulator,
        verify=https_emulator.ca_bundle,
        config_kwargs={"proxies": {"https": proxy.url}, "connect_timeout": 5, "read_timeout": 60},
    )
    settings = ahi.http_settings()
    assert (settings.connect_timeout, settings.read_timeout) == (5, 60)
    result = ahi.store_instances(str(sample.root))
    assert result.counts()["stored"] == len(sample.instances)
    tunnels = proxy.connects()
    assert tunnels
    assert set(tunnels) == {emulator_host(https_emulator)}
    # boto3's read side takes the same settings from the same connection
    found = ahi.conn.search_image_sets(datastoreId=https_emulator.datastore_id)["imageSetsMetadataSummaries"]
    assert len(found) == 2
    assert len(proxy.connects()) > len(tunnels)


def test_the_environment_s_proxy_ca_bundle_and_no_proxy_apply_as_for_boto3(
    monkeypatch: pytest.MonkeyPatch, https_emulator: RunningEmulator, proxy: Proxy, sample: SampleSet
) -> None:
    ahi = hook(monkeypatch, https_emulator)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(https_emulator.ca_bundle))
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    first, rest = sample.instances[0], sample.instances[1:]
    assert ahi.store_instances([str(first.path)]).all_stored
    assert proxy.connects() == [emulator_host(https_emulator)]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert ahi.store_instances([str(i.path) for i in rest]).all_stored
    assert len(proxy.connects()) == 1  # not through the proxy any more


def test_a_certificate_problem_fails_at_once_and_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, https_emulator: RunningEmulator, sample: SampleSet, tmp_path: Path
) -> None:
    https_emulator.reset_stats()
    ahi = hook(monkeypatch, https_emulator)  # the system's CAs do not know the emulator's
    with pytest.raises(StowTLSError) as raised:
        ahi.store_instances(str(sample.root))
    text = str(raised.value)
    assert "certificate verification failed" in text
    assert "verify extra" in text
    assert "AWS_CA_BUNDLE" in text
    # through the engine (as the operator runs it): one attempt, the other requests not sent, every file reported
    with ahi.get_stow_client() as client:
        summary = run_import(
            str(sample.root), client=client, settings=ImportSettings(max_batch_instances=2, max_connections=1)
        )
    assert summary["counts"]["failed"] == len(sample.instances)
    assert summary["requests"] == 3
    reasons = {item["reason"]: item["count"] for item in summary["top_reasons"]}
    tls_reasons = [reason for reason in reasons if reason.startswith("TLS to 127.0.0.1: certificate verification")]
    assert len(tls_reasons) == 1
    assert reasons[tls_reasons[0]] == 2  # the first request
    assert sum(count for reason, count in reasons.items() if reason.startswith("not sent: an earlier request")) == 4
    assert "connection problem" not in json.dumps(summary)  # not taken for a transient error, never retried
    assert https_emulator.stats().get("responses", {}) == {}


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verify_false_is_honoured(
    monkeypatch: pytest.MonkeyPatch, https_emulator: RunningEmulator, sample: SampleSet
) -> None:
    ahi = hook(monkeypatch, https_emulator, verify=False)
    assert ahi.store_instances([str(sample.instances[0].path)]).all_stored


def test_the_cli_takes_a_ca_bundle(
    https_emulator: RunningEmulator,
    sample: SampleSet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", https_emulator.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", https_emulator.secret_key)
    status = main(["store", str(sample.root), "--datastore-id", https_emulator.datastore_id, "--region",
                   https_emulator.region, "--endpoint-url", https_emulator.url, "--ca-bundle",
                   str(https_emulator.ca_bundle), "--quiet"])  # fmt: skip
    assert status == EXIT_OK, capsys.readouterr()
    assert f"{len(sample.instances)} stored" in capsys.readouterr().out


def test_results_of_a_refused_certificate_are_failed_not_unconfirmed(
    monkeypatch: pytest.MonkeyPatch, https_emulator: RunningEmulator, sample: SampleSet
) -> None:
    """Nothing was sent when the handshake failed, so the files are FAILED (retry them), never UNCONFIRMED."""
    ahi = hook(monkeypatch, https_emulator)
    result = ahi.store_instances([str(sample.instances[0].path)], raise_on_error=False)
    assert [item.outcome for item in result.instances] == [Outcome.FAILED]
