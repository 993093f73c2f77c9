"""The prediction service's app factory, served by granian (see server.py)."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from pathlib import Path

from flask import Flask, Response, g, request

from mlops_lab.service.errors import register_error_handlers
from mlops_lab.service.following import ModelSlot, load_into
from mlops_lab.service.json_provider import OrjsonProvider
from mlops_lab.service.metrics import ServiceMetrics
from mlops_lab.service.openapi import openapi_document
from mlops_lab.service.prediction_log import PredictionLog
from mlops_lab.service.routes import ServiceState, routes
from mlops_lab.service.settings import ServiceSettings, settings_now
from mlops_lab.service.slots import ExplanationSlots
from mlops_lab.service.threads import (
    leave_signals_to_the_main_thread,
    repeat_stop_signals_to_the_main_thread,
)
from mlops_lab.serving.compiled import RowThreads
from mlops_lab.serving.prediction_store import store_engine

log = logging.getLogger("mlops_lab.service")

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def create_app(settings: ServiceSettings | None = None) -> Flask:
    """The service: /health answers at once, /ready and /predict once the model is loaded."""
    settings = settings or settings_now()
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    metrics = ServiceMetrics()
    token = settings.prediction_log and settings.prediction_log.feedback_token
    if token:
        log.info("/feedback takes the bearer token from %s", token.source)
    service = ServiceState(
        settings=settings,
        slot=ModelSlot(),
        metrics=metrics,
        spec=openapi_document(settings),
        docs_assets=Path(str(files("flask_swagger_ui") / "dist")),
        explanations=ExplanationSlots(
            settings.explanation_slots_dir, settings.max_concurrent_explanations
        ),
        prediction_log=(
            PredictionLog(
                store_engine(settings.prediction_log.store_uri),
                settings.prediction_log,
                metrics.prediction_log,
            )
            if settings.prediction_log
            else None
        ),
        feedback_store=(
            store_engine(
                settings.prediction_log.store_uri, settings.prediction_log.feedback_wait_seconds
            )
            if settings.prediction_log
            else None
        ),
        feedback_threads=threading.BoundedSemaphore(FEEDBACK_THREADS),
    )
    app.extensions["mlops_lab"] = service
    register_request_log(app, service.metrics)
    register_error_handlers(app)
    app.register_blueprint(routes)
    load_into(settings, service.slot, service.metrics, row_threads())
    # Counted once its first load is done, loaded or not: a replica is ready only when every
    # worker that takes requests has a model (/ready).
    service.metrics.workers.set(1)
    return app


# A worker's threads that /feedback may hold at once, waiting on the store: the others stay
# free for predictions whatever the store does.
FEEDBACK_THREADS = 2
# The request ids a caller may give, as the front door takes them too
# (nginx_docker/templates/default.conf.template); any other gets one of ours.
CALLER_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}")


def served_app() -> Flask:
    """The app as each of the server's workers makes it (service/server.py)."""
    repeat_stop_signals_to_the_main_thread()
    return create_app()


def row_threads() -> RowThreads | None:
    """A thread per further core, for a large batch's trees: one worker's 1,000-listing
    request then takes every core that the other workers leave idle."""
    cores = os.cpu_count() or 1
    if cores == 1:
        return None
    pool = ThreadPoolExecutor(
        cores - 1, thread_name_prefix="model-rows", initializer=leave_signals_to_the_main_thread
    )
    return RowThreads(pool, cores)


def register_request_log(app: Flask, metrics: ServiceMetrics) -> None:
    """Every request gets an id, a JSON log line and its count and latency in the metrics."""

    @app.before_request
    def start_request() -> None:
        g.started = time.perf_counter()
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if CALLER_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        g.listings = 0

    @app.after_request
    def finish_request(response: Response) -> Response:
        elapsed = time.perf_counter() - g.started
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        status = str(response.status_code)
        # A made-up method is not a new series: the labels stay bounded whatever is sent.
        method = request.method if request.method in KNOWN_METHODS else "other"
        metrics.requests.labels(endpoint, method, status).inc()
        metrics.latency.labels(endpoint, status).observe(elapsed)
        response.headers["X-Request-ID"] = g.request_id
        log.info(
            "request",
            extra={
                "request_id": g.request_id,
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 3),
                "listings": g.listings,
            },
        )
        return response
