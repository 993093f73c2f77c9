"""The prediction service: a Flask app factory, served by gunicorn (see gunicorn_config.py)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from flask import Flask, Response, g, jsonify, request, send_from_directory
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from pydantic import TypeAdapter, ValidationError
from werkzeug.exceptions import HTTPException

from mlops_lab.prediction_app.openapi import openapi_document
from mlops_lab.prediction_app.schema import API_VERSION, Listing
from mlops_lab.prediction_app.serving import ServedModel, load_served_model

log = logging.getLogger("mlops_lab.prediction_app")

PRICE_CATEGORIES = ["low", "mid", "high", "lux"]
LOCAL_MODEL_DIR = "models/price_category"
REGISTRY_MODEL_URI = "models:/airbnb-price-category@champion"


@dataclass(frozen=True)
class ServiceSettings:
    """What the service is told by its environment, read once at start."""

    model_uri: str
    max_batch_size: int = 1000
    max_body_bytes: int = 2 * 1024 * 1024
    max_explain_listings: int = 100
    load_retry_seconds: float = 10.0

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> ServiceSettings:
        """MODEL_URI, else the registry's champion with a tracking server, else the local copy."""
        default = REGISTRY_MODEL_URI if environment.get("MLFLOW_TRACKING_URI") else LOCAL_MODEL_DIR
        return cls(
            model_uri=environment.get("MODEL_URI", default),
            max_batch_size=int(environment.get("MAX_BATCH_SIZE", 1000)),
            max_body_bytes=int(environment.get("MAX_BODY_BYTES", 2 * 1024 * 1024)),
            max_explain_listings=int(environment.get("MAX_EXPLAIN_LISTINGS", 100)),
            load_retry_seconds=float(environment.get("MODEL_LOAD_RETRY_SECONDS", 10)),
        )


@dataclass
class ModelSlot:
    """The loaded model, or why there is none yet; filled by a background loader."""

    model: ServedModel | None = None
    problem: str = "loading"
    ready: threading.Event = field(default_factory=threading.Event)


class ServiceMetrics:
    """Prometheus metrics of one app, multiprocess-aware under gunicorn."""

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
        self.model_info = Gauge(
            "model_info",
            "The loaded model (value 1).",
            ["model_name", "model_version", "model_uri"],
            registry=self.registry,
            multiprocess_mode="livemostrecent",
        )

    def exposition(self) -> bytes:
        """The text format, merged across gunicorn workers when PROMETHEUS_MULTIPROC_DIR is set."""
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            merged = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)


