"""Helpers for the tests of custody's HTTP clients (the alarm webhook, the witness): a local server run in
the background, and a port nothing listens on."""

from __future__ import annotations

import http.server
import socket
import threading


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: a connection to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed on leaving


def serve_in_background(server: http.server.HTTPServer) -> None:
    """Answer ``server``'s requests in a thread of its own until :func:`stop` (polling every 10 ms)."""
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()


def stop(server: http.server.HTTPServer) -> None:
    server.shutdown()
    server.server_close()
