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
        self.prediction_log_records = Counter(
            "prediction_log_records",
            "Answers the prediction log wrote to its store (written), set aside because the "
            "store refused them (rejected), or dropped (buffer full, or the store unreachable "
            "at shutdown).",
            ["outcome"],
            registry=self.registry,
        )
        self.prediction_log_writers = Gauge(
            "prediction_log_writers",
            "Live workers whose prediction log writer is running (one per worker; fewer: see "
            "/ready).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.model_info = Gauge(
            "model_info",
            "The loaded model (value 1).",
            ["model_name", "model_version", "model_uri"],
            registry=self.registry,
            multiprocess_mode="livemostrecent",
        )

    def exposition(self) -> bytes:
        """The text format, merged across workers when PROMETHEUS_MULTIPROC_DIR is set."""
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            drop_dead_workers(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
            merged = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)


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
