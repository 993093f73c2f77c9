import socket

import pytest

from mlops_lab.service.worker import HeadersWithBody, whole_quick_request

BODY = b'{"accommodates": 4}'
HEAD = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def request(head: bytes = HEAD, length: int = len(BODY), body: bytes = BODY) -> bytes:
    return head + f"Content-Length: {length}\r\n\r\n".encode() + body


@pytest.mark.parametrize(
    ("waiting", "answered_by_the_main_thread"),
    [
        (request(), True),
        (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", True),
        # Two requests in a row: the first is whole.
        (request() + request(), True),
        # The body is still arriving: reading it could wait on the client.
        (request(length=len(BODY) + 10), False),
        # The headers are still arriving.
        (HEAD, False),
        # Explanations take tens to hundreds of milliseconds: the pool answers them.
        (request(head=HEAD.replace(b"/predict", b"/predict?explain=true")), False),
        # A chunked body has no length to check.
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", False),
        # Header names are case-insensitive.
        (HEAD + b"content-LENGTH: 19\r\n\r\n" + BODY, True),
    ],
)
def test_only_whole_requests_without_explanations_are_answered_in_the_main_thread(
    waiting, answered_by_the_main_thread
):
    assert whole_quick_request(waiting) is answered_by_the_main_thread


@pytest.fixture()
def connection():
    """A socket wrapped as the worker wraps a connection's, and the client's end."""
    sending, receiving = socket.socketpair()
    with sending, receiving:
        yield HeadersWithBody(sending), receiving


def test_the_headers_wait_for_the_body_and_go_out_with_it(connection):
    held, receiving = connection
    held.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
    receiving.setblocking(False)
    with pytest.raises(BlockingIOError):
        receiving.recv(100)  # nothing sent yet
    held.sendall(b"body")
    assert receiving.recv(100) == b"HTTP/1.1 200 OK\r\n\r\nbody"


def test_anything_else_done_with_the_socket_sends_the_held_headers_first(connection):
    held, receiving = connection
    held.sendall(b"headers;")
    held.send(b"file;")  # as sendfile would, through the socket itself
    held.sendall(b"more")
    assert receiving.recv(100) == b"headers;file;more"


def test_headers_with_no_body_are_sent_when_the_request_ends(connection):
    held, receiving = connection
    held.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
    held.flush()
    assert receiving.recv(100) == b"HTTP/1.1 204 No Content\r\n\r\n"
