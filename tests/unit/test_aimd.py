"""The AIMD controller: cuts on throttling (once per congestion event), grows back while requests succeed."""

from __future__ import annotations

import pytest

from airflow_hi_stow.core.aimd import AimdController


def test_unthrottled_it_allows_every_connection_and_does_not_pace() -> None:
    aimd = AimdController(max_concurrency=4)
    for moment in range(10):
        aimd.on_start(moment * 0.001)
        aimd.on_success()
    assert aimd.limit == 4
    assert aimd.rate is None
    assert aimd.wait_time(0.01) == 0.0


def test_a_throttle_halves_the_concurrency_and_paces_at_half_the_observed_rate() -> None:
    aimd = AimdController(max_concurrency=8)
    for i in range(20):  # 20 starts in one second: 20 requests/s
        aimd.on_start(i * 0.05)
    assert aimd.on_throttle(1.0)
    assert aimd.limit == 4
    rate = aimd.rate
    assert rate == pytest.approx(10.0, rel=0.1)
    assert rate is not None
    assert aimd.wait_time(1.0) == pytest.approx(1 / rate)
    assert aimd.wait_time(1.0 + 1 / rate) == 0.0


def test_answers_within_the_cooldown_are_one_congestion_event() -> None:
    aimd = AimdController(max_concurrency=8, max_rate=16.0, cooldown=1.0)
    assert aimd.on_throttle(10.0)
    assert not aimd.on_throttle(10.5)
    assert not aimd.on_throttle(10.99)
    assert (aimd.limit, aimd.rate, aimd.throttle_events) == (4, 8.0, 1)
    assert aimd.on_throttle(11.0)
    assert (aimd.limit, aimd.rate, aimd.throttle_events) == (2, 4.0, 2)


def test_limits_never_fall_below_their_floors() -> None:
    aimd = AimdController(max_concurrency=2, max_rate=1.0, min_rate=0.25)
    for second in range(20):
        aimd.on_throttle(float(second))
    assert aimd.limit == 1
    assert aimd.rate == 0.25


def test_successes_grow_concurrency_by_one_per_round_and_rate_by_about_one_per_second() -> None:
    aimd = AimdController(max_concurrency=8, max_rate=100.0)
    aimd.on_throttle(0.0)
    aimd.on_throttle(5.0)
    assert (aimd.limit, aimd.rate) == (2, 25.0)
    for _ in range(2):  # one round at concurrency 2
        aimd.on_success()
    assert aimd.limit == 2  # 2 + 1/2 + 1/2.5 = 2.9
    aimd.on_success()
    assert aimd.limit == 3
    rate = aimd.rate or 0.0
    for _ in range(25):  # about a second's worth of successes at 25 requests/s
        aimd.on_success()
    assert aimd.rate == pytest.approx(rate + 1.0, rel=0.05)


def test_growth_stops_at_the_caps() -> None:
    aimd = AimdController(max_concurrency=3, max_rate=5.0)
    aimd.on_throttle(0.0)
    for _ in range(1000):
        aimd.on_success()
    assert (aimd.limit, aimd.rate) == (3, 5.0)


def test_pacing_spaces_the_starts() -> None:
    aimd = AimdController(max_concurrency=4, max_rate=2.0)
    aimd.on_start(0.0)
    assert aimd.wait_time(0.0) == 0.5
    aimd.on_start(0.5)
    assert aimd.wait_time(0.6) == pytest.approx(0.4)


@pytest.mark.parametrize(
    "arguments",
    [{"max_concurrency": 0}, {"max_concurrency": 2, "max_rate": 0.0}, {"max_concurrency": 2, "decrease": 1.0}],
)
def test_bad_settings_are_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        AimdController(**arguments)  # type: ignore[arg-type]
