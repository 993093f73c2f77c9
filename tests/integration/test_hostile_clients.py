"""The service as `make serve` runs it, against hostile clients over real sockets: bodies over
the cap however they are sent, a held explanation, made-up methods, deep nesting."""

import json
import socket
import time

import pytest
import requests
from calls import metric_families
from hostile import (
    answer_of,
    chunked,
    explanations_while_one_is_held,
    send_until_answered,
    status_and_json,
)
from projects import challenge_payload

pytestmark = pytest.mark.integration

CHALLENGE = challenge_payload()
CAP = 2 * 1024 * 1024
OVER_CAP = 3 * 1024 * 1024


def head(path: str, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: hostile", "Content-Type: application/json"]
    return ("\r\n".join([*lines, *headers]) + "\r\n\r\n").encode()


# How long a client waits for the 413 after its last byte (the front door's promise).
REFUSED_WITHIN_SECONDS = 2


def assert_refused_as_too_large(answer: bytes) -> None:
    assert answer, "no answer in time: the connection was closed, reset or left waiting"
    status, body = status_and_json(answer)
    assert status == 413, answer[:300]
    assert body["details"][0]["field"] == "body" and body["request_id"]


def test_a_body_over_the_cap_in_one_go_gets_a_json_413(local_service):
    response = requests.post(
        f"{local_service.url}/predict",
        data=b"[" + b" " * OVER_CAP + b"]",
        headers={"Content-Type": "application/json"},
        timeout=REFUSED_WITHIN_SECONDS,
    )
    assert response.status_code == 413
    assert response.json()["details"][0]["field"] == "body"


def test_a_body_over_the_cap_sent_slowly_gets_its_413_before_it_ends(local_service):
    with socket.create_connection(("127.0.0.1", local_service.port), timeout=10) as connection:
        connection.sendall(head("/predict", f"Content-Length: {OVER_CAP}"))
        # 3 MiB at 64 KiB every 50 ms would take 2.4 s to send.
        pieces = [b" " * 65536] * (OVER_CAP // 65536)
        answer, sent = send_until_answered(connection, pieces, 0.05, REFUSED_WITHIN_SECONDS)
    assert_refused_as_too_large(answer)
    assert sent < len(pieces), "answered only once the whole body was sent"


@pytest.mark.parametrize("pause", [0.0, 0.02], ids=["in-one-go", "slowly"])
def test_a_chunked_body_over_the_cap_gets_a_413_not_a_truncated_200(local_service, pause):
    # Valid JSON first, then spaces past the cap: a server that stops reading at the cap
    # would see a valid listing.
    pieces = [json.dumps(CHALLENGE).encode()] + [b" " * 65536] * (OVER_CAP // 65536)
    with socket.create_connection(("127.0.0.1", local_service.port), timeout=10) as connection:
        connection.sendall(head("/predict", "Transfer-Encoding: chunked"))
        pieces = chunked(pieces)
        answer, sent = send_until_answered(connection, pieces, pause, REFUSED_WITHIN_SECONDS)
    assert_refused_as_too_large(answer)
    if pause:
        assert sent < len(pieces), "answered only once the whole body was sent"


def test_a_chunked_body_under_the_cap_is_answered(local_service):
    body = json.dumps(CHALLENGE).encode()
    with socket.create_connection(("127.0.0.1", local_service.port), timeout=10) as connection:
        connection.sendall(head("/predict", "Transfer-Encoding: chunked"))
        for piece in chunked([body[:10], body[10:]]):
            connection.sendall(piece)
        status, answer = status_and_json(answer_of(connection, 10))
    assert status == 200 and answer["id"] == CHALLENGE["id"]


def test_an_unfinished_explanation_holds_no_slot(local_service):
    answered = explanations_while_one_is_held("127.0.0.1", local_service.port, [CHALLENGE])
    assert answered and set(answered) == {200}, answered


def series(url: str) -> set[tuple]:
    """Every series /metrics shows: a metric family and its labels (a histogram's buckets, sum
    and count are one)."""
    return {
        (family.name, tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le")))
        for family in metric_families(url)
        for sample in family.samples
    }


def test_made_up_methods_add_at_most_one_series(local_service):
    # A known method refused on /predict, and /metrics itself, have their series already.
    assert requests.get(f"{local_service.url}/predict", timeout=10).status_code == 405
    series(local_service.url)
    before = series(local_service.url)
    for number in range(300):
        response = requests.request(f"M{number:03d}X", f"{local_service.url}/predict", timeout=10)
        assert response.status_code == 405
    grown = series(local_service.url) - before
    assert len(grown) <= 1, sorted(grown)[:10]


@pytest.mark.parametrize("path", ["/predict", "/feedback"])
@pytest.mark.parametrize("opening", [b"[", b'{"a":'])
def test_a_body_nested_100000_deep_is_a_4xx(local_service, path, opening):
    closing = b"]" if opening == b"[" else b"}"
    body = opening * 100_000 + b"1" + closing * 100_000
    response = requests.post(
        f"{local_service.url}{path}",
        data=body,
        headers={"Content-Type": "application/json", **local_service.feedback_headers},
        timeout=30,
    )
    assert 400 <= response.status_code < 500, response.text[:300]
    assert response.json()["details"][0]["field"] == "body"


def test_the_service_stays_available_while_clients_hold_connections_mid_headers(local_service):
    stalled = []
    try:
        for _ in range(32):
            connection = socket.create_connection(("127.0.0.1", local_service.port), timeout=10)
            connection.sendall(b"POST /predict HTTP/1.1\r\nHost: hostile\r\n")
            stalled.append(connection)
        # Fresh callers over two seconds of the stall, each answered within the front door's
        # promise (1 s) or the test fails.
        for _ in range(10):
            assert requests.get(f"{local_service.url}/health", timeout=1).status_code == 200
            time.sleep(0.2)  # probes spread over the stall, not a wait for the server
    finally:
        for connection in stalled:
            connection.close()


def test_the_server_binds_loopback_unless_told_otherwise(local_service):
    addresses = {
        info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    } - {"127.0.0.1"}
    for address in addresses:
        with pytest.raises(OSError):
            socket.create_connection((address, local_service.port), timeout=2).close()
