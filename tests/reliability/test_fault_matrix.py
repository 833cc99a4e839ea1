"""5,000 instances imported while the emulator injects a 20% fault rate (429 at a TPS quota, 429/503/502 answers,
connections dropped mid-body, answers past the read timeout), rotates its session token mid-run (403
ExpiredTokenException, fixed by refreshing the assumed-role credentials) and is restarted mid-run: every instance
ends stored, none lost, and the instances the server stored twice are no more than the client counted as possibly
stored twice (re-sent after an attempt that may have reached it)."""

from __future__ import annotations

import json
from pathlib import Path

from airflow_hi_stow.core.report import build_import_report, format_import_report
from airflow_hi_stow.core.results import Outcome
from tests.reliability.fault_matrix import run_fault_matrix

INSTANCES = 5000


def test_an_import_under_a_20_percent_fault_rate_stores_everything_once_over(tmp_path: Path) -> None:
    result = run_fault_matrix(tmp_path, INSTANCES, 0.2, log=lambda _: None)
    print(json.dumps(result.figures(), indent=1))  # shown when an assertion fails
    final = result.final
    assert final["counts"] == {
        "stored": INSTANCES,
        "stored_with_warning": 0,
        "failed": 0,
        "rejected": 0,
        "unconfirmed": 0,
    }
    assert len(result.stored_uids) == INSTANCES  # none lost: every SOP Instance UID is in the emulator's index
    assert {item.source for item in result.manifest} == result.sources
    assert all(item.outcome is Outcome.STORED for item in result.manifest)

    # every kind of fault happened, and the client retried through each
    assert set(result.faults) == {"throttle", "error", "drop", "slow"}
    assert len(result.events) == 2, result.events  # the token rotation and the restart both came mid-run
    retries = result.figures()["retries"]
    for cause in ("throttled", "server_error", "timeout", "connection_lost", "unreachable", "expired_credentials"):
        assert retries[cause] > 0, (cause, retries)
    requests_sent = sum(count for count in retries.values()) + result.figures()["requests"]
    assert requests_sent >= sum(result.faults.values())

    # duplicate uploads: counted by the client, bounded by the requests whose answer was lost
    possibly_twice = result.figures()["possibly_stored_twice_by_the_client"]
    assert 0 < result.duplicates <= possibly_twice
    assert possibly_twice <= 20 * (retries["timeout"] + retries["connection_lost"] + retries["server_error"])

    text = format_import_report(build_import_report([final], []))
    assert f"stored         {INSTANCES}" in text
    # the report of the first try (a later one may only send what the first left unconfirmed, without a fault)
    first = result.summaries[0]
    first_text = format_import_report(build_import_report([first], []))
    (retried,) = [line for line in first_text.splitlines() if line.strip().startswith("retried")]
    assert "timed out" in retried
    assert f"{first['possibly_stored_twice']} instance(s) possibly stored twice" in retried
