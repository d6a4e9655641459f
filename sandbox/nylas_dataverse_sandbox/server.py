"""Serve an ASGI app with uvicorn on a background thread, on a fixed or a free port."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from nylas_dataverse_sandbox.tls import TlsFiles


@dataclass
class RunningServer:
    """One service listening on 127.0.0.1; ``url`` has no trailing slash."""

    name: str
    host: str
    port: int
    scheme: str
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another port") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve_in_thread(
    name: str,
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: TlsFiles | None = None,
    startup_timeout: float = 20.0,
) -> RunningServer:
    """Start ``app`` and return once it accepts connections. ``port=0`` picks a free port."""
    sock = _bind(host, port)
    actual_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=75,
        timeout_graceful_shutdown=1,
        backlog=2048,
        ssl_certfile=str(tls.cert_pem) if tls else None,
        ssl_keyfile=str(tls.key_pem) if tls else None,
    )
    server = uvicorn.Server(config)
    # uvicorn installs signal handlers only on the main thread; the sandbox owns those itself.
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{name}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"sandbox service {name!r} did not start on {host}:{actual_port}")
        time.sleep(0.02)
    return RunningServer(name, host, actual_port, "https" if tls else "http", server, thread)
