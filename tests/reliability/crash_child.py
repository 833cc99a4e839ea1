"""One try of a task in a process of its own, for the crash tests to SIGKILL: the store (``run_import``) or the
de-identification (``deidentify_source``) of one task instance, with its records at the location given, so that each
new process is a retry of the task as Airflow would run it (same arguments, same records).

    python -m tests.reliability.crash_child store|deidentify '<JSON arguments>'

Prints ``started`` once everything is imported and set up, then, on success, the summary as the last line.
Credentials and the key come from the environment (``HI_STOW_CRASH_*``), never the command line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from botocore.credentials import ReadOnlyCredentials

from airflow_hi_stow.engine.deidentify import deidentify_source
from airflow_hi_stow.engine.importer import ImportSettings, run_import
from airflow_hi_stow.storage.locations import LocalLocation
from airflow_hi_stow.transport.auth import SigV4StowAuth
from airflow_hi_stow.transport.client import StowClient
from airflow_hi_stow.transport.retry import RetryPolicy

ACCESS_KEY = "HI_STOW_CRASH_ACCESS_KEY"
SECRET_KEY = "HI_STOW_CRASH_SECRET_KEY"
DEID_KEY = "HI_STOW_CRASH_DEID_KEY"


def store(arguments: dict[str, Any]) -> dict[str, Any]:
    credentials = ReadOnlyCredentials(os.environ[ACCESS_KEY], os.environ[SECRET_KEY], None)
    auth = SigV4StowAuth(lambda: credentials, arguments["region"])
    settings = ImportSettings(
        max_batch_instances=arguments["batch"], max_connections=arguments["connections"], progress_interval=60
    )
    with StowClient(arguments["url"], auth=auth, retry=RetryPolicy(base_delay=0.1)) as client:
        print("started", flush=True)
        return run_import(
            arguments["source"], client=client, location=LocalLocation(Path(arguments["records"])), settings=settings
        )


def deidentify(arguments: dict[str, Any]) -> dict[str, Any]:
    print("started", flush=True)
    return deidentify_source(
        arguments["source"],
        arguments["destination"],
        os.environ[DEID_KEY],
        records=LocalLocation(Path(arguments["records"])),
        quarantine=arguments["quarantine"],
        workers=arguments["workers"],
    )


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    task, arguments = sys.argv[1], json.loads(sys.argv[2])
    summary = store(arguments) if task == "store" else deidentify(arguments)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
