"""Running the emulator: uvicorn on a socket bound first (so port 0 works), one flushed readiness line once it
listens, and a clean stop (storage closed, exit status 0) on SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import socket
import sys

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from airflow_hi_stow.emulator.allocator import pin_mmap_threshold
from airflow_hi_stow.emulator.app import create_app
from airflow_hi_stow.emulator.context import EmulatorConfig, EmulatorContext
from airflow_hi_stow.emulator.web import ABORT_EXTENSION

READY_LINE = "HealthImaging emulator listening on {url} datastore_id={datastore_id} region={region} auth={auth}"
GRACEFUL_SHUTDOWN_SECONDS = 5


class AbortableHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, offering the application a way to drop the connection (fault injection)."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        assert self.transport is not None
        self.scope["extensions"] = {ABORT_EXTENSION: {"abort": self.transport.abort}}


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready_line: str) -> None:
        super().__init__(config)
        self.ready_line = ready_line

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(self.ready_line, flush=True)


def bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    return sock


def serve(config: EmulatorConfig, log_level: str = "warning") -> int:
    """Run until SIGTERM/SIGINT; returns the exit status."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for name in ("airflow_hi_stow", "uvicorn"):
        logging.getLogger(name).setLevel(log_level.upper())
    pin_mmap_threshold()
    context = EmulatorContext.open(config)
    try:
        sock = bind(config.host, config.port)
        host = f"[{config.host}]" if ":" in config.host else config.host
        ready = READY_LINE.format(
            url=f"{config.scheme}://{host}:{sock.getsockname()[1]}",
            datastore_id=context.default_datastore_id,
            region=config.region,
            auth="sigv4" if config.credentials else "none",
        )
        server = _Server(
            uvicorn.Config(
                create_app(context),
                http=AbortableHttpToolsProtocol,
                lifespan="off",
                access_log=False,
                log_config=None,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
                ssl_certfile=config.tls_cert,
                ssl_keyfile=config.tls_key,
            ),
            ready,
        )
        # uvicorn re-raises the signal that stopped it once it has shut down; these handlers make that a no-op,
        # so the storage is closed and the exit status is 0.
        for stop in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop, lambda *_: None)
        server.run(sockets=[sock])
    finally:
        context.storage.close()
    return 0
