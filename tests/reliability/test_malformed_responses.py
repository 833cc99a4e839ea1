"""Answers a STOW-RS server should not give (wrong content type, invalid JSON, sequences missing or malformed, HTML
error pages, an empty 200): never a crash, a reason that says what came back, and the files left ``unconfirmed`` (or
``failed`` when the server refused the request) rather than reported stored: out of the resume ledger, so the retry
of the task sends them again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_hi_stow.core import dicom_json as dj
from airflow_hi_stow.core.results import Outcome
from airflow_hi_stow.core.store_response import ReferencedInstance, build_store_response
from airflow_hi_stow.engine.importer import ImportSettings, run_import
from airflow_hi_stow.engine.ledger import read_manifest
from airflow_hi_stow.storage.locations import LocalLocation
from airflow_hi_stow.transport.client import StowClient
from airflow_hi_stow.transport.retry import RetryPolicy
from tests.support.scripted_server import Reply, scripted_server
from tests.support.tiny_dicom import TinyInstance, write_tiny_instances

FAST = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)
HTML = {"Content-Type": "text/html"}
JSON = {"Content-Type": "application/dicom+json"}
NOT_LISTED = "without a Store Instances Response listing the instances"


@pytest.fixture
def files(tmp_path: Path) -> list[TinyInstance]:
    return write_tiny_instances(tmp_path / "in", 3, studies=1, series_per_study=1)


def referenced(files: list[TinyInstance], **item: Any) -> dict[str, Any]:
    return build_store_response(
        retrieve_url="http://x/studies", referenced=[ReferencedInstance(f.sop_instance_uid, **item) for f in files]
    )


def import_through(reply: Reply, files: list[TinyInstance], tmp_path: Path) -> tuple[dict[str, Any], Path]:
    records = tmp_path / "records"
    with scripted_server(lambda _: reply) as server:
        summary = run_import(
            [str(f.path) for f in files],
            client=StowClient(server.url, retry=FAST),
            location=LocalLocation(records),
            settings=ImportSettings(max_batch_instances=10),
        )
    return summary, records


@pytest.mark.parametrize(
    ("reply", "outcome", "reason"),
    [
        (Reply(200, b"", JSON), Outcome.UNCONFIRMED, f"HTTP 200 {NOT_LISTED}"),
        (Reply(200, b"<html><body>OK</body></html>", HTML), Outcome.UNCONFIRMED, f"HTTP 200 {NOT_LISTED}"),
        (Reply(200, b'{"00081199": {"vr": "SQ", "Value": [', JSON), Outcome.UNCONFIRMED, f"HTTP 200 {NOT_LISTED}"),
        (Reply(200, b"\xff\xfe not utf-8 \x00", JSON), Outcome.UNCONFIRMED, f"HTTP 200 {NOT_LISTED}"),
        (
            Reply(200, b"<NativeDicomModel/>", {"Content-Type": "application/dicom+xml"}),
            Outcome.UNCONFIRMED,
            f"HTTP 200 {NOT_LISTED}",
        ),
        (Reply(200, b"{}", JSON), Outcome.UNCONFIRMED, "not listed in the HTTP 200 response"),
        (
            Reply(200, {dj.RETRIEVE_URL: dj.element("UR", "http://x")}, JSON),
            Outcome.UNCONFIRMED,
            "not listed in the HTTP 200 response",
        ),
        (
            Reply(200, {dj.REFERENCED_SOP_SEQUENCE: {"vr": "SQ", "Value": "not a list"}}, JSON),
            Outcome.UNCONFIRMED,
            "not listed in the HTTP 200 response",
        ),
        (
            Reply(200, {dj.REFERENCED_SOP_SEQUENCE: dj.sequence([{"00081150": dj.element("UI", "1.2")}])}, JSON),
            Outcome.UNCONFIRMED,
            "not listed in the HTTP 200 response",
        ),
        (Reply(200, [{}, {}], JSON), Outcome.UNCONFIRMED, f"HTTP 200 {NOT_LISTED}"),
        (Reply(200, {"message": "ok"}, JSON), Outcome.UNCONFIRMED, f"HTTP 200 {NOT_LISTED}"),
        (Reply(202, b"Accepted", {"Content-Type": "text/plain"}), Outcome.UNCONFIRMED, f"HTTP 202 {NOT_LISTED}"),
        (Reply(204), Outcome.UNCONFIRMED, f"HTTP 204 {NOT_LISTED}"),
        (
            Reply(400, b"<html><h1>400 Bad Request</h1></html>", HTML),
            Outcome.FAILED,
            "HTTP 400: no reason given (an HTML or XML page)",
        ),
        (
            Reply(409, b"<html>Conflict</html>", HTML),
            Outcome.FAILED,
            "HTTP 409: no reason given (an HTML or XML page)",
        ),
        (
            Reply(500, b"<html>Internal Server Error</html>", HTML),
            Outcome.UNCONFIRMED,
            "gave up after 2 attempt(s), last: HTTP 500",
        ),
        (
            Reply(502, b"<html>Bad Gateway</html>", HTML),
            Outcome.UNCONFIRMED,
            "gave up after 2 attempt(s), last: HTTP 502",
        ),
        (
            Reply(503, b"<html>Service Unavailable</html>", HTML),
            Outcome.FAILED,
            "gave up after 2 attempt(s), last: HTTP 503",
        ),
        (Reply(418, b"I'm a teapot", {"Content-Type": "text/plain"}), Outcome.FAILED, "HTTP 418: I'm a teapot"),
    ],
)
def test_a_malformed_answer_leaves_the_files_unconfirmed_or_failed_with_a_reason(
    files: list[TinyInstance], tmp_path: Path, reply: Reply, outcome: Outcome, reason: str
) -> None:
    summary, records = import_through(reply, files, tmp_path)
    assert summary["counts"][outcome.value] == len(files)
    manifest = list(read_manifest((records / "manifest.jsonl").read_text().splitlines()))
    assert {item.outcome for item in manifest} == {outcome}
    assert all(item.reason is not None and item.reason.startswith(reason) for item in manifest), manifest[0].reason
    assert not (records / "ledger.jsonl").exists()  # nothing confirmed: a retry sends every file again


def test_a_valid_listing_under_a_wrong_content_type_is_read_and_an_unlisted_file_stays_unconfirmed(
    files: list[TinyInstance], tmp_path: Path
) -> None:
    """The body is what proves a store, whatever its Content-Type says (servers send text/plain or none): a
    listing of two of the three files stores those two; the third, not named, is unconfirmed."""
    reply = Reply(200, json.dumps(referenced(files[:2])).encode(), {"Content-Type": "text/plain"})
    summary, records = import_through(reply, files, tmp_path)
    assert (summary["counts"]["stored"], summary["counts"]["unconfirmed"]) == (2, 1)
    ledger = [json.loads(line)["source"] for line in (records / "ledger.jsonl").read_text().splitlines()]
    assert sorted(ledger) == sorted(str(f.path) for f in files[:2])


def test_a_listing_of_other_instances_confirms_none_of_those_sent(files: list[TinyInstance], tmp_path: Path) -> None:
    other = write_tiny_instances(tmp_path / "other", 3, seed=7)
    summary, _ = import_through(Reply(200, referenced(other), JSON), files, tmp_path)
    assert summary["counts"]["unconfirmed"] == len(files)


def test_an_answer_cut_short_is_retried_and_never_taken_for_a_listing(
    files: list[TinyInstance], tmp_path: Path
) -> None:
    """A 200 whose body stops before its Content-Length (the server died while answering): a lost connection,
    retried; the retry's good answer is the one that counts."""
    complete = referenced(files)

    def answer(number: int) -> Reply:
        return Reply(200, complete, JSON, cut_after=100 if number == 0 else None)

    with scripted_server(answer) as server:
        summary = run_import(
            [str(f.path) for f in files],
            client=StowClient(server.url, retry=FAST),
            location=LocalLocation(tmp_path / "records"),
            settings=ImportSettings(max_batch_instances=10),
        )
    assert summary["counts"]["stored"] == len(files)
    assert summary["retries"]["connection_lost"] == 1
    assert summary["possibly_stored_twice"] == len(files)
