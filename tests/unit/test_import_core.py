"""Sharding for task mapping, the import summary and failure policy, progress lines."""

from __future__ import annotations

import json

import pytest

from airflow_hi_stow.core.progress import Progress, format_duration
from airflow_hi_stow.core.results import InstanceResult, Outcome, RequestRecord
from airflow_hi_stow.core.sharding import MAX_MAP_LENGTH, partition
from airflow_hi_stow.core.summary import MAX_DISTINCT_REASONS, OTHER_REASONS, TOP_REASONS, FailurePolicy, ImportTally


def shard_sizes(shards: list[list[tuple[str, int]]]) -> list[int]:
    return [sum(size for _, size in shard) for shard in shards]


def test_studies_are_never_split_and_shards_are_balanced() -> None:
    items = [(f"study{s}", 10) for s in range(12) for _ in range(s + 1)]  # studies of 10..120 bytes
    shards = partition(items, lambda i: i[1], lambda i: i[0], max_shards=4)
    assert len(shards) == 4
    for study in {name for name, _ in items}:
        assert sum(any(name == study for name, _ in shard) for shard in shards) == 1
    assert sorted(item for shard in shards for item in shard) == sorted(items)
    sizes = shard_sizes(shards)
    assert max(sizes) - min(sizes) <= 120  # at most one study apart; here the greedy gets 195 each
    assert sum(sizes) == 780


def test_shard_count_follows_groups_bytes_and_the_map_length_cap() -> None:
    items = [(f"s{i}", 100) for i in range(3000)]
    assert len(partition(items[:3], lambda i: i[1], lambda i: i[0], max_shards=10)) == 3
    assert len(partition(items, lambda i: i[1], lambda i: i[0], max_shards=5000)) == MAX_MAP_LENGTH
    assert len(partition(items[:50], lambda i: i[1], lambda i: i[0], max_shards=20, shard_bytes=1000)) == 5
    assert partition([], lambda i: 0, lambda i: i, max_shards=3) == []


def test_order_is_kept_inside_a_shard() -> None:
    items = [("a", 1, 0), ("b", 1, 1), ("a", 1, 2), ("b", 1, 3)]
    (shard,) = partition(items, lambda i: i[1], lambda i: i[0], max_shards=1)
    assert shard == items


def test_a_huge_study_gets_a_shard_of_its_own() -> None:
    items = [("big", 1000), *[(f"s{i}", 10) for i in range(10)]]
    shards = partition(items, lambda i: i[1], lambda i: i[0], max_shards=3)
    assert [("big", 1000)] in shards


def result(outcome: Outcome, reason: str | None = None, size: int = 100, study: str = "1.2.3") -> InstanceResult:
    return InstanceResult("f.dcm", outcome, size=size, study_instance_uid=study, reason=reason)


def test_the_tally_counts_every_outcome_and_the_summary_is_json() -> None:
    tally = ImportTally()
    tally.add(result(Outcome.STORED, study="1.2.1"))
    tally.add(result(Outcome.STORED, study="1.2.2"), resumed=True)
    tally.add(result(Outcome.STORED_WITH_WARNING, "B000 (Coercion of data elements)", study="1.2.2"))
    tally.add(result(Outcome.REJECTED, "not a DICOM P10 file", size=5))
    tally.add(result(Outcome.REJECTED, "not a DICOM P10 file", size=5))
    tally.add(result(Outcome.FAILED, "HTTP 500: boom"))
    tally.add_request(RequestRecord(200, "r1", 3, 350, 2, 1, 0.5))
    summary = tally.summary(2.0, manifest="/m/manifest.jsonl")
    assert summary["files"] == 6
    assert summary["counts"] == {
        "stored": 2,
        "stored_with_warning": 1,
        "failed": 1,
        "rejected": 2,
        "unconfirmed": 0,
    }
    assert (summary["resumed"], summary["bytes_stored"], summary["bytes_sent"]) == (1, 300, 350)
    assert (summary["requests"], summary["throttled"], summary["studies"]) == (1, 1, 2)
    assert summary["top_reasons"][0] == {"outcome": "rejected", "reason": "not a DICOM P10 file", "count": 2}
    assert summary["manifest"] == "/m/manifest.jsonl"
    assert summary["files_per_s"] == 2.5
    assert json.loads(json.dumps(summary)) == summary


