"""``hi_stow_local_pipeline`` through ``dag.test()`` in a fresh process with every logger at DEBUG (Airflow's, the
package's, botocore's, urllib3's...), each record written to stderr; then every XCom of the run written as JSON.

    python -m tests.reliability.debug_pipeline <run conf JSON file> <XCom dump file>   # exit status 0: success
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from tests.support.airflow_compat import DagBag

ROOT = Path(__file__).resolve().parents[2]


def main(conf_path: str, xcom_path: str) -> int:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    for name in ("airflow", "airflow_hi_stow", "botocore", "boto3", "urllib3", "requests", "s3transfer", "pydicom"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag("hi_stow_local_pipeline")
    run = dag.test(run_conf=json.loads(Path(conf_path).read_text()))
    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id)
        ).all()
        xcoms = [
            {"task_id": row.task_id, "map_index": row.map_index, "key": row.key,
             "value": XComModel.deserialize_value(row)}
            for row in rows
        ]  # fmt: skip
    Path(xcom_path).write_text(json.dumps(xcoms, default=str, indent=1))
    print(f"debug pipeline: {run.state}, {len(xcoms)} XComs", file=sys.stderr)
    return 0 if run.state == "success" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
