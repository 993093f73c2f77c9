"""The service's routes: /predict, /health, /ready, /metrics, /openapi.json and /docs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, send_from_directory
from pydantic import TypeAdapter, ValidationError

from mlops_lab.service.errors import RequestError, validation_details
from mlops_lab.service.loading import ModelSlot
from mlops_lab.service.metrics import EXPOSITION_TYPE, ServiceMetrics
from mlops_lab.service.schema import API_VERSION, Listing
from mlops_lab.service.settings import ServiceSettings
from mlops_lab.service.slots import ExplanationSlots

routes = Blueprint("service", __name__)

SINGLE = TypeAdapter(Listing)
BATCH = TypeAdapter(list[Listing])


@dataclass(frozen=True)
class ServiceState:
    """One app's settings, model, metrics and documents: what its routes read."""

    settings: ServiceSettings
    slot: ModelSlot
    metrics: ServiceMetrics
    spec: dict[str, Any]
    docs_assets: Path
    explanations: ExplanationSlots


def state() -> ServiceState:
    """The state of the app answering this request."""
    return current_app.extensions["mlops_lab"]


def read_listings(max_batch_size: int) -> tuple[list[Listing], bool]:
    """The listings in the body and whether it held one object (not a list). The number of
    listings is checked before any is validated, so a long list costs nothing but its parse."""
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
        body = json.loads(raw)
    except ValueError as error:
        raise RequestError(
            400,
            "the body is not valid JSON",
            [{"field": "body", "problem": f"Invalid JSON: {error}"}],
        ) from error
    if isinstance(body, list):
        if not body:
            raise RequestError(
                422, "no listings", [{"field": "body", "problem": "the list is empty"}]
            )
        if len(body) > max_batch_size:
            raise RequestError(
                413,
                f"at most {max_batch_size} listings per request",
                [{"field": "body", "problem": f"{len(body)} listings sent"}],
            )
    try:
        if isinstance(body, list):
            return BATCH.validate_json(raw), False
        return [SINGLE.validate_json(raw)], True
    except ValidationError as error:
        raise RequestError(422, "invalid listing", validation_details(error)) from error


@routes.post("/predict")
def predict() -> Response:
    service = state()
    slot, settings = service.slot, service.settings
    if not slot.ready.is_set() or slot.model is None:
        raise RequestError(
            503, "model not loaded yet", [{"field": "model", "problem": slot.problem}]
        )
    explain = request.args.get("explain", "false").lower() in ("1", "true", "yes")
    # The slot first: a refused explanation costs no parsing.
    with explanation_allowed(service, explain):
        listings, one = read_listings(settings.max_batch_size)
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
        service.metrics.predictions.labels(prediction["price_category"]).inc()
    versions = {
        "model_name": model.name,
        "model_version": model.version,
        "api_version": API_VERSION,
    }
    return jsonify(
        {**predictions[0], **versions} if one else {"predictions": predictions, **versions}
    )


@contextmanager
def explanation_allowed(service: ServiceState, explain: bool) -> Iterator[None]:
    """A slot among the explanations the service computes at once; 429 when none is free."""
    if not explain:
        yield
        return
    with service.explanations.taken() as free:
        if not free:
            limit = service.settings.max_concurrent_explanations
            raise RequestError(
                429,
                "too many explanations at once: retry shortly, or ask without explain=true",
                [{"field": "explain", "problem": f"at most {limit} at once"}],
                {"Retry-After": "1"},
            )
        yield


@routes.get("/health")
def health() -> Response:
    return jsonify({"status": "ok"})


@routes.get("/ready")
def ready() -> Response | tuple[Response, int]:
    slot = state().slot
    model = slot.model
    if slot.ready.is_set() and model is not None:
        # Stale: it serves the copy last loaded because the registry cannot be reached.
        state_of_model = {"status": "stale", "reason": model.stale} if model.stale else {}
        return jsonify(
            {
                "status": "ready",
                "model_name": model.name,
                "model_version": model.version,
                "model_uri": model.uri,
                **state_of_model,
            }
        )
    return jsonify({"status": "not ready", "reason": slot.problem}), 503


@routes.get("/metrics")
def prometheus_metrics() -> Response:
    return Response(state().metrics.exposition(), mimetype=EXPOSITION_TYPE)


@routes.get("/openapi.json")
def openapi() -> Response:
    return jsonify(state().spec)


@routes.get("/docs")
def docs() -> Response:
    return Response(DOCS_PAGE, mimetype="text/html")


@routes.get("/docs/assets/<path:name>")
def docs_asset(name: str) -> Response:
    return send_from_directory(state().docs_assets, name)


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
