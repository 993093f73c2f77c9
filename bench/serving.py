"""Load benchmark: our service under gunicorn against `mlflow models serve` of the same model.

Both run side by side in one run on loopback, each with 2 workers. For each: single-listing
requests at concurrency 1 and 16, and 100-listing batches at concurrency 4. Reports p50/p99
latency and throughput, and our/mlflow ratios. Targets (2 cores): single-listing p50 ≤ 5 ms
at concurrency 1, and at least 3x the throughput of `mlflow models serve`. Then ours alone
with ?explain=true (SHAP per listing field), for 1 and 100 listings at concurrency 1:
mlflow serves no explanations. Last, the cost of the prediction log: single listings at
concurrency 16 with the log on and off (target: at most 10%).

    python bench/serving.py [--model models/price_category] [--requests 400]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mlops_lab.kernel.config import load_config
from mlops_lab.kernel.files import write_json_atomically

ROOT = Path(__file__).resolve().parents[1]
LOG_OFF = "ours, prediction log off"
LOG_ROUNDS = 3
BIN = Path(sys.executable).parent
# The challenge's payload: what every caller sends.
LISTING = load_config(ROOT / "config.yaml", tuned_params=False).prediction_app.challenge_payload


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(port: int, path: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"server on port {port} not ready in {seconds} s")


def start_servers(
    model: Path, prediction_store: Path
) -> tuple[dict[str, dict], list[subprocess.Popen]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    ours, unlogged, theirs = free_port(), free_port(), free_port()

    def our_service(port: int, prediction_log: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(
            [str(BIN / "mlops-lab"), "serve"],
            env={
                **env,
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "WEB_CONCURRENCY": "2",
                "MODEL_URI": str(model),
                **prediction_log,
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    processes = [
        # The bench's predictions go to a store of their own, not to the lab's log.
        our_service(ours, {"PREDICTION_LOG_URI": f"sqlite:///{prediction_store}"}),
        our_service(unlogged, {"PREDICTION_LOG": "off"}),
        subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "--model-uri",
                str(model),
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(theirs),
                "--workers",
                "2",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    wait_until(ours, "/ready")
    wait_until(unlogged, "/ready")
    wait_until(theirs, "/ping")
    servers = {
        "ours (gunicorn)": {
            "port": ours,
            "path": "/predict",
            "body": lambda rows: rows[0] if len(rows) == 1 else rows,
        },
        LOG_OFF: {
            "port": unlogged,
            "path": "/predict",
            "body": lambda rows: rows[0] if len(rows) == 1 else rows,
        },
        "ours, ?explain=true": {
            "port": ours,
            "path": "/predict?explain=true",
            "body": lambda rows: rows[0] if len(rows) == 1 else rows,
        },
        "mlflow models serve": {
            "port": theirs,
            "path": "/invocations",
            "body": lambda rows: {"dataframe_records": rows},
        },
    }
    return servers, processes


def load(server: dict, rows: list[dict], concurrency: int, requests: int) -> dict[str, float]:
    """Send `requests` POSTs over `concurrency` keep-alive connections; latency and throughput."""
    payload = json.dumps(server["body"](rows))
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = requests // concurrency

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=60)
        mine = []
        for _ in range(per_client):
            started = time.perf_counter()
            connection.request(
                "POST", server["path"], payload, {"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{server['path']} answered {response.status}")
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    client_threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in client_threads:
        thread.start()
    for thread in client_threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "listings_per_s": round(len(latencies) * len(rows) / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "price_category")
    parser.add_argument("--requests", type=int, default=400)
    arguments = parser.parse_args()
    if not (arguments.model / "MLmodel").is_file():
        sys.exit(f"no MLflow model at {arguments.model}: run `make run` first")
    batch = [{**LISTING, "id": n} for n in range(100)]
    both = ("ours (gunicorn)", "mlflow models serve")
    logged = ("ours (gunicorn)", LOG_OFF)
    explained = ("ours, ?explain=true",)
    scenarios = [
        ("1 listing, concurrency 1", [LISTING], 1, both),
        ("1 listing, concurrency 16", [LISTING], 16, both),
        ("100 listings, concurrency 4", batch, 4, both),
        ("explain 1 listing, concurrency 1", [LISTING], 1, explained),
        ("explain 100 listings, concurrency 1", batch, 1, explained),
    ]
    store = Path(tempfile.mkdtemp(prefix="mlops-lab-bench-")) / "predictions.db"
    servers, processes = start_servers(arguments.model, store)
    results: dict[str, dict] = {}
    try:
        for scenario, rows, concurrency, names in scenarios:
            count = arguments.requests if len(rows) == 1 else arguments.requests // 4
            if names == explained:
                count = max(count // 4, 20)
            for name in names:
                server = servers[name]
                load(server, rows, concurrency, min(count, 40))  # warm-up
                results.setdefault(scenario, {})[name] = load(server, rows, concurrency, count)
                print(scenario, "|", name, "|", results[scenario][name], flush=True)
        # The prediction log's cost: the same service with it on and off, taking turns so
        # that both see the same machine; best of LOG_ROUNDS each.
        scenario = "1 listing, concurrency 16, prediction log on/off"
        for name in logged:
            load(servers[name], [LISTING], 16, 100)  # warm-up
        for _ in range(LOG_ROUNDS):
            for name in logged:
                run = load(servers[name], [LISTING], 16, arguments.requests * 4)
                best = results.setdefault(scenario, {}).get(name)
                if best is None or run["requests_per_s"] > best["requests_per_s"]:
                    results[scenario][name] = run
        on, off = (results[scenario][name]["requests_per_s"] for name in logged)
        results[scenario]["log_cost"] = round(1 - on / off, 3)
        print(scenario, "|", results[scenario], flush=True)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=60)
        shutil.rmtree(store.parent, ignore_errors=True)
    for pair in results.values():
        if all(name in pair for name in both):
            ours, theirs = (pair[name] for name in both)
            pair["throughput_ratio"] = round(ours["requests_per_s"] / theirs["requests_per_s"], 2)
            pair["p50_ratio"] = round(ours["p50_ms"] / theirs["p50_ms"], 2)
    write_json_atomically(ROOT / "bench" / "results" / "serving.json", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
