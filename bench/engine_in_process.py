"""The import engine as the package's Airflow classes run it: inside a process that has already imported Airflow's
providers (botocore, requests). With a RECORDS folder it keeps a manifest and a resume ledger, as
StoreDicomOperator does; with ``-`` it keeps none, as the hooks' ``store_instances`` does. Imports are done before
the clock starts; the client's construction, listing, header reads, sending and the records are timed. Prints one
JSON line: seconds, CPU seconds (this process, every thread) and the summary's counts.

    python bench/engine_in_process.py ENDPOINT FOLDER RECORDS|- PER_REQUEST CONNECTIONS
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import botocore.session

from airflow_hi_stow.core.healthimaging import MAX_REQUEST_BYTES
from airflow_hi_stow.engine.importer import ImportSettings, run_import
from airflow_hi_stow.storage.locations import LocalLocation
from airflow_hi_stow.transport.auth import SigV4StowAuth
from airflow_hi_stow.transport.client import StowClient
from airflow_hi_stow.transport.session import HttpSettings

REGION = "us-east-1"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    endpoint, folder, records, per_request, connections = sys.argv[1:6]
    credentials = botocore.session.Session().get_credentials()
    started, cpu = time.perf_counter(), cpu_seconds()
    client = StowClient(
        f"{endpoint}/datastore/bench",
        auth=SigV4StowAuth(credentials.get_frozen_credentials, REGION, "streaming"),
        http=HttpSettings(max_connections=int(connections)),
        single_part=True,
        max_request_bytes=MAX_REQUEST_BYTES,
    )
    settings = ImportSettings(max_batch_instances=int(per_request), max_connections=int(connections))
    with client:
        location = LocalLocation(Path(records)) if records != "-" else None
        summary = run_import(folder, client=client, location=location, settings=settings)
    print(
        json.dumps({"seconds": time.perf_counter() - started, "cpu": cpu_seconds() - cpu, "counts": summary["counts"]})
    )


if __name__ == "__main__":
    main()
