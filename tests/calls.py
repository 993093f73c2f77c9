"""Calling the service as its clients do: one request, callers that keep calling, /metrics."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import requests
from prometheus_client.parser import text_string_to_metric_families
from waiting import poll_until

MetricSamples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def post(service, body, path: str = "/predict", timeout: float = 30, **headers):
    """POST a JSON body (or raw text or bytes, sent as they are) to the service, with the
    token /feedback takes."""
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    headers = {"Content-Type": "application/json", **service.feedback_headers, **headers}
    return requests.post(f"{service.url}{path}", data=data, headers=headers, timeout=timeout)


def metric_samples(url: str) -> MetricSamples:
    """Every sample of a /metrics page, by name and labels."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric_sum(samples: MetricSamples, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include those given."""
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and labels.items() <= dict(sample_labels).items()
    )


class Callers:
    """Threads that each call `call(client, number)` without pause until the block ends. Every
    answer and every error is kept for the test's own thread to check: a caller never asserts."""

    def __init__(self, call: Callable[[int, int], requests.Response], clients: int = 4):
        self.call = call
        self.answers: list[requests.Response] = []
        self.errors: list[requests.RequestException] = []
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
            number += 1

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
