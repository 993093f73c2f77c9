"""Where a /predict request's time goes, for one listing, 100 and 1,000: each part of the app's
work timed alone in this process on the app's own objects, and the rest (granian, Flask's
dispatch, HTTP on loopback) as the p50 of real requests at concurrency 1 (wrk, one worker)
with the prediction log off, minus those parts. The log's background writing is the p50's
difference with the log on. Results go to bench/results/request_profile.json.

    python bench/request_profile.py [--model models/price_category]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

# As `mlops-lab serve` runs it: metrics in multiprocess files, set before prometheus_client is
# imported.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="mlops-lab-profile-"))

import orjson

from mlops_lab.common.files import write_json_atomically
from mlops_lab.service.app import create_app
from mlops_lab.service.logs import JsonFormatter
from mlops_lab.service.prediction_log import AnsweredRequest
from mlops_lab.service.routes import BATCH, SINGLE
from mlops_lab.service.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from serving import LISTING, Server, free_port, load, wait_until  # noqa: E402

ROUNDS = 5


def per_call_ms(work: Callable[[], object], calls: int) -> float:
    """The best of ROUNDS rounds' mean time of one call, in ms."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(calls):
            work()
        best = min(best, (time.perf_counter() - started) / calls)
    return best * 1000


def app_parts(app, size: int) -> dict[str, float]:
    """Each part of the app's work on a request of `size` listings, in ms."""
    service = app.extensions["mlops_lab"]
    model = service.slot.model
    rows = [{**LISTING, "id": n} for n in range(size)]
    raw = orjson.dumps(rows[0] if size == 1 else rows)
    calls = 2000 if size == 1 else 100

    def validate() -> list:
        if size == 1:
            return [SINGLE.validate_json(raw)]
        orjson.loads(raw)  # the list's length is checked before validation
        return BATCH.validate_json(raw)

    listings = validate()
    inputs = [listing.model_input() for listing in listings]
    ids = [listing.id for listing in listings]
    predictions = model.predict_listings(inputs, ids, explain=False)
    versions = {"model_name": model.name, "model_version": model.version, "api_version": "1"}
    body = {**predictions[0], **versions} if size == 1 else {"predictions": predictions, **versions}

    def serialize() -> object:
        with app.app_context():
            return app.json.response(body)

    metrics = service.metrics

    def count() -> None:
        metrics.requests.labels("/predict", "POST", "200").inc()
        metrics.latency.labels("/predict", "200").observe(0.001)
        for category, number in Counter(p["price_category"] for p in predictions).items():
            metrics.predictions.labels(category).inc(number)

    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("mlops_lab.profile")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)

    def request_log() -> None:
        handler.stream.seek(0)
        handler.stream.truncate()
        logger.info(
            "request",
            extra={
                "request_id": "0" * 32,
                "method": "POST",
                "path": "/predict",
                "status": 200,
                "duration_ms": 1.0,
                "listings": size,
            },
        )

    prediction_log = service.prediction_log

    def log_prediction() -> None:
        prediction_log.record(
            AnsweredRequest(
                "0" * 32, datetime.now(UTC), model.name, model.version, 1.0, inputs, predictions
            )
        )

    parts = {
        "parse and validate": per_call_ms(validate, calls),
        "model": per_call_ms(
            lambda: model.predict_listings(
                [listing.model_input() for listing in listings], ids, explain=False
            ),
            calls,
        ),
        "serialize": per_call_ms(serialize, calls),
        "metrics": per_call_ms(count, calls),
        "request log line": per_call_ms(request_log, calls),
    }
    if prediction_log is not None:
        parts["prediction log (buffer)"] = per_call_ms(log_prediction, calls)
    return parts


def measured_p50(model: Path, size: int, scratch: Path, environment: dict[str, str]) -> float:
    """p50 of /predict at concurrency 1 against the real service with one worker, in ms."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlops-lab"), "serve"],
        env={
            **environment,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WEB_CONCURRENCY": "1",
            "MODEL_URI": str(model),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(port, "/ready", process)
        server = Server(port, "/predict", "ours")
        rows = [{**LISTING, "id": n} for n in range(size)]
        load(server, rows, 1, 1, scratch)
        return statistics.median(load(server, rows, 1, 3, scratch)["p50_ms"] for _ in range(3))
    finally:
        process.terminate()
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "price_category")
    arguments = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="mlops-lab-profile-"))
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    environment.update(
        {"MODEL_URI": str(arguments.model), "PREDICTION_LOG_URI": f"sqlite:///{scratch / 'p.db'}"}
    )
    app = create_app(ServiceSettings.from_environment(environment))
    results = {}
    for size in (1, 100, 1000):
        parts = app_parts(app, size)
        p50 = measured_p50(arguments.model, size, scratch, environment)
        # The log's writer thread shares the worker's cores and GIL: its cost is the p50's
        # difference with the log off.
        p50_log_off = measured_p50(
            arguments.model, size, scratch, {**environment, "PREDICTION_LOG": "off"}
        )
        parts["server: granian, Flask, HTTP (p50 - the above)"] = p50_log_off - sum(parts.values())
        parts["prediction log (writing, in a background thread)"] = p50 - p50_log_off
        results[f"{size} listing{'s' if size > 1 else ''}"] = {
            "p50_ms": p50,
            "parts_ms": {name: round(ms, 4) for name, ms in parts.items()},
        }
        print(json.dumps({size: results[f"{size} listing{'s' if size > 1 else ''}"]}, indent=2))
    write_json_atomically(ROOT / "bench" / "results" / "request_profile.json", results)


if __name__ == "__main__":
    main()