def test_the_summary_stays_small_for_100000_files() -> None:
    tally = ImportTally()
    for number in range(100_000):
        tally.add(
            InstanceResult(
                f"/data/{number}.dcm",
                Outcome.FAILED if number % 10 else Outcome.STORED,
                size=500_000,
                study_instance_uid=f"1.2.{number // 50}",
                reason=f"HTTP 500: error {number}" if number % 10 else None,
            )
        )
    summary = tally.summary(100.0, manifest="s3://bucket/manifest.jsonl")
    assert summary["files"] == 100_000
    assert len(summary["top_reasons"]) == TOP_REASONS
    assert len(tally.reasons) == MAX_DISTINCT_REASONS + 1
    assert tally.reasons[("failed", OTHER_REASONS)] == 90_000 - MAX_DISTINCT_REASONS
    assert len(json.dumps(summary)) < 4000


def test_reasons_quoting_file_names_count_together() -> None:
    tally = ImportTally()
    for number in range(5):
        tally.add(result(Outcome.REJECTED, f"duplicate SOP Instance UID: the same instance as /data/{number}.dcm"))
    tally.add(result(Outcome.FAILED, "HTTP 404: not found (see https://docs.example/x)"))
    assert tally.summary(1.0)["top_reasons"] == [
        {"outcome": "rejected", "reason": "duplicate SOP Instance UID: the same instance as ...", "count": 5},
        {"outcome": "failed", "reason": "HTTP 404: not found (see ...", "count": 1},
    ]


@pytest.mark.parametrize(
    ("max_failures", "fail_on", "counts", "fails"),
    [
        (0, ["failed", "unconfirmed"], {"stored": 10}, False),
        (0, ["failed", "unconfirmed"], {"stored": 9, "rejected": 1}, False),
        (0, ["failed", "unconfirmed"], {"stored": 9, "unconfirmed": 1}, True),
        (0, ["failed", "rejected"], {"stored": 9, "rejected": 1}, True),
        (2, ["failed"], {"stored": 8, "failed": 2}, False),
        (2, ["failed"], {"stored": 7, "failed": 3}, True),
        (0.1, ["failed"], {"stored": 90, "failed": 10}, False),
        (0.1, ["failed"], {"stored": 89, "failed": 11}, True),
        (1.0, ["failed"], {"failed": 5}, False),
        (0, "stored_with_warning", {"stored_with_warning": 1}, True),
    ],
)
def test_failure_policy(max_failures: int | float, fail_on: list[str], counts: dict[str, int], fails: bool) -> None:
    violation = FailurePolicy.of(max_failures, fail_on).violation(counts)
    assert (violation is not None) == fails
    if violation:
        assert "max_failures" in violation


def test_failure_policy_names_a_bad_argument() -> None:
    with pytest.raises(ValueError, match="'broken' is not an outcome"):
        FailurePolicy.of(0, ["failed", "broken"])
    with pytest.raises(ValueError, match="from 0 to 1"):
        FailurePolicy.of(1.5, ["failed"])
    with pytest.raises(ValueError, match="negative"):
        FailurePolicy.of(-1, ["failed"])
    with pytest.raises(ValueError, match="count"):
        FailurePolicy.of(True, ["failed"])


def test_progress_line_has_counts_rate_and_eta() -> None:
    progress = Progress(total_files=100, total_bytes=200_000_000, started=10.0)
    progress.add(25, 50_000_000)
    line = progress.line(20.0)
    assert line == "25/100 files, 50.0/200.0 MB (25%) in 10s, 5.00 MB/s, 2.5 files/s, ETA 30s"
    progress.add(75, 150_000_000)
    assert "ETA" not in progress.line(40.0)


@pytest.mark.parametrize(("seconds", "text"), [(4.4, "4s"), (65, "1m05s"), (7620, "2h07m")])
def test_durations(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
