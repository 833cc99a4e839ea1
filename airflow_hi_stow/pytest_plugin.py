"""The pytest plugin this package installs (entry point ``pytest11``): the ``healthimaging_emulator`` fixture.

Kept light: importing it loads neither Airflow nor the emulator (which runs in a subprocess).

    def test_my_dag(healthimaging_emulator, monkeypatch):
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", healthimaging_emulator.aws_connection_json())
        ...

    @pytest.mark.healthimaging_emulator(no_auth=True, extra_args=["--throttle-rps", "5"])
    def test_with_options(healthimaging_emulator): ...
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_hi_stow.testing import RunningEmulator, start_emulator


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "healthimaging_emulator(**options): options for the healthimaging_emulator fixture "
        "(keyword arguments of airflow_hi_stow.testing.start_emulator)",
    )


@pytest.fixture
def healthimaging_emulator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningEmulator]:
    """A local HealthImaging emulator for one test: a free port, its own data directory, generated credentials."""
    marker = request.node.get_closest_marker("healthimaging_emulator")
    options = dict(marker.kwargs) if marker else {}
    with start_emulator(tmp_path_factory.mktemp("healthimaging") / "data", **options) as emulator:
        yield emulator
