"""The run report (``report.json``): what was checked and how severely, the counts, the study/series conflicts,
and every quarantined or warned file with its findings. It names files, checks and attributes, never a value."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_hi_stow import __version__
from airflow_hi_stow.validate.findings import Severity

if TYPE_CHECKING:
    from airflow_hi_stow.validate.runner import ValidationRun

REPORT_VERSION = 1


def run_report(run: ValidationRun, max_failures: int | float | None, finished: datetime) -> dict[str, Any]:
    settings = run.settings
    warned = [o for o in run.good if any(f.severity == Severity.WARNING for f in o.findings)]
    return {
        "report_version": REPORT_VERSION,
        "airflow_hi_stow": __version__,
        "finished": finished.isoformat(timespec="seconds"),
        "duration_seconds": round(run.duration_seconds, 3),
        "checks": {name: severity.value for name, severity in settings.severities.items()},
        "dciodvfy": run.dciodvfy,
        "transfer_syntaxes": sorted(settings.transfer_syntaxes),
        "private_allow_list": sorted(str(item) for item in settings.private_allow_list),
        "summary": {key: value for key, value in run.summary().items() if key not in ("report",)},
        "max_failures": max_failures,
        "conflicts": run.conflicts,
        "quarantined": [outcome.to_dict() for outcome in run.quarantined],
        "warned": [outcome.to_dict() for outcome in warned],
    }
