"""Hostile file names and paths through every step (de-identify -> validate -> store), local and S3: spaces,
unicode (composed and decomposed), very long names and deep paths, names that look like options or shell, control
characters, glob characters; symbolic links out of the source tree (never followed unless asked), in it, dangling;
S3 keys with ``..`` and ``%2F``. Every input is accounted for under its exact name, and nothing outside the source
is read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from airflow_hi_stow.cli import report
from airflow_hi_stow.core.results import Outcome
from airflow_hi_stow.engine.deidentify import deidentify_source
from airflow_hi_stow.engine.importer import Collector, ImportSettings, run_import
from airflow_hi_stow.engine.ledger import read_manifest
from airflow_hi_stow.sources.resolve import OUTSIDE_LINK, read_file_list, resolve_sources
from airflow_hi_stow.storage.locations import LocalLocation
from airflow_hi_stow.testing import RunningEmulator, start_emulator
from airflow_hi_stow.validate import ValidationSettings, validate_files
from tests.emulator.conftest import stow_client
from tests.support.s3 import MotoS3
from tests.support.tiny_dicom import write_tiny_instances

KEY = "hostile-names-test-key-" + "h" * 40
HOSTILE = [
    "with space/and  more spaces.dcm",
    "Müller/Ünïcödé 日本語 ✓.dcm",
    "caf\u00e9.dcm",  # composed é
    "cafe\u0301.dcm",  # the same word decomposed: another name on Linux
    "x" * 200 + ".dcm",
    "/".join(["deep"] * 40) + "/bottom.dcm",
    "-rf.dcm",
    "--help",
    "-",
    "line\nbreak.dcm",
    "tab\there.dcm",
    "\u202eevil.dcm",  # a right-to-left override
    "[1]*?.dcm",
    "a%2Fb.dcm",
    "...",
    "$(touch pwned).dcm",
    "`id`;'quote\".dcm",
    ".hidden.dcm",
]
SECRET_NAME = "OUTSIDE^SECR"  # as long as TINY^PATIENT, which it replaces


def write_hostile_tree(root: Path) -> tuple[Path, dict[str, Path], Path]:
    """The source (hostile names, and links in, out and dangling), the files by name, and a DICOM file outside
    the source that only a followed link reaches."""
    source = root / "incoming"
    tiny = write_tiny_instances(root / "tiny", len(HOSTILE) + 1, studies=3)
    named = {}
    for name, instance in zip(HOSTILE, tiny, strict=False):
        path = source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(instance.path, path)
        named[name] = path
    outside = root / "outside"
    outside.mkdir()
    secret = outside / "secret.dcm"
    data = tiny[-1].path.read_bytes().replace(b"TINY^PATIENT", SECRET_NAME.encode())
    secret.write_bytes(data)
    (source / "link-out.dcm").symlink_to(secret)
    (source / "link-out-folder").symlink_to(outside, target_is_directory=True)
    (source / "link-in.dcm").symlink_to(named["-rf.dcm"])
    (source / "dangling.dcm").symlink_to(source / "gone.dcm")  # inside the source, to nothing
    return source, named, secret


@pytest.fixture
def emulator(tmp_path: Path) -> Any:
    with start_emulator(tmp_path / "emulator") as running:
        yield running


def everything_written(*roots: Path) -> bytes:
    return b"".join(path.read_bytes() for root in roots for path in root.rglob("*") if path.is_file())


def test_a_hostile_tree_through_deidentify_validate_and_store(tmp_path: Path, emulator: RunningEmulator) -> None:
    source, named, secret = write_hostile_tree(tmp_path)
    listed = list(resolve_sources(str(source)))
    by_name = {getattr(item, "name", None) or getattr(item, "source", None): item for item in listed}
    assert set(by_name) == {str(path) for path in named.values()} | {
        str(source / "link-out.dcm"),
        str(source / "link-out-folder"),
        str(source / "dangling.dcm"),
    }  # the link inside is the file it points to, listed once
    assert by_name[str(source / "link-out.dcm")].reason == OUTSIDE_LINK  # type: ignore[union-attr]
    assert by_name[str(source / "link-out-folder")].reason == OUTSIDE_LINK  # type: ignore[union-attr]
    assert by_name[str(source / "dangling.dcm")].reason == "no such file or directory"  # type: ignore[union-attr]

    deidentified = deidentify_source(str(source), str(tmp_path / "out"), KEY, records=LocalLocation(tmp_path / "r1"),
                                     quarantine=str(tmp_path / "held"), workers=1)  # fmt: skip
    assert deidentified["counts"] == {"inputs": len(HOSTILE) + 3, "deidentified": len(HOSTILE), "quarantined": 3}
    held = {
        json.loads((folder / "source.json").read_text())["source"]: json.loads((folder / "reason.json").read_text())
        for folder in (tmp_path / "held").iterdir()
    }
    assert held[str(source / "link-out.dcm")]["detail"] == f"the input could not be read ({OUTSIDE_LINK})"
    assert set(held) == {str(source / "link-out.dcm"), str(source / "link-out-folder"), str(source / "dangling.dcm")}

    validated = validate_files(resolve_sources(deidentified), quarantine=LocalLocation(tmp_path / "invalid"),
                               output=LocalLocation(tmp_path / "r2"), settings=ValidationSettings.of({"deid": "error"}))  # fmt: skip
    assert (len(validated.good), len(validated.quarantined)) == (len(HOSTILE), 0)
    summary = run_import(validated.store_source, client=stow_client(emulator), location=LocalLocation(tmp_path / "r3"))
    assert summary["counts"]["stored"] == len(HOSTILE)
    assert emulator.stats()["index"]["instances"] == len(HOSTILE)

    # nothing of the file outside the source was read: not its bytes, not its patient's name
    written = everything_written(tmp_path / "out", tmp_path / "held", tmp_path / "r1", tmp_path / "r2")
    assert SECRET_NAME.encode() not in written
    assert secret.read_bytes() not in written


def test_a_hostile_tree_stored_directly_keeps_every_name_exactly(tmp_path: Path, emulator: RunningEmulator) -> None:
    source, named, _ = write_hostile_tree(tmp_path)
    collect = Collector()
    summary = run_import(str(source), client=stow_client(emulator), location=LocalLocation(tmp_path / "r"),
                         collect=collect, settings=ImportSettings(max_batch_instances=4))  # fmt: skip
    assert summary["counts"]["stored"] == len(HOSTILE)
    assert summary["counts"]["rejected"] == 3
    manifest = {
        item.source: item for item in read_manifest((tmp_path / "r" / "manifest.jsonl").read_text().splitlines())
    }
    assert {name for name, item in manifest.items() if item.outcome is Outcome.STORED} == {
        str(path) for path in named.values()
    }
    assert manifest[str(source / "link-out.dcm")].reason == OUTSIDE_LINK
    # the names shown to a person cannot forge a line or hide their end
    lines = _printed(collect)
    assert not any(line.startswith("break.dcm") or line.startswith("evil") for line in lines)
    assert any("line\\nbreak.dcm" in line for line in lines)
    assert any("\\u202eevil.dcm" in line for line in lines)

    followed = run_import(str(source), client=stow_client(emulator), location=LocalLocation(tmp_path / "f"),
                          settings=ImportSettings(follow_symlinks=True))  # fmt: skip
    # asked for: the link out is read (the folder's copy of it is a duplicate of the file sent); the link in stands
    # for its file, listed once
    assert followed["counts"]["stored"] == len(HOSTILE) + 1
    reasons = {item["reason"]: item["count"] for item in followed["top_reasons"]}
    assert reasons["no such file or directory"] == 1  # the dangling link
    assert sum(count for reason, count in reasons.items() if reason.startswith("duplicate SOP Instance UID")) == 1
    assert followed["counts"]["rejected"] == 2


def test_a_hostile_tree_quarantined_whole_by_the_validation_keeps_every_name(tmp_path: Path) -> None:
    """The validation's de-identification gate quarantines every file (none is de-identified): each copy is named
    by a digest of its source's name and a cleaned last part, its reason file names the source exactly."""
    source, named, _ = write_hostile_tree(tmp_path)
    run = validate_files(resolve_sources(str(source)), quarantine=LocalLocation(tmp_path / "q"),
                         output=LocalLocation(tmp_path / "r"), settings=ValidationSettings.of({"deid": "error"}))  # fmt: skip
    assert (len(run.good), len(run.quarantined)) == (0, len(HOSTILE) + 3)
    reasons = [json.loads(path.read_text()) for path in (tmp_path / "q").glob("*.reason.json")]
    assert sorted(reason["source"] for reason in reasons) == sorted(outcome.source for outcome in run.quarantined)
    copies = [path for path in (tmp_path / "q").iterdir() if not path.name.endswith(".reason.json")]
    assert len(copies) == len(HOSTILE)  # the three links have a reason file alone
    assert all(len(path.name) <= 117 and path.name.isprintable() for path in copies)
    assert {path.read_bytes() for path in copies} == {path.read_bytes() for path in named.values()}


