"""``hi-stow``: the package's command line, for use outside Airflow."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_hi_stow.core import healthimaging, redaction
from airflow_hi_stow.core.batching import DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_INSTANCES
from airflow_hi_stow.core.names import printable
from airflow_hi_stow.core.payload_signing import PayloadSigning
from airflow_hi_stow.core.results import Outcome

if TYPE_CHECKING:
    from airflow_hi_stow.core.results import StoreResult

EXIT_OK = 0
EXIT_NOT_ALL_STORED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hi-stow", description="Store DICOM into AWS HealthImaging (STOW-RS).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each request and retry")
    commands = parser.add_subparsers(dest="command", required=True)

    store = commands.add_parser(
        "store",
        help="store DICOM P10 files into a data store",
        description="Store DICOM P10 files with StoreDICOM (or StoreDICOMStudy with --study or --per-study), "
        "through the same engine as StoreDicomOperator: parallel connections, adaptive throttling, and, with "
        "--manifest-dir, a manifest and a resume ledger (a rerun sends only what was not confirmed). Credentials, "
        "CA bundle (AWS_CA_BUNDLE) and proxies (HTTPS_PROXY) come from the standard AWS configuration. Exit status "
        "1 when any file was not stored.",
    )
    store.add_argument("paths", nargs="+", metavar="SOURCE", help="files, directories (recursive), globs or s3:// URIs")
    store.add_argument("--datastore-id", required=True)
    store.add_argument("--region", help="the data store's region (default: the AWS configuration's)")
    store.add_argument("--endpoint-url", help="DICOMweb base URL (default: dicom-medical-imaging.{region}...)")
    store.add_argument("--study", metavar="UID", help="use StoreDICOMStudy for this Study Instance UID")
    store.add_argument("--per-study", action="store_true", help="send each study with StoreDICOMStudy")
    store.add_argument("--profile", help="AWS profile to take credentials from")
    store.add_argument("--payload-signing", choices=[mode.value for mode in PayloadSigning], default="streaming")
    store.add_argument("--batch-mb", type=float, default=DEFAULT_MAX_BATCH_BYTES / 1024**2, help="bytes per request")
    store.add_argument("--batch-instances", type=int, default=DEFAULT_MAX_BATCH_INSTANCES)
    store.add_argument("--connections", type=int, default=4, help="parallel requests at most (default: 4)")
    store.add_argument(
        "--manifest-dir", type=Path, help="keep the manifest and resume ledger here; a rerun resumes from it"
    )
    store.add_argument("--ca-bundle", help="CA bundle to verify the endpoint's certificate with")
    store.add_argument("--no-verify-ssl", action="store_true", help="do not verify the endpoint's certificate")
    store.add_argument("--quiet", action="store_true", help="print only the files that were not stored")
    store.add_argument("--json", metavar="PATH", help="also write every file's outcome as JSON to PATH")
    store.add_argument(
        "--follow-symlinks", action="store_true", help="follow symbolic links in source folders that point out of them"
    )
    store.set_defaults(handler=run_store)

    try:
        from airflow_hi_stow.emulator.cli import add_emulator_command
    except ImportError:  # the emulator subpackage is optional
        pass
    else:
        add_emulator_command(commands)
    return parser


def run_store(args: argparse.Namespace) -> int:
    # Imported here, so that ``--help`` and the emulator command start without botocore, requests and the engine.
    import botocore.session

    from airflow_hi_stow.engine.importer import Collector, ImportSettings, run_import
    from airflow_hi_stow.storage.files import write_whole
    from airflow_hi_stow.storage.locations import LocalLocation
    from airflow_hi_stow.transport.auth import SigV4StowAuth
    from airflow_hi_stow.transport.client import StowClient
    from airflow_hi_stow.transport.session import HttpSettings

    session = botocore.session.Session(profile=args.profile)
    region = args.region or session.get_config_variable("region")
    if not region:
        print("hi-stow: no region: pass --region or set AWS_REGION", file=sys.stderr)
        return EXIT_USAGE
    credentials = session.get_credentials()
    if credentials is None:
        print("hi-stow: no AWS credentials found (environment, profile, instance role...)", file=sys.stderr)
        return EXIT_USAGE
    endpoint = (args.endpoint_url or healthimaging.dicomweb_endpoint(region)).rstrip("/")
    verify: bool | str | None = False if args.no_verify_ssl else args.ca_bundle
    settings = ImportSettings(
        study_instance_uid=args.study,
        per_study=args.per_study,
        max_batch_bytes=int(args.batch_mb * 1024**2),
        max_batch_instances=args.batch_instances,
        max_connections=args.connections,
        follow_symlinks=args.follow_symlinks,
    )
    client = StowClient(
        f"{endpoint}/datastore/{args.datastore_id}",
        auth=SigV4StowAuth(credentials.get_frozen_credentials, region, args.payload_signing),
        http=HttpSettings.from_botocore(
            None, verify, ca_bundle=session.get_config_variable("ca_bundle"), max_connections=args.connections
        ),
        single_part=True,
        max_request_bytes=healthimaging.MAX_REQUEST_BYTES,
    )
    collect = Collector()
    started = time.monotonic()
    with client:
        run_import(
            args.paths,
            client=client,
            location=LocalLocation(args.manifest_dir) if args.manifest_dir else None,
            settings=settings,
            s3_client=lambda: session.create_client("s3", region_name=region),
            collect=collect,
        )
    result = collect.store_result()
    report(result, time.monotonic() - started, quiet=args.quiet)
    if args.json:
        write_whole(Path(args.json), json.dumps([item.to_dict() for item in result.instances], indent=1).encode())
    return EXIT_OK if result.all_stored else EXIT_NOT_ALL_STORED


def report(result: StoreResult, elapsed: float, *, quiet: bool = False) -> None:
    """Print one line per file, then a summary."""
    for item in result.instances:
        if quiet and item.outcome is Outcome.STORED:
            continue
        line = f"{item.outcome.value:<20} {printable(item.source)}"
        print(f"{line}  {item.reason}" if item.reason else line)
    counts = result.counts()
    sent = sum(request.sent_bytes for request in result.requests)
    rate = sent / elapsed / 1e6 if elapsed > 0 else 0.0
    print(
        f"{len(result.instances)} file(s): "
        + ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in counts.items())
        + f"; {sent / 1e6:.1f} MB in {len(result.requests)} request(s), {elapsed:.1f} s ({rate:.1f} MB/s)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    redaction.install()
    if not args.verbose:
        logging.getLogger("botocore").setLevel(logging.WARNING)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
