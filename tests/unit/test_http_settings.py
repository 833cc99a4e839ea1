"""The proxies a client's requests take, chosen once per server as botocore chooses them (the session itself
does not read the environment)."""

from __future__ import annotations

import pytest

from airflow_hi_stow.transport.session import HttpSettings, new_session

SERVER = "https://dicom-medical-imaging.us-east-1.amazonaws.com/datastore/ds"


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_the_environment_s_proxy_applies_without_one_in_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert HttpSettings().request_options(SERVER)["proxies"]["https"] == "http://proxy.example:3128"


def test_no_proxy_exempts_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", ".amazonaws.com")
    assert "proxies" not in HttpSettings().request_options(SERVER)
    assert "proxies" in HttpSettings().request_options("https://other.example/datastore/ds")


def test_the_connection_s_proxies_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://environment.example:3128")
    monkeypatch.setenv("NO_PROXY", ".amazonaws.com")
    options = HttpSettings(proxies={"https": "http://connection.example:3128"}).request_options(SERVER)
    assert options["proxies"] == {"https": "http://connection.example:3128"}


def test_verification_and_timeouts_go_with_every_request() -> None:
    options = HttpSettings(verify="/etc/ca.pem", connect_timeout=3, read_timeout=30).request_options(SERVER)
    assert options["verify"] == "/etc/ca.pem"
    assert options["timeout"] == (3, 30)


def test_the_session_does_not_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Otherwise REQUESTS_CA_BUNDLE, .netrc or a proxy variable set later could change a request behind the
    connection's back, and requests would scan the environment again for every request."""
    assert new_session(HttpSettings()).trust_env is False
