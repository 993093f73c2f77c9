"""Calling the service as its clients do: one request, callers that keep calling, /metrics."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping

import pytest
import requests
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from waiting import poll_until, read_until

# Generous for these machines: a call that waits longer finds the service unavailable.
AVAILABLE_WITHIN_SECONDS = 5
LOG_OUTCOMES = ("written", "rejected", "dropped", "lost")
LOG_RECORDS = "prediction_log_records_total"
MetricSamples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def post(service, body, path: str = "/predict", timeout: float = 30, **headers):
    """POST a JSON body (or raw text or bytes, sent as they are) to the service, with the
    token /feedback takes."""
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    headers = {"Content-Type": "application/json", **service.feedback_headers, **headers}
    return requests.post(f"{service.url}{path}", data=data, headers=headers, timeout=timeout)


def metric_families(url: str) -> list[Metric]:
    """The metric families of a /metrics page, parsed."""
    return list(text_string_to_metric_families(requests.get(f"{url}/metrics", timeout=10).text))


def metric_samples(url: str) -> MetricSamples:
    """Every sample of a /metrics page, by name and labels."""
    return samples_of(metric_families(url))


def metric_text_samples(exposition: str) -> MetricSamples:
    """Every sample of a /metrics page's text, by name and labels."""
    return samples_of(text_string_to_metric_families(exposition))


def samples_of(families: Iterable[Metric]) -> MetricSamples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }


def metric_sum(samples: MetricSamples, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include those given."""
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and labels.items() <= dict(sample_labels).items()
    )


def log_outcomes(url: str) -> dict[str, float]:
    """prediction_log_records_total by outcome, from /metrics."""
    samples = metric_samples(url)
    return {name: metric_sum(samples, LOG_RECORDS, outcome=name) for name in LOG_OUTCOMES}


def settled_outcomes(url: str, answered: int, seconds: float = 60) -> dict[str, float]:
    """The log's outcomes once each of `answered` answers, and each answer the service handed
    to its log, has one."""

    def settled(samples: MetricSamples) -> bool:
        outcomes = sum(metric_sum(samples, LOG_RECORDS, outcome=name) for name in LOG_OUTCOMES)
        handed = metric_sum(samples, "prediction_log_answers_total")
        return outcomes >= answered and outcomes == handed

    what = f"an outcome for each of {answered} answers"
    samples = read_until(lambda: metric_samples(url), settled, seconds, what)
    return {name: metric_sum(samples, LOG_RECORDS, outcome=name) for name in LOG_OUTCOMES}


class Callers:
    """Threads that each call `call(client, number)` without pause until the block ends. Every
    answer and every error is kept for the test's own thread to check: a caller never asserts."""

    def __init__(
        self,
        call: Callable[[int, int], requests.Response],
        clients: int = 4,
        pause_seconds: float = 0,
    ):
        self.call = call
        # Between one answer and a client's next call: steady traffic rather than a load.
        self.pause_seconds = pause_seconds
        self.answers: list[requests.Response] = []
        self.errors: list[requests.RequestException] = []
        # (client, number) of each call that ended in an error, in the order they came.
        self.unanswered: list[tuple[int, int]] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self.keep_calling, args=(client,), name=f"caller-{client}")
            for client in range(clients)
        ]

    def keep_calling(self, client: int) -> None:
        number = 0
        while not self.stop.is_set():
            try:
                self.answers.append(self.call(client, number))
            except requests.RequestException as error:
                self.errors.append(error)
                self.unanswered.append((client, number))
            number += 1
            if self.pause_seconds:
                self.stop.wait(self.pause_seconds)

    @property
    def calls(self) -> int:
        return len(self.answers) + len(self.errors)

    def failures(self) -> list[object]:
        """The errors, and the status and start of every answer that is not a 200."""
        refused = [(a.status_code, a.text[:200]) for a in self.answers if a.status_code != 200]
        return [*self.errors, *refused]

    def answered(self) -> list[dict]:
        """The bodies of the 200 answers, in the order they came."""
        return [answer.json() for answer in list(self.answers) if answer.status_code == 200]

    def wait_for_calls(self, more: int, seconds: float = 120) -> None:
        """Wait until `more` calls beyond those made so far have ended, answered or not."""
        target = self.calls + more
        poll_until(lambda: self.calls >= target, seconds, f"{more} more calls")

    def __enter__(self) -> Callers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=240)
        stuck = [thread.name for thread in self.threads if thread.is_alive()]
        assert not stuck, f"callers still waiting for an answer: {stuck}"


def prediction_callers(
    url: str,
    listing: Mapping[str, object],
    clients: int = 4,
    pause_seconds: float = 0,
    sent: dict[str, float] | None = None,
) -> Callers:
    """Clients each on its own keep-alive connection (so on one worker throughout), sending
    single predictions of `listing` to `url`; each call's id, and its X-Request-ID, is
    "client-number". When each was sent (time.monotonic) goes into `sent`, if given."""
    sessions = [requests.Session() for _ in range(clients)]

    def call(client: int, number: int) -> requests.Response:
        request_id = f"{client}-{number}"
        if sent is not None:
            sent[request_id] = time.monotonic()
        return sessions[client].post(
            f"{url}/predict",
            json={**listing, "id": request_id},
            headers={"X-Request-ID": request_id},
            timeout=30,
        )

    return Callers(call, clients=clients, pause_seconds=pause_seconds)


def allow_only_closures_by_a_reload(callers: Callers) -> None:
    """Fail on any failure but the one granian 2.8 is known for (docs/serving.md): a worker
    that a reload stops may close a connection it has just accepted, unanswered (the client
    sees it closed, or reset if its request was still unread). That one is let through
    visibly, as an expected failure."""
    failures = callers.failures()
    closed = [
        failure
        for failure in failures
        if isinstance(failure, requests.ConnectionError)
        and any(sign in str(failure) for sign in ("without response", "Connection reset"))
    ]
    assert failures == closed, failures[:5]
    if closed:
        pytest.xfail(
            f"granian closed {len(closed)} of {callers.calls} connections unanswered as the "
            "reload stopped the old workers"
        )
