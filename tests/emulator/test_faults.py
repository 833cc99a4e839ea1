"""Fault decisions: deterministic shares, the token-bucket throttle, settings validation."""

from __future__ import annotations

import re

import pytest

from airflow_hi_stow.emulator.faults import Decision, Fault, FaultConfig, FaultInjector


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def decisions(injector: FaultInjector, count: int) -> list[Decision | None]:
    return [injector.decide() for _ in range(count)]


def test_an_error_share_fires_on_exactly_that_share_of_requests_with_statuses_in_turn() -> None:
    injector = FaultInjector(FaultConfig(error_rate=0.25))
    assert decisions(injector, 8) == [None, None, None, Decision(Fault.ERROR, 429)] * 1 + [
        None,
        None,
        None,
        Decision(Fault.ERROR, 503),
    ]


def test_shares_of_several_faults_are_kept_a_fault_due_on_a_busy_request_coming_one_request_later() -> None:
    injector = FaultInjector(FaultConfig(error_rate=0.1, drop_rate=0.2, slow_rate=0.3, slow_seconds=1))
    made = [item.fault for item in decisions(injector, 100) if item is not None]
    counts = (made.count(Fault.ERROR), made.count(Fault.DROP), made.count(Fault.SLOW))
    assert counts[0] == 10
    assert counts[1] in (19, 20)
    assert counts[2] in (29, 30)
    made += [item.fault for item in decisions(injector, 2) if item is not None]
    assert (made.count(Fault.ERROR), made.count(Fault.DROP), made.count(Fault.SLOW)) == (10, 20, 30)


def test_errors_can_come_in_bursts_keeping_their_share() -> None:
    injector = FaultInjector(FaultConfig(error_rate=0.25, error_burst=3, error_statuses=(503, 502)))
    made = decisions(injector, 26)
    assert made[:14] == [None] * 11 + [Decision(Fault.ERROR, 503)] * 3  # a burst of three, every 12 requests
    assert made[14:26] == [None] * 9 + [Decision(Fault.ERROR, 502)] * 3  # the next one, with the next status
    assert sum(item is not None for item in made) == 6  # a quarter of the requests (the second burst ends early)


def test_the_throttle_is_a_token_bucket() -> None:
    clock = Clock()
    injector = FaultInjector(FaultConfig(throttle_rps=2), clock=clock)
    assert decisions(injector, 3) == [None, None, Decision(Fault.THROTTLE, 429)]
    clock.now += 0.5
    assert decisions(injector, 2) == [None, Decision(Fault.THROTTLE, 429)]
    clock.now += 10
    assert decisions(injector, 3) == [None, None, Decision(Fault.THROTTLE, 429)]


def test_a_burst_allows_more_at_once() -> None:
    injector = FaultInjector(FaultConfig(throttle_rps=1, throttle_burst=5), clock=Clock())
    assert [item is None for item in decisions(injector, 6)] == [True] * 5 + [False]


def test_faults_stop_after_max_faults() -> None:
    injector = FaultInjector(FaultConfig(error_rate=1.0, error_statuses=(503,), max_faults=2))
    assert decisions(injector, 4) == [Decision(Fault.ERROR, 503), Decision(Fault.ERROR, 503), None, None]


def test_reconfiguring_clears_faults() -> None:
    injector = FaultInjector(FaultConfig(error_rate=1.0))
    assert injector.decide() == Decision(Fault.ERROR, 429)
    injector.configure(FaultConfig())
    assert decisions(injector, 5) == [None] * 5


def test_only_stow_requests_are_in_the_default_scope() -> None:
    stow = FaultInjector(FaultConfig())
    assert stow.applies_to("POST", "/datastore/" + "a" * 32 + "/studies")
    assert stow.applies_to("POST", "/datastore/" + "a" * 32 + "/studies/1.2.3")
    assert not stow.applies_to("GET", "/datastore/" + "a" * 32 + "/studies")
    assert not stow.applies_to("POST", "/datastore/" + "a" * 32 + "/searchImageSets")
    every = FaultInjector(FaultConfig(scope="all"))
    assert every.applies_to("POST", "/datastore/" + "a" * 32 + "/searchImageSets")
    assert not every.applies_to("POST", "/_emulator/faults")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"error_rate": 1.5}, "between 0 and 1"),
        ({"eror_rate": 0.5}, "unknown fault setting(s): eror_rate"),
        ({"error_statuses": [418]}, "error_statuses"),
        ({"throttle_rps": 0}, "throttle_rps"),
        ({"scope": "some"}, "scope"),
        ({"error_burst": 0}, "error_burst"),
    ],
)
def test_bad_settings_are_named(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        FaultConfig.from_json(settings)


def test_settings_round_trip_through_json() -> None:
    config = FaultConfig(error_rate=0.5, error_statuses=(503,), retry_after=3, throttle_rps=4.0, scope="all")
    assert FaultConfig.from_json(config.to_json()) == config
