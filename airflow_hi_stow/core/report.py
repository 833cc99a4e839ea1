"""The import report: the summaries of several StoreDicomOperator tasks and the image sets they produced, merged
into one small JSON-serialisable dict, and that dict as text for a person."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_hi_stow.core.results import Outcome, RetryCause

LISTED_NON_PRIMARY = 20
LISTED_REASONS = 10
_RETRY_WORDS = {
    RetryCause.THROTTLED: "throttled",
    RetryCause.SERVER_ERROR: "server error(s)",
    RetryCause.TIMEOUT: "timed out",
    RetryCause.CONNECTION_LOST: "connection(s) lost",
    RetryCause.UNREACHABLE: "unreachable",
    RetryCause.EXPIRED_CREDENTIALS: "expired credentials refreshed",
}


def build_import_report(
    summaries: Iterable[Mapping[str, Any] | None], image_sets: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Merge store-task summaries (None for a task that produced none, e.g. it failed) and image-set descriptions
    (``ImageSetInfo.to_dict()``). The size stays bounded whatever the number of files or image sets."""
    counts: Counter[str] = Counter()
    reasons: Counter[tuple[str, str]] = Counter()
    totals: Counter[str] = Counter()
    retries: Counter[str] = Counter()
    tasks = Counter[str]()
    for summary in summaries:
        if summary is None:
            tasks["without_summary"] += 1
            continue
        tasks["with_summary"] += 1
        counts.update(summary.get("counts", {}))
        for key in ("files", "bytes_stored", "bytes_sent", "requests", "throttled", "possibly_stored_twice"):
            totals[key] += int(summary.get(key, 0))
        retries.update({cause: int(count) for cause, count in summary.get("retries", {}).items()})
        totals["milliseconds"] += round(float(summary.get("duration_seconds", 0)) * 1000)
        for item in summary.get("top_reasons", []):
            reasons[item["outcome"], item["reason"]] += int(item["count"])
    non_primary = [item for item in image_sets if not item["is_primary"]]
    seconds = totals["milliseconds"] / 1000
    return {
        "files": totals["files"],
        "counts": {outcome.value: counts.get(outcome.value, 0) for outcome in Outcome},
        "reasons": [
            {"outcome": outcome, "reason": reason, "count": count}
            for (outcome, reason), count in reasons.most_common(LISTED_REASONS)
        ],
        "bytes_stored": totals["bytes_stored"],
        "bytes_sent": totals["bytes_sent"],
        "requests": totals["requests"],
        "throttled": totals["throttled"],
        "retries": {cause.value: retries.get(cause.value, 0) for cause in RetryCause},
        "possibly_stored_twice": totals["possibly_stored_twice"],
        "task_seconds": seconds,
        "throughput_mb_per_s": round(totals["bytes_sent"] / seconds / 1e6, 2) if seconds else 0.0,
        "tasks": dict(tasks),
        "studies": len({item["study_instance_uid"] for item in image_sets}),
        "image_sets": {
            "total": len(image_sets),
            "primary": len(image_sets) - len(non_primary),
            "non_primary": len(non_primary),
        },
        "non_primary_image_sets": [
            {key: item[key] for key in ("image_set_id", "study_instance_uid", "series_instance_uid", "conflicts")}
            for item in non_primary[:LISTED_NON_PRIMARY]
        ],
    }


def format_import_report(report: Mapping[str, Any]) -> str:
    """The report as a short block of text."""
    counts = report["counts"]
    by_outcome: dict[str, list[str]] = {}
    for item in report["reasons"]:
        by_outcome.setdefault(item["outcome"], []).append(f"{item['count']} x {item['reason']}")
    lines = ["AWS HealthImaging import", f"  files found    {report['files']}"]
    for outcome, label in (
        (Outcome.STORED, "stored"),
        (Outcome.STORED_WITH_WARNING, "with warning"),
        (Outcome.FAILED, "failed"),
        (Outcome.REJECTED, "rejected"),
        (Outcome.UNCONFIRMED, "unconfirmed"),
    ):
        why = by_outcome.get(outcome.value, [])
        lines.append(f"  {label:<14} {counts[outcome.value]}" + (f"  ({'; '.join(why)})" if why else ""))
    lines.append(
        f"  sent           {report['bytes_sent'] / 1e6:.1f} MB in {report['requests']} request(s), "
        f"{report['task_seconds']:.1f} s of import time ({report['throughput_mb_per_s']:.1f} MB/s)"
        + (f", {report['throttled']} throttled answer(s)" if report["throttled"] else "")
    )
    retried = [
        f"{report['retries'][c.value]} {words}" for c, words in _RETRY_WORDS.items() if report["retries"][c.value]
    ]
    if retried or report["possibly_stored_twice"]:
        lines.append(
            f"  retried        {', '.join(retried) or 'nothing'}; {report['possibly_stored_twice']} instance(s) "
            "possibly stored twice (re-sent after an attempt the server may have stored)"
        )
    image_sets = report["image_sets"]
    lines.append(
        f"  image sets     {image_sets['total']} in {report['studies']} stud{'y' if report['studies'] == 1 else 'ies'}: "
        f"{image_sets['primary']} primary, {image_sets['non_primary']} non-primary"
    )
    by_study: dict[str, list[Mapping[str, Any]]] = {}
    for item in report["non_primary_image_sets"]:
        by_study.setdefault(item["study_instance_uid"], []).append(item)
    for study, items in by_study.items():
        conflicts = sorted({name for item in items for name in item["conflicts"]})
        lines.append(
            f"    study {study}: {len(items)} non-primary image set(s), "
            + (f"conflicting {', '.join(conflicts)}" if conflicts else "no conflicting grouping element found")
        )
    if image_sets["non_primary"] > len(report["non_primary_image_sets"]):
        lines.append(f"    ... and {image_sets['non_primary'] - len(report['non_primary_image_sets'])} more")
    if report["tasks"].get("without_summary"):
        lines.append(f"  {report['tasks']['without_summary']} store task(s) failed before reporting a summary")
    return "\n".join(lines)
