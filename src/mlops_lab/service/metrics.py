"""The service's Prometheus metrics, merged across the server's worker processes."""

from __future__ import annotations

import os
import re
from contextlib import suppress
from pathlib import Path

import psutil
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

from mlops_lab.service.prediction_log import LogMetrics

# The exposition's content type, for the /metrics route.
EXPOSITION_TYPE = CONTENT_TYPE_LATEST


class ServiceMetrics:
    """Prometheus metrics of one app, merged across worker processes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "Requests by endpoint and status.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Request latency by endpoint and status.",
            ["endpoint", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.predictions = Counter(
            "predictions_total",
            "Listings priced, by predicted category.",
            ["price_category"],
            registry=self.registry,
        )
        self.prediction_log = LogMetrics(
            answers=Counter(
                "prediction_log_answers",
                "Answers handed to the prediction log: each is then written, rejected, dropped "
                "or lost (prediction_log_records_total).",
                registry=self.registry,
            ),
            records=Counter(
                "prediction_log_records",
                "Answers the prediction log wrote to its store (written), set aside because the "
                "store refused them (rejected), dropped (buffer full, or the store unreachable "
                "at shutdown), or lost (held by a worker that died, counted after its death).",
                ["outcome"],
                registry=self.registry,
            ),
            writers=Gauge(
                "prediction_log_writers",
                "Live workers whose prediction log writer is running (one per worker; fewer: "
                "see /ready).",
                registry=self.registry,
                multiprocess_mode="livesum",
            ),
            count_dead_workers_losses=self.count_losses_of_dead_workers,
        )
        self.add_model_metrics()

    def add_model_metrics(self) -> None:
        """The models the workers serve or refuse, and how many workers there are."""
        self.model_info = Gauge(
            "model_info",
            "Live workers serving each loaded model (0: none any more).",
            ["model_name", "model_version", "model_uri"],
            registry=self.registry,
            # Summed: with the most recent value, a worker leaving v1 hid a sibling still on it.
            multiprocess_mode="livesum",
        )
        self.workers = Gauge(
            "service_workers",
            "Live workers that have tried their first model load (with or without a model).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.model_refusals = Counter(
            "model_refusals",
            "New models that MODEL_URI named but a worker would not serve (they failed to load "
            "or to answer the check payloads): once per worker and model; see /ready.",
            ["model_name", "model_version"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The text format, merged across workers when PROMETHEUS_MULTIPROC_DIR is set."""
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            return generate_latest(live_workers_registry())
        return generate_latest(self.registry)

    def workers_without_model(self) -> int:
        """How many live workers of the service have no model (0 outside the server): one of
        them answers 503 to the predictions it takes, so the service is not ready."""
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            return 0
        totals = {"service_workers": 0.0, "model_info": 0.0}
        for family in live_workers_registry().collect():
            for sample in family.samples:
                if sample.name in totals:
                    totals[sample.name] += sample.value
        return max(round(totals["service_workers"] - totals["model_info"]), 0)

    def count_losses_of_dead_workers(self) -> float:
        """Count as lost what each worker that died (SIGKILL, a crash) still held: the answers
        handed to its log less those it settled. Once per dead worker, by the first live
        worker's prediction log to look (every flush); returns how many it counted now."""
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            return 0.0
        folder, counted = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]), 0.0
        for path in folder.glob("counter_*.db"):
            match = COUNTER_FILE.fullmatch(path.name)
            if not match or psutil.pid_exists(int(match.group(1))):
                continue
            try:  # the mark that this worker's losses are counted
                (folder / f"losses_counted_{match.group(1)}").touch(exist_ok=False)
            except FileExistsError:
                continue
            lost = unsettled_answers(path)
            if lost > 0:
                self.prediction_log.records.labels("lost").inc(lost)
                counted += lost
        return counted


def live_workers_registry() -> CollectorRegistry:
    """The metrics of every worker merged, the live gauges of those that have exited dropped."""
    drop_dead_workers(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    merged = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(merged)
    return merged


def unsettled_answers(counters: Path) -> float:
    """Answers one worker's counters file says were handed to its log and never settled."""
    handed = settled = 0.0
    for metric in prometheus_multiprocess.MultiProcessCollector.merge([str(counters)]):
        for sample in metric.samples:
            if sample.name == "prediction_log_answers_total":
                handed += sample.value
            elif sample.name == "prediction_log_records_total":
                settled += sample.value
    return handed - settled


# A worker's counters file names the process that wrote it.
COUNTER_FILE = re.compile(r"counter_(\d+)\.db")
# A live gauge's file names the process that wrote it.
LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+_(\d+)\.db")


def drop_dead_workers(folder: Path) -> None:
    """Drop the live gauges (model_info) of workers that have exited, however they exited: a
    replaced or killed worker's model is no longer served. Their counters stay."""
    for path in folder.glob("gauge_live*.db"):
        match = LIVE_GAUGE_FILE.fullmatch(path.name)
        if match and not psutil.pid_exists(int(match.group(1))):
            # Another worker's /metrics may drop it first.
            with suppress(FileNotFoundError):
                prometheus_multiprocess.mark_process_dead(int(match.group(1)), str(folder))
