"""Run in the peers' virtual environment (build/peers-venv, made by bench/throughput.py): store files with
dicomweb-client's ``store_instances``, signed by requests-aws4auth, as a user of those libraries would.

    python bench/peer_dicomweb_client.py URL CHUNK_SIZE PER_CALL LIST_FILE

CHUNK_SIZE 0 keeps dicomweb-client's default. Prints one JSON line: seconds, and the error if a call failed.
"""

from __future__ import annotations

import json
import sys
import time

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from requests_aws4auth import AWS4Auth


def main() -> None:
    url, chunk_size, per_call, listing = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    files = open(listing).read().split("\n")  # noqa: SIM115 - a short script
    files = [name for name in files if name]
    session = requests.Session()
    session.auth = AWS4Auth("test", "test", "us-east-1", "medical-imaging")
    options = {"chunk_size": chunk_size} if chunk_size else {}
    client = DICOMwebClient(url=url, session=session, **options)
    started = time.monotonic()
    error = None
    try:
        for start in range(0, len(files), per_call):
            client.store_instances([pydicom.dcmread(name) for name in files[start : start + per_call]])
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc)[:200]}"
    print(json.dumps({"seconds": time.monotonic() - started, "error": error}))


if __name__ == "__main__":
    main()
