"""Reason codes, UIDs, batching, the retry policy and error-text redaction."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from airflow_hi_stow.core import status_codes
from airflow_hi_stow.core.batching import BatchBuilder, plan_batches
from airflow_hi_stow.core.uids import is_valid_uid, matches_healthimaging_pattern
from airflow_hi_stow.transport.errors import describe_sources, error_reason, redact
from airflow_hi_stow.transport.retry import RetryPolicy, parse_retry_after


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (0xC122, "C122 (Referenced Transfer Syntax not supported)"),
        (0xC000, "C000 (Error: cannot understand)"),
        (0xC3FF, "C3FF (Error: cannot understand)"),
        (0xA700, "A700 (Refused: out of resources)"),
        (0xA9FE, "A9FE (Error: data set does not match SOP Class)"),
        (0x0110, "0110 (Processing failure)"),
        (0x0122, "0122 (Referenced SOP Class not supported)"),
        (0xB000, "B000 (Coercion of data elements)"),
        (0xB007, "B007 (Data set does not match SOP Class)"),
        (0x1234, "1234 (unknown reason)"),
    ],
)
def test_reason_codes_are_described(code: int, text: str) -> None:
    assert status_codes.describe(code) == text


def test_healthimaging_warnings_are_warnings() -> None:
    for code in (0xB000, 0xB006, 0xB007, 0xB100, 0xB110, 0xB111):
        assert status_codes.is_warning(code)
        assert "unknown" not in status_codes.describe(code)
    assert not status_codes.is_warning(0xC122)


@pytest.mark.parametrize(
    ("uid", "valid"),
    [
        ("1.2.840.10008.1.2.1", True),
        ("2.25.123456789", True),
        ("0", True),
        ("999.999.1.20040312", True),  # an old vendor root: stored by Orthanc and HealthImaging
        ("1.02.3", True),
        ("3.1", True),
        ("1.2.3\n", False),  # a trailing newline must not reach the URL
        ("", False),
        ("1..2", False),
        ("1.2.", False),
        (".1.2", False),
        ("1.2.a", False),
        ("1.2 ", False),
        ("1." + "1" * 62, True),
        ("1." + "1" * 63, False),
    ],
)
def test_uid_syntax(uid: str, valid: bool) -> None:
    """The client refuses only what a request cannot carry; stricter rules are the validation step's warnings."""
    assert is_valid_uid(uid) is valid


@pytest.mark.parametrize(
    ("uid", "valid"),
    [("999.999.1", True), ("1.2.840.10008.1.2", True), ("1.02.3", False), ("01.2", True), ("1.2.3\n", False)],
)
def test_healthimaging_uid_pattern(uid: str, valid: bool) -> None:
    assert matches_healthimaging_pattern(uid) is valid


def test_batches_respect_bytes_count_and_groups() -> None:
    items = [("s1", 40), ("s1", 40), ("s2", 10), ("s1", 40), ("s2", 95), ("s2", 200), ("s1", 1)]
    batches = plan_batches(items, lambda item: item[1], max_bytes=100, max_instances=2, group=lambda item: item[0])
    assert sorted(item for batch in batches for item in batch) == sorted(items)
    for batch in batches:
        assert len({study for study, _ in batch}) == 1
        assert len(batch) <= 2
        assert sum(size for _, size in batch) <= 100 or len(batch) == 1
    assert [("s2", 200)] in batches


def test_batches_without_groups_keep_order() -> None:
    batches = plan_batches(range(7), lambda _: 1, max_bytes=10, max_instances=3)
    assert batches == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_study_the_walk_has_moved_past_is_sent_before_the_end() -> None:
    """Studies listed one after the other: each study's last, partial batch closes once max_instances items of
    other studies followed it, not at the flush."""
    builder: BatchBuilder[tuple[str, int]] = BatchBuilder(lambda _: 1, max_instances=3, group=lambda item: item[0])
    closed_by = {}
    items = [(study, number) for study in ("a", "b", "c") for number in range(4)]
    for position, item in enumerate(items):
        for batch in builder.add(item):
            closed_by[tuple(batch)] = position
    leftover = builder.flush()
    assert closed_by[(("a", 3),)] <= items.index(("a", 3)) + 2 * 3
    assert closed_by[(("b", 3),)] <= items.index(("b", 3)) + 2 * 3
    assert leftover == [[("c", 3)]]
    assert builder.count == 6


def test_interleaved_studies_still_fill_their_batches() -> None:
    items = [(study, number) for number in range(6) for study in ("a", "b", "c")]
    batches = plan_batches(items, lambda _: 1, max_bytes=100, max_instances=3, group=lambda item: item[0])
    assert sorted(len(batch) for batch in batches) == [3] * 6


def test_backoff_grows_is_jittered_and_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [policy.delay(attempt, rng=rng) for _ in range(200)]
        assert max(delays) <= ceiling
        assert min(delays) >= 0
        assert max(delays) > ceiling / 2  # spread over the range, not a constant


def test_retry_after_is_honoured_and_capped() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=0.2, max_retry_after=60)
    assert policy.delay(1, "7") >= 7
    assert policy.delay(1, "3600") == 60
    assert policy.delay(1, "garbage") <= 0.1


def test_retry_after_as_http_date() -> None:
    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 25 Nov 2026 12:00:30 GMT", now) == 30
    assert parse_retry_after("Wed, 25 Nov 2026 11:00:00 GMT", now) == 0
    assert parse_retry_after(None) is None


def test_error_reasons_keep_the_message_and_drop_secrets() -> None:
    body = (
        b'{"__type": "com.amazon.coral#InvalidSignatureException", "message": "The request signature we calculated '
        b"does not match. The Canonical String for this request should have been\\n'POST\\n/datastore' and "
        b'Credential=AKIAIOSFODNN7EXAMPLE/20130524 Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"}'
    )
    reason = error_reason(body)
    assert reason == (
        "InvalidSignatureException: The request signature we calculated does not match. "
        "The Canonical String for this request should have been"
    )
    assert "AKIA" not in reason
    assert "4f232c43" not in reason
    assert len(reason) <= 200


def test_error_reason_from_plain_text_and_html() -> None:
    assert error_reason(b"Bad file format\nmore") == "Bad file format"
    assert error_reason(b"<html><body>502</body></html>") == "no reason given (an HTML or XML page)"
    assert error_reason(b"", "ThrottlingException:http://internal") == "ThrottlingException"


def test_redact_removes_key_ids_and_hashes() -> None:
    assert redact("key ASIAABCDEFGHIJKLMNOP sig " + "a" * 64) == "key [redacted] sig [redacted]"


def test_many_sources_are_abbreviated() -> None:
    assert describe_sources([f"f{i}" for i in range(8)]) == "f0, f1, f2, f3, f4 (+3 more)"