class RequestError(Exception):
    """A request the service refuses, with the HTTP status and the fields at fault."""

    def __init__(self, status: int, message: str, details: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or []


def field_path(location: tuple[Any, ...]) -> str:
    """A pydantic error location as `[3].bedrooms` or `bedrooms`."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def validation_details(error: ValidationError) -> list[dict[str, str]]:
    """Each validation problem as the field and what is wrong with it."""
    details = []
    for problem in error.errors(include_url=False):
        location = tuple(part for part in problem["loc"] if part not in ("list[Listing]",))
        details.append({"field": field_path(location), "problem": problem["msg"]})
    return details


def try_loading(settings: ServiceSettings, slot: ModelSlot, metrics: ServiceMetrics) -> bool:
    """Load the model into the slot; on failure log why (with the traceback) and keep going."""
    try:
        model = load_served_model(settings.model_uri, PRICE_CATEGORIES)
    except Exception as error:  # any failure leaves the service up and not ready
        slot.problem = f"cannot load model {settings.model_uri}: {error}"
        log.error(json.dumps({"event": "model_load_failed", "error": slot.problem}), exc_info=True)
        return False
    slot.model = model
    slot.problem = ""
    metrics.model_info.labels(model.name, model.version, model.uri).set(1)
    slot.ready.set()
    log.info(
        json.dumps(
            {"event": "model_loaded", "model_uri": model.uri, "model_version": model.version}
        )
    )
    return True


def load_model(settings: ServiceSettings, slot: ModelSlot, metrics: ServiceMetrics) -> None:
    """Load before serving; if that fails, serve not-ready and retry in the background.

    A worker that loaded its model before accepting requests never answers 503 next to a
    ready sibling; a model that cannot load is a log line and a not-ready service, not a
    crash loop."""
    if try_loading(settings, slot, metrics):
        return

    def retry() -> None:
        while True:
            time.sleep(settings.load_retry_seconds)
            if try_loading(settings, slot, metrics):
                return

    threading.Thread(target=retry, name="model-loader", daemon=True).start()


def create_app(settings: ServiceSettings | None = None) -> Flask:
    """The service: /health answers at once, /ready and /predict once the model is loaded."""
    settings = settings or ServiceSettings.from_environment(os.environ)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    slot = ModelSlot()
    metrics = ServiceMetrics()
    single = TypeAdapter(Listing)
    batch = TypeAdapter(list[Listing])
    docs_assets = Path(swagger_ui_bundle.swagger_ui_path)
    spec = openapi_document(settings.max_batch_size, settings.max_body_bytes)
    load_model(settings, slot, metrics)

    @app.before_request
    def start_request() -> None:
        g.started = time.perf_counter()
        g.request_id = request.headers.get("X-Request-ID", "")[:200] or uuid.uuid4().hex
        g.listings = 0

    @app.after_request
    def finish_request(response: Response) -> Response:
        elapsed = time.perf_counter() - g.started
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        status = str(response.status_code)
        metrics.requests.labels(endpoint, request.method, status).inc()
        metrics.latency.labels(endpoint, status).observe(elapsed)
        response.headers["X-Request-ID"] = g.request_id
        log.info(
            json.dumps(
                {
                    "event": "request",
                    "request_id": g.request_id,
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 3),
                    "listings": g.listings,
                }
            )
        )
        return response

    def error_response(status: int, message: str, details: list[dict[str, str]]) -> Response:
        response = jsonify(
            {"error": message, "details": details, "request_id": g.get("request_id")}
        )
        response.status_code = status
        return response

    @app.errorhandler(RequestError)
    def refused(error: RequestError) -> Response:
        return error_response(error.status, error.message, error.details)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return error_response(error.code or 500, error.description or error.name, [])

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception(json.dumps({"event": "unhandled", "request_id": g.get("request_id")}))
        return error_response(500, f"internal error ({type(error).__name__})", [])

    def read_listings() -> tuple[list[Listing], bool]:
        """The listings in the body and whether it held one object (not a list)."""
        if not request.is_json:
            raise RequestError(
                415,
                "send JSON with Content-Type: application/json",
                [{"field": "body", "problem": f"content type is {request.content_type!r}"}],
            )
        raw = request.get_data(cache=False)
        if not raw:
            raise RequestError(400, "empty body", [{"field": "body", "problem": "no JSON"}])
        try:
            if raw.lstrip()[:1] == b"[":
                listings = batch.validate_json(raw)
                if not listings:
                    raise RequestError(
                        422, "no listings", [{"field": "body", "problem": "the list is empty"}]
                    )
                if len(listings) > settings.max_batch_size:
                    raise RequestError(
                        413,
                        f"at most {settings.max_batch_size} listings per request",
                        [{"field": "body", "problem": f"{len(listings)} listings sent"}],
                    )
                return listings, False
            return [single.validate_json(raw)], True
        except ValidationError as error:
            details = validation_details(error)
            if any(problem["type"] == "json_invalid" for problem in error.errors()):
                raise RequestError(400, "the body is not valid JSON", details) from error
            raise RequestError(422, "invalid listing", details) from error

    @app.post("/predict")
    def predict() -> Response:
        if not slot.ready.is_set() or slot.model is None:
            raise RequestError(
                503, "model not loaded yet", [{"field": "model", "problem": slot.problem}]
            )
        explain = request.args.get("explain", "false").lower() in ("1", "true", "yes")
        listings, one = read_listings()
        if explain and len(listings) > settings.max_explain_listings:
            raise RequestError(
                413,
                f"explain=true takes at most {settings.max_explain_listings} listings",
                [{"field": "explain", "problem": f"{len(listings)} listings sent"}],
            )
        g.listings = len(listings)
        model = slot.model
        predictions = model.predict_listings(
            [listing.model_input() for listing in listings],
            [listing.id for listing in listings],
            explain=explain,
        )
        for prediction in predictions:
            metrics.predictions.labels(prediction["price_category"]).inc()
        versions = {
            "model_name": model.name,
            "model_version": model.version,
            "api_version": API_VERSION,
        }
        return jsonify(
            {**predictions[0], **versions} if one else {"predictions": predictions, **versions}
        )

    @app.get("/health")
    def health() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/ready")
    def ready() -> Response | tuple[Response, int]:
        model = slot.model
        if slot.ready.is_set() and model is not None:
            return jsonify(
                {
                    "status": "ready",
                    "model_name": model.name,
                    "model_version": model.version,
                    "model_uri": model.uri,
                }
            )
        return jsonify({"status": "not ready", "reason": slot.problem}), 503

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), mimetype=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json")
    def openapi() -> Response:
        return jsonify(spec)

    @app.get("/docs")
    def docs() -> Response:
        return Response(DOCS_PAGE, mimetype="text/html")

    @app.get("/docs/assets/<path:name>")
    def docs_asset(name: str) -> Response:
        return send_from_directory(docs_assets, name)

    return app


# Swagger UI from the swagger-ui-bundle package, served by the app itself: no CDN, works offline.
DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>MLOps Lab: price-category API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="icon" href="/docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
  </script>
</body>
</html>
"""
