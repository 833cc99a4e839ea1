"""``hi-stow emulator`` (and ``python -m airflow_hi_stow.emulator``): the emulator's command line."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_hi_stow.core.healthimaging import MAX_REQUEST_BYTES
from airflow_hi_stow.emulator.faults import SCOPES, FaultConfig

if TYPE_CHECKING:
    from airflow_hi_stow.emulator.context import EmulatorConfig

_DATASTORE_ID = re.compile(r"[0-9a-z]{32}")
ACCESS_KEY_ENV = "HI_STOW_EMULATOR_ACCESS_KEY"
SECRET_KEY_ENV = "HI_STOW_EMULATOR_SECRET_KEY"  # noqa: S105 - a variable name
SESSION_TOKEN_ENV = "HI_STOW_EMULATOR_SESSION_TOKEN"  # noqa: S105 - a variable name


def default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "hi-stow-emulator"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8042, help="port to listen on; 0 picks a free one (default: 8042)")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help=f"where to keep data (default: {default_data_dir()})"
    )
    parser.add_argument("--region", default="us-east-1", help="the region requests must be signed for")
    parser.add_argument(
        "--datastore-id", type=_datastore_id, help="id of the default data store (32 of [0-9a-z]); created if new"
    )
    tls = parser.add_argument_group("TLS (serve https://, as HealthImaging does)")
    tls.add_argument("--tls-cert", type=Path, help="the server certificate (PEM; its chain after it)")
    tls.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    auth = parser.add_argument_group("authentication (SigV4 with one key pair; default: test / test)")
    auth.add_argument("--access-key", default=os.environ.get(ACCESS_KEY_ENV), help=f"or ${ACCESS_KEY_ENV}")
    auth.add_argument("--secret-key", default=os.environ.get(SECRET_KEY_ENV), help=f"or ${SECRET_KEY_ENV}")
    auth.add_argument(
        "--session-token", default=os.environ.get(SESSION_TOKEN_ENV), help=f"required token; or ${SESSION_TOKEN_ENV}"
    )
    auth.add_argument("--no-auth", action="store_true", help="accept unsigned requests (generic DICOMweb clients)")
    limits = parser.add_argument_group("service behaviour")
    limits.add_argument("--max-request-bytes", type=int, default=MAX_REQUEST_BYTES, help="413 above this (1 GB)")
    limits.add_argument(
        "--verified-transfer-syntaxes-only",
        action="store_true",
        help="refuse (C122) the transfer syntaxes of HealthImaging's table that were not verified (HTJ2K, RLE)",
    )
    faults = parser.add_argument_group("fault injection (also settable at POST /_emulator/faults)")
    faults.add_argument("--fail-rate", type=float, default=0.0, help="share of requests answered 429/503")
    faults.add_argument("--fail-status", default="429,503", help="statuses used in turn (default: 429,503)")
    faults.add_argument("--fail-burst", type=int, default=1, help="consecutive requests each error spans (default: 1)")
    faults.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds of injected errors")
    faults.add_argument("--drop-rate", type=float, default=0.0, help="share of connections dropped mid-body")
    faults.add_argument("--slow-rate", type=float, default=0.0, help="share of responses delayed")
    faults.add_argument("--slow-seconds", type=float, default=0.0, help="delay of slow responses")
    faults.add_argument("--throttle-rps", type=float, help="answer 429 ThrottlingException above N requests/s")
    faults.add_argument("--throttle-burst", type=int, help="bucket size of the throttle (default: N)")
    faults.add_argument("--fault-scope", choices=SCOPES, default="stow", help="stow requests only, or all")
    faults.add_argument("--max-faults", type=int, help="stop injecting after N faults")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="warning")


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The settings the arguments describe; raises ValueError for inconsistent ones."""
    from airflow_hi_stow.emulator.auth import EmulatorCredentials  # not at import: it imports botocore and starlette
    from airflow_hi_stow.emulator.context import DEFAULT_CREDENTIALS, EmulatorConfig

    if args.no_auth and (args.access_key or args.secret_key or args.session_token):
        raise ValueError("--no-auth excludes credentials")
    if bool(args.access_key) != bool(args.secret_key):
        raise ValueError("give both --access-key and --secret-key, or neither")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("give both --tls-cert and --tls-key, or neither")
    for path in (args.tls_cert, args.tls_key):
        if path is not None and not path.is_file():
            raise ValueError(f"{path}: no such file")
    credentials: EmulatorCredentials | None = None
    if not args.no_auth:
        credentials = (
            EmulatorCredentials(args.access_key, args.secret_key, args.session_token or None)
            if args.access_key
            else EmulatorCredentials(DEFAULT_CREDENTIALS.access_key, DEFAULT_CREDENTIALS.secret_key, args.session_token)
        )
    faults = FaultConfig(
        error_rate=args.fail_rate,
        error_statuses=tuple(int(status) for status in args.fail_status.split(",") if status.strip()),
        error_burst=args.fail_burst,
        retry_after=args.retry_after,
        drop_rate=args.drop_rate,
        slow_rate=args.slow_rate,
        slow_seconds=args.slow_seconds,
        throttle_rps=args.throttle_rps,
        throttle_burst=args.throttle_burst,
        scope=args.fault_scope,
        max_faults=args.max_faults,
    )
    return EmulatorConfig(
        data_dir=(args.data_dir or default_data_dir()).resolve(),
        host=args.host,
        port=args.port,
        region=args.region,
        credentials=credentials,
        datastore_id=args.datastore_id,
        max_request_bytes=args.max_request_bytes,
        verified_transfer_syntaxes_only=args.verified_transfer_syntaxes_only,
        faults=faults,
        tls_cert=args.tls_cert.resolve() if args.tls_cert else None,
        tls_key=args.tls_key.resolve() if args.tls_key else None,
    )


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ValueError as exc:
        raise SystemExit(f"hi-stow emulator: {exc}") from None
    from airflow_hi_stow.emulator.server import serve  # uvicorn is imported only to run

    return serve(config, args.log_level)


_DESCRIPTION = (
    "Run a local AWS HealthImaging emulator: StoreDICOM/StoreDICOMStudy with SigV4 verification, the boto3 "
    "medical-imaging APIs (data stores, SearchImageSets, GetImageSet, GetImageSetMetadata), QIDO-RS/WADO-RS, and "
    "fault injection. Prints one line with its URL and default data store id once it listens."
)


def add_emulator_command(subparsers: Any) -> None:
    """Add ``emulator`` to the ``hi-stow`` command line."""
    parser = subparsers.add_parser("emulator", help="run a local HealthImaging emulator", description=_DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(handler=run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_hi_stow.emulator", description=_DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def _datastore_id(value: str) -> str:
    if not _DATASTORE_ID.fullmatch(value):
        raise argparse.ArgumentTypeError("a data store id is 32 characters of [0-9a-z]")
    return value
