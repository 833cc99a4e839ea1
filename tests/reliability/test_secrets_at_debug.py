"""Secrets and patient data at DEBUG across a whole pipeline run: ``hi_stow_local_pipeline`` (de-identify ->
validate -> store per study -> report) on the demo's set with planted PHI, every logger at DEBUG, known
credentials with a session token and a known de-identification key. Every request goes through a relay that keeps
what the client sent, so each request and chunk signature is known. Then the run's output (stdout, stderr, task
logs), every XCom, the report, the records (manifests, ledgers, try records), the quarantine's reason files and
every other file written outside the de-identified outputs are searched for the secret key, the session token, the
signatures, the key and each planted value."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_hi_stow.demo import write_demo_set
from airflow_hi_stow.samples import planted_values
from airflow_hi_stow.testing import start_emulator
from tests.support import airflow_dags
from tests.support.recording_proxy import recording_proxy

pytestmark = pytest.mark.airflow
ROOT = Path(__file__).resolve().parents[2]


def written_files(root: Path, *, skip: set[Path]) -> list[Path]:
    """Every file under ``root`` except those under the ``skip`` folders (the inputs, the de-identified outputs)."""
    return [p for p in root.rglob("*") if p.is_file() and not any(p.is_relative_to(s) for s in skip)]


def test_no_secret_signature_key_or_planted_value_anywhere_at_debug(tmp_path: Path) -> None:
    airflow_dags.migrate_database()
    source = tmp_path / "data" / "dicom"
    sample = write_demo_set(source, patients=2)
    values = planted_values(sample)
    token = "FwoGZXIvYXdzE-session-token-" + secrets.token_urlsafe(60)
    key = "deid-key-" + secrets.token_urlsafe(40)
    home = Path(os.environ["AIRFLOW_HOME"])
    logs_before = set(home.rglob("*"))
    (tmp_path / "emulator").mkdir()
    with (
        start_emulator(tmp_path / "emulator" / "data", session_token=token) as emulator,
        recording_proxy("127.0.0.1", emulator.port) as proxy,
    ):
        connection = json.loads(emulator.aws_connection_json(datastore_id=emulator.datastore_id))
        connection["extra"]["endpoint_url"] = proxy.url
        conf = {"source": str(source), "destination": str(tmp_path / "deidentified"),
                "quarantine": str(tmp_path / "quarantine"), "report_path": str(tmp_path / "report.json")}  # fmt: skip
        (tmp_path / "conf.json").write_text(json.dumps(conf))
        environment = {
            **os.environ,
            **airflow_dags.ENVIRONMENT,
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
            "AIRFLOW__HI_STOW__MANIFEST_LOCATION": str(tmp_path / "records"),
            "AIRFLOW_CONN_AWS_HEALTHIMAGING": json.dumps(connection),
            "AIRFLOW_CONN_HI_STOW_DEID_KEY": json.dumps({"conn_type": "generic", "password": key}),
        }
        child = subprocess.run(
            [sys.executable, "-m", "tests.reliability.debug_pipeline", str(tmp_path / "conf.json"),
             str(tmp_path / "xcoms.json")],
            cwd=ROOT, env=environment, capture_output=True, timeout=300, check=False,
        )  # fmt: skip
        output = child.stdout + child.stderr
        (tmp_path / "output.log").write_bytes(output)  # kept for a look when the test fails
        assert child.returncode == 0, output.decode("utf-8", "replace")[-5000:]
        signatures = proxy.signatures()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["counts"]["stored"] > 0
    assert proxy.requests() >= report["requests"] if "requests" in report else proxy.requests() > 0
    assert len(signatures) >= proxy.requests()  # one per request at least, and one per aws-chunked chunk
    for logger in (b"botocore", b"urllib3", b"airflow_hi_stow", b"airflow"):  # DEBUG records were written
        assert f"DEBUG {logger.decode()}".encode() in output, logger

    quarantine = tmp_path / "quarantine"
    held = {p for p in (quarantine / "deidentify").rglob("*") if p.name in ("original", "source.json")}
    files = written_files(
        tmp_path, skip={source, tmp_path / "deidentified", tmp_path / "emulator" / "data" / "objects"}
    )
    files = [
        p for p in files if p not in held and not (p.is_relative_to(quarantine / "validate") and p.suffix != ".json")
    ]
    files += [p for p in set(home.rglob("*")) - logs_before if p.is_file()]  # task logs, the database
    files = [p for p in files if p != tmp_path / "output.log"]
    # Airflow's own in-process supervisor of dag.test() logs the body of each MaskSecret message at DEBUG (the
    # value to mask: a connection's password, extras): Airflow's real supervisor omits it ("body omitted"). Those
    # lines are Airflow's, not the package's; every other line is searched.
    lines = output.splitlines(keepends=True)
    masking = [line for line in lines if b"Sending request" in line and b"msg=MaskSecret(" in line]
    output = b"".join(line for line in lines if line not in masking)
    texts = {"the run's stdout and stderr": output, **{str(p): p.read_bytes() for p in files}}
    assert any(name.endswith("reason.json") for name in texts)
    assert any("records" in name for name in texts)
    assert str(tmp_path / "xcoms.json") in texts

    forbidden = {"the secret key": emulator.secret_key, "the session token": token, "the de-identification key": key}
    forbidden |= {f"signature {signature[:8]}...": signature for signature in signatures}
    forbidden |= {f"planted value {value!r}": value for value in values}
    found = [(what, where) for where, data in texts.items() for what, value in forbidden.items()
             if value.encode() in data]  # fmt: skip
    assert found == [], found[:20]
    # the search finds what is there: the inputs hold every planted value
    inputs = b"".join(instance.path.read_bytes() for instance in sample.instances)
    assert all(value.encode() in inputs for value in values)
    print(
        f"scanned {len(texts)} files ({sum(map(len, texts.values())) / 1e6:.1f} MB; {len(masking)} MaskSecret lines "
        f"of dag.test()'s supervisor left out), {output.count(b'DEBUG ')} DEBUG records, for {len(signatures)} "
        f"signatures ({proxy.requests()} requests), 3 secrets and {len(values)} planted values"
    )
