"""The engine's budget for the small files' content it keeps between their header read and their send."""

from __future__ import annotations

from pathlib import Path

from airflow_hi_stow.engine.kept_content import KeptContent
from airflow_hi_stow.sources.instances import DicomInstance, LocalFile


def instance(name: str, content: bytes | None) -> DicomInstance:
    file = LocalFile(Path(name), len(content or b"x"))
    return DicomInstance(file, "1.2.840.10008.5.1.4.1.1.2", "1.2.3", "1.2", "1.2.4", "1.2.840.10008.1.2.1", content)


def test_content_is_kept_while_the_budget_has_room_and_freed_when_released() -> None:
    kept = KeptContent(limit=10)
    first, second, third = (kept.keep(instance(name, b"12345")) for name in ("a", "b", "c"))
    assert first.content == second.content == b"12345"
    assert third.content is None  # over the budget: read again when it is sent
    assert third.sop_instance_uid == "1.2.3"
    assert kept.held == 10
    kept.release([first, third])
    assert kept.held == 5
    assert kept.keep(instance("d", b"12345")).content == b"12345"
    assert kept.held == 10


def test_an_instance_without_content_costs_nothing() -> None:
    kept = KeptContent(limit=1)
    plain = instance("a", None)
    assert kept.keep(plain) is plain
    kept.release([plain])
    assert kept.held == 0
