"""Names the tests need that moved between Airflow 3.0 and 3.3 (the package itself imports through
``airflow.providers.common.compat.sdk``)."""

from __future__ import annotations

try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow < 3.2
    from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

__all__ = ["DagBag"]
