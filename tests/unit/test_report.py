"""The import report: merging store summaries and image sets, and the text a person reads."""

from __future__ import annotations

from typing import Any

from airflow_hi_stow.core.report import LISTED_NON_PRIMARY, build_import_report, format_import_report


def summary(stored: int, rejected: int = 0, seconds: float = 2.0, reason: str | None = None) -> dict[str, Any]:
    reasons = [{"outcome": "rejected", "reason": reason, "count": rejected}] if reason else []
    return {
        "files": stored + rejected,
        "counts": {"stored": stored, "stored_with_warning": 0, "failed": 0, "rejected": rejected, "unconfirmed": 0},
        "bytes_stored": stored * 1000,
        "bytes_sent": stored * 1000,
        "requests": 1,
        "throttled": 0,
        "duration_seconds": seconds,
        "top_reasons": reasons,
    }


def image_set(number: int, study: str, primary: bool, conflicts: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "image_set_id": f"is{number}",
        "study_instance_uid": study,
        "series_instance_uid": f"{study}.{number}",
        "is_primary": primary,
        "version": "1",
        "conflicts": list(conflicts),
    }


def test_summaries_are_merged_and_reasons_added_up() -> None:
    report = build_import_report(
        [summary(10, 1, reason="not a DICOM P10 file"), summary(5, 2, reason="not a DICOM P10 file"), None],
        [image_set(1, "1.1", True), image_set(2, "1.1", False, ("PatientID",)), image_set(3, "1.2", True)],
    )
    assert report["files"] == 18
    assert report["counts"]["stored"] == 15
    assert report["counts"]["rejected"] == 3
    assert report["reasons"] == [{"outcome": "rejected", "reason": "not a DICOM P10 file", "count": 3}]
    assert report["bytes_sent"] == 15000
    assert report["task_seconds"] == 4.0
    assert report["throughput_mb_per_s"] == 0.0  # 15 kB in 4 s, rounded
    assert report["tasks"] == {"with_summary": 2, "without_summary": 1}
    assert report["studies"] == 2
    assert report["image_sets"] == {"total": 3, "primary": 2, "non_primary": 1}

    text = format_import_report(report)
    assert "  files found    18" in text
    assert "  rejected       3  (3 x not a DICOM P10 file)" in text
    assert "  image sets     3 in 2 studies: 2 primary, 1 non-primary" in text
    assert "    study 1.1: 1 non-primary image set(s), conflicting PatientID" in text
    assert "1 store task(s) failed before reporting a summary" in text


def test_the_listing_of_non_primary_image_sets_is_bounded() -> None:
    many = [image_set(n, f"1.{n}", False, ("StudyDate",)) for n in range(LISTED_NON_PRIMARY + 5)]
    report = build_import_report([summary(1)], many)
    assert len(report["non_primary_image_sets"]) == LISTED_NON_PRIMARY
    assert report["image_sets"]["non_primary"] == LISTED_NON_PRIMARY + 5
    assert format_import_report(report).endswith("    ... and 5 more")


def test_an_empty_run_reads_sensibly() -> None:
    text = format_import_report(build_import_report([], []))
    assert "  files found    0" in text
    assert "0.0 MB in 0 request(s), 0.0 s of import time (0.0 MB/s)" in text
    assert "  image sets     0 in 0 studies: 0 primary, 0 non-primary" in text