def _printed(collect: Collector) -> list[str]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        report(collect.store_result(), 1.0)
    return out.getvalue().splitlines()


S3_KEYS = [
    "in/with space/and more.dcm",
    "in/Müller/日本語.dcm",
    "in/../escape.dcm",
    "in/a/./b.dcm",
    "in/a%2Fb.dcm",
    "in/-rf.dcm",
    "in/" + "k" * 900 + ".dcm",
    "in/double//slash.dcm",
]
"""(S3 takes a newline in a key; moto's server does not, so the local tree covers that name.)"""


def test_hostile_s3_keys_through_every_step(tmp_path: Path, emulator: RunningEmulator, moto_s3: MotoS3) -> None:
    tiny = write_tiny_instances(tmp_path / "tiny", len(S3_KEYS), studies=2)
    client = moto_s3.client()
    for key, instance in zip(S3_KEYS, tiny, strict=True):
        client.upload_file(str(instance.path), moto_s3.bucket, key)
    bucket = f"s3://{moto_s3.bucket}"
    listed = [getattr(item, "name", "") for item in resolve_sources(f"{bucket}/in/", moto_s3.client)]
    assert sorted(listed) == sorted(f"{bucket}/{key}" for key in S3_KEYS)  # exactly the keys, none normalised

    deidentified = deidentify_source(f"{bucket}/in/", f"{bucket}/out", KEY, records=LocalLocation(tmp_path / "r1"),
                                     s3_client=moto_s3.client, workers=1)  # fmt: skip
    assert deidentified["counts"] == {"inputs": len(S3_KEYS), "deidentified": len(S3_KEYS), "quarantined": 0}
    outputs = read_file_list((tmp_path / "r1" / "deidentified.jsonl").read_bytes())
    assert all(uri.startswith(f"{bucket}/out/2.25.") and ".." not in uri for uri in outputs)
    validated = validate_files(resolve_sources(deidentified, moto_s3.client),
                               quarantine=LocalLocation(tmp_path / "invalid"), output=LocalLocation(tmp_path / "r2"),
                               settings=ValidationSettings.of({"deid": "error"}))  # fmt: skip
    assert len(validated.good) == len(S3_KEYS)
    summary = run_import(validated.store_source, client=stow_client(emulator), location=LocalLocation(tmp_path / "r3"),
                         s3_client=moto_s3.client)  # fmt: skip
    assert summary["counts"]["stored"] == len(S3_KEYS)

    # and the originals straight from S3, each under its exact URI in the manifest
    direct = run_import(f"{bucket}/in/", client=stow_client(emulator), location=LocalLocation(tmp_path / "r4"),
                        s3_client=moto_s3.client)  # fmt: skip
    assert direct["counts"]["stored"] == len(S3_KEYS)
    manifest = read_manifest((tmp_path / "r4" / "manifest.jsonl").read_text().splitlines())
    assert sorted(item.source for item in manifest) == sorted(f"{bucket}/{key}" for key in S3_KEYS)
    assert all(dcmread(instance.path).SOPInstanceUID for instance in tiny)
