"""The adaptive gate bounds the requests in flight by the AIMD controller's limit; import settings are checked."""

from __future__ import annotations

import threading

import pytest

from airflow_hi_stow.core.aimd import AimdController
from airflow_hi_stow.engine.importer import ImportSettings
from airflow_hi_stow.engine.throttle import AdaptiveGate


def test_never_more_in_flight_than_the_limit() -> None:
    gate = AdaptiveGate(AimdController(max_concurrency=3))
    lock = threading.Lock()
    seen: list[int] = []
    release = threading.Event()

    def request() -> None:
        gate.acquire()
        with lock:
            seen.append(gate.in_flight)
        release.wait()
        gate.release(answered=True)

    threads = [threading.Thread(target=request) for _ in range(10)]
    for thread in threads:
        thread.start()
    while True:  # the first three are in; the others wait at the gate
        with lock:
            if len(seen) == 3:
                break
    assert gate.in_flight == 3
    release.set()
    for thread in threads:
        thread.join()
    assert len(seen) == 10
    assert max(seen) == 3
    assert gate.in_flight == 0


def test_only_throttling_answers_cut_the_limit() -> None:
    gate = AdaptiveGate(AimdController(max_concurrency=4), clock=iter([0.0, 5.0, 10.0]).__next__)
    gate.on_retry(500)
    gate.on_retry(None)
    assert gate.controller.limit == 4
    gate.on_retry(429)
    assert gate.controller.limit == 2
    gate.on_retry(503)
    assert gate.controller.limit == 1
    assert gate.describe().startswith("1 connection(s), ")
    assert gate.describe().endswith(", 2 throttled answer(s) retried")


def test_retries_sleep_their_back_off_and_count_towards_the_pace() -> None:
    slept: list[float] = []
    controller = AimdController(max_concurrency=2, max_rate=50.0)
    gate = AdaptiveGate(controller, sleep=slept.append)
    gate.acquire()
    gate.sleep_before_retry(0.25)
    gate.sleep_before_retry(0.5)
    assert slept == [0.25, 0.5]
    assert controller.observed_rate(gate.clock()) > 0
    assert len(controller._starts) == 3  # one request and its two retries, each waiting for its turn
    assert gate.in_flight == 1


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"max_connections": 0}, "max_connections must be at least 1"),
        ({"max_batch_bytes": 0}, "max_batch_bytes must be at least 1"),
        ({"max_requests_per_second": 0.0}, "max_requests_per_second must be positive"),
        ({"progress_interval": 0.0}, "progress_interval must be positive"),
    ],
)
def test_import_settings_name_a_bad_value(setting: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImportSettings(**setting)  # type: ignore[arg-type]
