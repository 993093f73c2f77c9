"""Hostile clients over real sockets: they stall inside their headers, dribble their bodies,
connect and say nothing, or send more than the cap. The tests that use them check, in their own
main thread, what a fresh caller gets meanwhile."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field

import requests

# How long a dribbling uploader waits between two small pieces of its body.
DRIBBLE_SECONDS = 0.25
DRIBBLE_BYTES = 1024


@dataclass
class Crowd:
    """Hostile connections to one address, held until close()."""

    host: str
    port: int
    sockets: list[socket.socket] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    # Uploaders the server cut off (a timeout or a refusal): expected of a defended server.
    cut_off: list[str] = field(default_factory=list)

    def connect(self) -> socket.socket:
        connection = socket.create_connection((self.host, self.port), timeout=10)
        self.sockets.append(connection)
        return connection

    def connect_only(self, count: int) -> None:
        """Connections that send nothing at all."""
        for _ in range(count):
            self.connect()

    def stalled_headers(self, count: int) -> None:
        """Connections that send a request line and one header, then nothing."""
        for _ in range(count):
            self.connect().sendall(b"POST /predict HTTP/1.1\r\nHost: hostile\r\n")

    def slow_uploads(self, count: int, size: int, path: str = "/predict") -> None:
        """Clients that announce a body of `size` bytes and send it a kilobyte at a time."""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: hostile\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n["
        ).encode()
        for _ in range(count):
            connection = self.connect()
            connection.sendall(head)
            thread = threading.Thread(target=self.dribble, args=(connection,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def dribble(self, connection: socket.socket) -> None:
        while not self.stop.wait(DRIBBLE_SECONDS):
            try:
                connection.sendall(b" " * DRIBBLE_BYTES)
            except OSError as error:
                self.cut_off.append(type(error).__name__)
                return

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=5)
        for connection in self.sockets:
            connection.close()


def answer_of(connection: socket.socket, seconds: float) -> bytes:
    """What the server sent on the connection until it closed it, or within `seconds`."""
    received = b""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([connection], [], [], left)
        if not readable:
            break
        try:
            chunk = connection.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
        if complete(received):
            break
    return received


def complete(received: bytes) -> bool:
    """Whether the bytes hold a whole response with a Content-Length body."""
    head, separator, body = received.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def status_and_json(received: bytes) -> tuple[int, dict]:
    """The status and JSON body of a raw response."""
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def send_until_answered(
    connection: socket.socket, pieces: list[bytes], pause: float, seconds: float
) -> tuple[bytes, int]:
    """Send the pieces with a pause between them, stopping as soon as the server answers (or
    stops reading); the answer (waited for at most `seconds` after the last piece sent) and how
    many pieces were sent."""
    sent = 0
    for piece in pieces:
        readable, _, _ = select.select([connection], [], [], 0)
        if readable:
            break
        try:
            connection.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += 1
        time.sleep(pause)  # a slow client's pace, not a wait for the server
    return answer_of(connection, seconds), sent


def chunked(pieces: list[bytes]) -> list[bytes]:
    """The pieces as HTTP/1.1 chunks, with the closing chunk."""
    return [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces] + [b"0\r\n\r\n"]


def explanations_while_one_is_held(
    host: str, port: int, listings: list[dict], seconds: float = 20
) -> list[int]:
    """The statuses of explanations asked every half second while another client holds an
    unfinished explain=true body: a large Content-Length, a few bytes, then nothing."""
    body = json.dumps(listings).encode()
    head = (
        f"POST /predict?explain=true HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"
    ).encode()
    statuses = []
    with socket.create_connection((host, port), timeout=30) as holder:
        holder.sendall(head + body[:5])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            url = f"http://{host}:{port}/predict?explain=true"
            statuses.append(requests.post(url, json=listings, timeout=10).status_code)
            time.sleep(0.5)  # a caller's pace while the body is held, not a wait for the server
    return statuses
