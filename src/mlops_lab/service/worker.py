"""The service's gunicorn worker: gunicorn's threaded worker, answering small requests in the
thread that sees them arrive, and stopping as soon as its requests are answered.

gunicorn's threaded worker hands every request to a pool thread and the connection back to its
main thread when the answer is sent: four thread handoffs per request, more than the model's own
work for one listing on these machines. A request already whole in the socket's buffer (so
reading it cannot wait on the client) that asks for no explanation is answered by the main
thread itself. New connections, requests still arriving and explanations (tens to hundreds of
milliseconds) go to the pool as before, so a slow client or a long request never holds up the
others.

New connections are spread evenly over the workers (service/balance.py).

gunicorn's own worker also waits out its whole grace period (30 s) in one poll whenever a client
holds an idle keep-alive connection, as a proxy or a `requests.Session` does: no request is
left, yet `docker compose stop`, a SIGTERM and every SIGHUP reload took 30 s. This one closes
idle keep-alive connections when it stops (no request is in flight on them) and keeps waiting,
within the same grace period, for the requests it is answering.
"""

from __future__ import annotations

import re
import socket
import time
from concurrent.futures import Future
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from mlops_lab.service.balance import ConnectionShares

# While stopping, how often the worker looks for connections to close and requests answered;
# while leaving new connections to its siblings, how often it looks whether it may take them.
STOPPING_POLL_SECONDS = 0.1
DECLINING_POLL_SECONDS = 0.05
# How much of a waiting request the main thread looks at: a 1,000-listing batch is larger and
# goes to the pool.
PEEK_BYTES = 64 * 1024
# The arbiter restarts a worker silent for `timeout` (120 s); gunicorn's worker tells it on
# every loop, once per request when the main thread answers, a system call each time.
HEARTBEAT_SECONDS = 1.0
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


def whole_quick_request(waiting: bytes) -> bool:
    """Whether the bytes hold one whole request (headers and body) that asks for no
    explanation and sends no chunked body."""
    end_of_headers = waiting.find(b"\r\n\r\n")
    if end_of_headers < 0:
        return False
    headers = waiting[:end_of_headers]
    if b"explain" in headers.split(b"\r\n", 1)[0] or b"transfer-encoding" in headers.lower():
        return False
    length = CONTENT_LENGTH.search(headers)
    body = int(length.group(1)) if length else 0
    return end_of_headers + 4 + body <= len(waiting)


class HeadersWithBody:
    """A connection's socket that holds the response's headers (gunicorn's first `sendall`)
    until the body follows, and sends both at once: one system call and one segment for the
    client to wake up to instead of two. Anything else done with the socket sends what is
    held first, so nothing is reordered."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.held = b""
        self.first = True

    def sendall(self, data: bytes) -> None:
        if self.first:
            self.first = False
            self.held = bytes(data)
            return
        held, self.held = self.held, b""
        self.sock.sendall(held + data if held else data)

    def flush(self) -> None:
        """Send what is held."""
        held, self.held = self.held, b""
        if held:
            self.sock.sendall(held)

    def __getattr__(self, name: str) -> Any:
        self.flush()
        self.first = False
        return getattr(self.sock, name)


class PromptThreadWorker(ThreadWorker):
    last_heartbeat = 0.0
    # Set by the master before it forks this worker (gunicorn_config.pre_fork).
    connection_shares: ConnectionShares | None = None
    share_slot: int | None = None
    declining = False

    def notify(self) -> None:
        # Called on every turn of the worker's loop: the shared table stays current.
        self.report_connections()
        now = time.monotonic()
        if now - self.last_heartbeat >= HEARTBEAT_SECONDS:
            self.last_heartbeat = now
            super().notify()

    def report_connections(self) -> None:
        if self.connection_shares is not None and self.share_slot is not None:
            self.connection_shares.report(
                self.share_slot, self.pid, self.nr_conns, accepting=self.alive
            )

    def fair_to_accept(self) -> bool:
        """Whether this worker takes new connections, given what its siblings hold."""
        if self.connection_shares is None or self.share_slot is None:
            return True
        return self.connection_shares.fair_to_accept(self.share_slot, self.nr_conns)

    def set_accept_enabled(self, enabled: bool) -> None:
        # gunicorn's loop asks again on every turn while this declines.
        self.declining = enabled and self.alive and not self.fair_to_accept()
        super().set_accept_enabled(enabled and not self.declining)

    def accept(self, listener) -> None:
        super().accept(listener)
        self.report_connections()
        if not self.fair_to_accept():
            self.set_accept_enabled(False)

    def enqueue_req(self, conn) -> None:
        if not self.answers_here(conn):
            super().enqueue_req(conn)
            return
        answered: Future = Future()
        answered.set_result(self.handle(conn))
        self.finish_request(conn, answered)

    def handle_request(self, req, conn) -> bool:
        sock = conn.sock
        conn.sock = HeadersWithBody(sock)
        try:
            return super().handle_request(req, conn)
        finally:
            held, conn.sock = conn.sock, sock
            held.flush()

    def answers_here(self, conn) -> bool:
        """Whether the main thread answers the connection's next request itself."""
        if not conn.initialized or conn.parser is None or self.cfg.is_ssl:
            return False
        if conn.parser.unreader.buf.getbuffer().nbytes:
            return False  # part of the request was read already: look no further
        try:
            waiting = conn.sock.recv(PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:
            return False
        return whole_quick_request(waiting)

    def murder_keepalived(self) -> None:
        if not self.alive:
            for connection in self.keepalived_conns:
                connection.timeout = 0
        super().murder_keepalived()

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        if not self.alive:
            timeout = min(timeout, STOPPING_POLL_SECONDS)
        elif self.declining:
            timeout = min(timeout, DECLINING_POLL_SECONDS)
        super().wait_for_and_dispatch_events(timeout)
