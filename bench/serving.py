"""Load benchmark: our service against the servers a user would pick instead, serving the same
model on the same machine in the same run.

Ours is the app on granian (`mlops-lab serve`), alone and behind its front door (nginx with the
stack's own configuration, nginx_docker/, on the same cores). Beside it, the same app on stock
gunicorn gthread (nothing patched), and the service as it was before granian (BEFORE, gunicorn
with a patched threaded worker), from that commit's own lock. Peers: MLServer with its MLflow
runtime (the engine behind KServe's and Seldon's runtimes; its environment is
requirements/mlserver-peer.lock) and `mlflow models serve`, each set up as a user would for 2
cores. The load comes from wrk, a C load generator, so the client costs
little of the 2 cores the servers share. Every server gets the same runs at each load (a
warm-up, then --rounds runs of --seconds), and the run of median throughput is kept. At each
load, our ratio to every peer.

Loads: one listing at concurrency 1 and 16, 100-listing batches at concurrency 4, 1,000-listing
batches (the API's largest) at concurrency 1. Then ours alone with ?explain=true (no peer
explains), and the prediction log's cost (on and off, taking turns). Targets on 2 cores: one
listing at concurrency 1 p50 ≤ 1.0 ms; at concurrency 16 at least 2,000 req/s and 3 times the
strongest peer, and through the front door at least 1,500 req/s; a 1,000-listing batch p50 ≤
50 ms. Needs wrk and nginx (`apt-get install wrk nginx-light`). Results go to
bench/results/serving.json.

    python bench/serving.py [--model models/price_category] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mlops_lab.common.files import write_json_atomically
from mlops_lab.config import load_config

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
UV = ROOT / ".uv" / "bin" / "uv"
PEER_LOCK = ROOT / "requirements" / "mlserver-peer.lock"
PEER_ENVIRONMENT = ROOT / ".bench" / "mlserver-peer"
# The challenge's payload: what every caller sends.
LISTING = load_config(ROOT / "config.yaml", tuned_params=False).prediction_app.challenge_payload
OURS, LOG_OFF, EXPLAINED = "ours", "ours, prediction log off", "ours, ?explain=true"
FRONT_DOOR = "ours behind the front door (nginx)"
STOCK_GUNICORN = "the app on stock gunicorn gthread"
# The last commit whose service ran on gunicorn with its own patched threaded worker.
BEFORE_COMMIT = "b15cbf0"
BEFORE = f"before: patched gunicorn gthread ({BEFORE_COMMIT})"
BEFORE_ENVIRONMENT = ROOT / ".bench" / "before-service"
MLSERVER, MLFLOW = "MLServer (MLflow runtime)", "mlflow models serve"
PEERS = (MLSERVER, MLFLOW)
FRONT_DOOR_TEMPLATE = ROOT / "nginx_docker" / "templates" / "default.conf.template"
LOG_ROUNDS = 3
TARGETS = {
    "one_listing_concurrency_1_p50_ms": 1.0,
    "one_listing_concurrency_16_requests_per_s": 2000.0,
    "one_listing_concurrency_16_ratio_to_strongest_peer": 3.0,
    "batch_1000_p50_ms": 50.0,
    "front_door_concurrency_16_requests_per_s": 1500.0,
}

# wrk's report, as one JSON line: latency in microseconds, and every answer that was not 2xx.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = file:read("*a")
file:close()
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "microseconds": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"not_2xx": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
"""


@dataclass(frozen=True)
class Server:
    port: int
    path: str
    # The request body for these listings, as this server takes it.
    wrap: str  # "ours" (an object, or a list) or "dataframe_records"

    def body(self, rows: list[dict]) -> bytes:
        if self.wrap == "ours":
            return json.dumps(rows[0] if len(rows) == 1 else rows).encode()
        return json.dumps({"dataframe_records": rows}).encode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(port: int, path: str, process: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the server for port {port} exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"server on port {port} not ready in {seconds} s")


def synced_environment(folder: Path, lock: str, what: str) -> Path | None:
    """The environment in `folder` synced to the lock's text: its bin folder, or None (after
    making it, synced) when it was made for another lock and needs its own package too."""
    stamp = folder / ".synced"
    if stamp.is_file() and stamp.read_text() == lock:
        return folder / "bin"
    if not UV.is_file():
        sys.exit(f"{UV} is missing: run `make setup` first")
    print(f"making {what}'s environment in {folder} …", flush=True)
    venv = [str(UV), "venv", "--quiet", "--allow-existing", "--python", sys.executable]
    subprocess.run([*venv, str(folder)], check=True)
    lock_file = folder / "requirements.lock"
    lock_file.write_text(lock)
    python = str(folder / "bin" / "python")
    subprocess.run(
        [str(UV), "pip", "sync", "--quiet", "--python", python, str(lock_file)], check=True
    )
    stamp.write_text(lock)
    return None


def peer_environment() -> Path:
    """MLServer's own environment, exactly requirements/mlserver-peer.lock (made once)."""
    return synced_environment(PEER_ENVIRONMENT, PEER_LOCK.read_text(), "MLServer") or (
        PEER_ENVIRONMENT / "bin"
    )


def before_environment() -> Path:
    """The service as it was at BEFORE_COMMIT, in an environment of its own from that commit's
    serve.lock (made once)."""
    show = ["git", "-C", str(ROOT), "show", f"{BEFORE_COMMIT}:requirements/serve.lock"]
    lock = subprocess.run(show, capture_output=True, text=True, check=True).stdout
    made = synced_environment(BEFORE_ENVIRONMENT, lock, f"the {BEFORE_COMMIT} service")
    if made is not None:
        return made
    source = Path(tempfile.mkdtemp(prefix="mlops-lab-before-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", BEFORE_COMMIT], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    python = str(BEFORE_ENVIRONMENT / "bin" / "python")
    install = [str(UV), "pip", "install", "--quiet", "--python", python, "--no-deps"]
    subprocess.run([*install, str(source)], check=True)
    shutil.rmtree(source)
    return BEFORE_ENVIRONMENT / "bin"


def front_door(scratch: Path, port: int, service_port: int) -> subprocess.Popen:
    """nginx with the stack's front-door configuration, in front of the service's port."""
    if shutil.which("nginx") is None:
        sys.exit("nginx is missing: `apt-get install nginx-light` (Debian) or `brew install nginx`")
    folder = scratch / "nginx"
    folder.mkdir()
    values = {
        "LISTEN_PORT": str(port),
        "SERVICE_ADDRESS": f"127.0.0.1:{service_port}",
        # An address, not a name: nothing is looked up, but the directive needs a server.
        "NGINX_LOCAL_RESOLVERS": "127.0.0.1",
        "MAX_BODY_BYTES": str(2 * 1024 * 1024),
        "FRONT_DOOR_CONNECTIONS_PER_CLIENT": "64",
        "FRONT_DOOR_RATE_PER_SECOND": "5000",
        "FRONT_DOOR_BURST": "5000",
    }
    server = string.Template(FRONT_DOOR_TEMPLATE.read_text()).safe_substitute(values)
    (folder / "front_door.conf").write_text(
        server.replace("/var/log/nginx/access.log", str(folder / "access.log"))
    )
    # As the official image runs it: a worker per core.
    (folder / "nginx.conf").write_text(
        f"worker_processes auto;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log;\n"
        "events { worker_connections 4096; }\n"
        f"http {{ client_body_temp_path {folder}/body; proxy_temp_path {folder}/proxy;\n"
        f"  include {folder}/front_door.conf; }}\n"
    )
    return subprocess.Popen(
        ["nginx", "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def mlserver_folder(model: Path, scratch: Path, port: int) -> Path:
    """MLServer's settings for 2 cores and the model's settings, in a folder it starts from."""
    folder = scratch / "mlserver"
    (folder / "price-category").mkdir(parents=True)
    settings = {
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        # A pool of one inference process per core, as MLServer advises for CPU-bound models;
        # the HTTP front end is its own process.
        "parallel_workers": 2,
        "debug": False,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    model_settings = {
        "name": "price-category",
        "implementation": "mlserver_mlflow.MLflowRuntime",
        "parameters": {"uri": str(model.resolve())},
    }
    (folder / "price-category" / "model-settings.json").write_text(json.dumps(model_settings))
    return folder


def start_servers(model: Path, scratch: Path) -> tuple[dict[str, Server], list[subprocess.Popen]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    ports = {
        name: free_port()
        for name in (OURS, LOG_OFF, FRONT_DOOR, STOCK_GUNICORN, BEFORE, MLSERVER, MLFLOW)
    }
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}

    def our_service(
        port: int, prediction_log: dict[str, str], command: list[str]
    ) -> subprocess.Popen:
        settings = {"HOST": "127.0.0.1", "PORT": str(port), "MODEL_URI": str(model)}
        return subprocess.Popen(
            command, env={**env, "WEB_CONCURRENCY": "2", **settings, **prediction_log}, **quiet
        )

    def own_store(name: str) -> dict[str, str]:
        """The bench's predictions go to a store of their own, not to the lab's log."""
        return {"PREDICTION_LOG_URI": f"sqlite:///{scratch / f'predictions-{ports[name]}.db'}"}

    serve = [str(BIN / "mlops-lab"), "serve"]
    # The same app on stock gunicorn: its own threaded worker, as its docs set it up.
    stock = [str(BIN / "gunicorn"), "--workers", "2", "--worker-class", "gthread", "--threads"]
    stock += ["4", "--bind", f"127.0.0.1:{ports[STOCK_GUNICORN]}"]
    stock += ["mlops_lab.service.app:create_app()"]
    peer_bin = peer_environment()
    before_bin = before_environment()
    processes = {
        OURS: our_service(ports[OURS], own_store(OURS), serve),
        LOG_OFF: our_service(ports[LOG_OFF], {"PREDICTION_LOG": "off"}, serve),
        STOCK_GUNICORN: our_service(
            ports[STOCK_GUNICORN],
            {**own_store(STOCK_GUNICORN), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
            stock,
        ),
        BEFORE: our_service(
            ports[BEFORE], own_store(BEFORE), [str(before_bin / "mlops-lab"), "serve"]
        ),
        FRONT_DOOR: front_door(scratch, ports[FRONT_DOOR], ports[OURS]),
        MLSERVER: subprocess.Popen(
            [
                str(peer_bin / "mlserver"),
                "start",
                str(mlserver_folder(model, scratch, ports[MLSERVER])),
            ],
            env={**env, "PATH": f"{peer_bin}{os.pathsep}{env['PATH']}"},
            **quiet,
        ),
        MLFLOW: subprocess.Popen(
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
                str(ports[MLFLOW]),
                "--workers",
                "2",
            ],
            env=env,
            **quiet,
        ),
    }
    ready_paths = {name: "/ready" for name in (OURS, LOG_OFF, FRONT_DOOR, STOCK_GUNICORN, BEFORE)}
    ready_paths |= {MLSERVER: "/v2/health/ready", MLFLOW: "/ping"}
    for name, process in processes.items():
        wait_until(ports[name], ready_paths[name], process)
    servers = {
        OURS: Server(ports[OURS], "/predict", "ours"),
        LOG_OFF: Server(ports[LOG_OFF], "/predict", "ours"),
        EXPLAINED: Server(ports[OURS], "/predict?explain=true", "ours"),
        FRONT_DOOR: Server(ports[FRONT_DOOR], "/predict", "ours"),
        STOCK_GUNICORN: Server(ports[STOCK_GUNICORN], "/predict", "ours"),
        BEFORE: Server(ports[BEFORE], "/predict", "ours"),
        MLSERVER: Server(ports[MLSERVER], "/invocations", "dataframe_records"),
        MLFLOW: Server(ports[MLFLOW], "/invocations", "dataframe_records"),
    }
    return servers, list(processes.values())


def load(
    server: Server, rows: list[dict], concurrency: int, seconds: float, scratch: Path
) -> dict[str, float]:
    """wrk's POSTs of these listings over `concurrency` keep-alive connections for `seconds`."""
    body, script = scratch / "body.json", scratch / "post.lua"
    body.write_bytes(server.body(rows))
    script.write_text(WRK_SCRIPT)
    result = subprocess.run(
        [
            "wrk",
            f"--threads={min(concurrency, 2)}",
            f"--connections={concurrency}",
            f"--duration={seconds:g}s",
            "--timeout=30s",
            f"--script={script}",
            f"http://127.0.0.1:{server.port}{server.path}",
        ],
        env={**os.environ, "BENCH_BODY": str(body)},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"wrk against {server.path} on port {server.port} failed:\n{result.stderr}")
    line = next(line for line in result.stdout.splitlines() if line.startswith("BENCH "))
    report = json.loads(line.removeprefix("BENCH "))
    if report["not_2xx"] or report["socket_errors"]:
        sys.exit(f"{server.path} on port {server.port} failed: {report}\n{result.stdout}")
    per_second = report["requests"] / (report["microseconds"] / 1e6)
    return {
        "p50_ms": round(report["p50_us"] / 1000, 2),
        "p99_ms": round(report["p99_us"] / 1000, 2),
        "requests_per_s": round(per_second, 1),
        "listings_per_s": round(per_second * len(rows), 1),
    }


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run of median throughput: one slow or lucky run on a shared machine decides
    nothing, for any server."""
    return sorted(runs, key=lambda run: run["requests_per_s"])[len(runs) // 2]


# The figures of a server that could not answer a lone request a minute after a run.
UNANSWERED = {"p50_ms": None, "p99_ms": None, "requests_per_s": 0.0, "listings_per_s": 0.0}
# A server is idle again once a lone request is answered this fast (and with a 200), twice.
IDLE_SECONDS = 0.5
SETTLE_LIMIT_SECONDS = 120


def settle(server: Server, rows: list[dict]) -> bool:
    """Wait until the server has worked through what wrk left in flight: wrk stops at its
    deadline, not after its last answer, and a server that queues (MLServer at 16 clients
    took seconds) would otherwise start the next run with the last one's backlog. An
    explanation left running also holds the explanation slot for a while."""
    body = server.body(rows)
    quick = 0
    deadline = time.monotonic() + SETTLE_LIMIT_SECONDS
    while quick < 2:
        if time.monotonic() > deadline:
            sys.exit(f"port {server.port} still busy {SETTLE_LIMIT_SECONDS} s after a run")
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            connection.request(
                "POST", server.path, body=body, headers={"Content-Type": "application/json"}
            )
            status = connection.getresponse().status
        except TimeoutError:
            # A server still queueing after a minute: it gets no more runs at this load.
            return False
        finally:
            connection.close()
        fast = status == 200 and time.monotonic() - started < IDLE_SECONDS
        quick = quick + 1 if fast else 0
        if not fast:
            time.sleep(0.2)
    return True


def ratios(pair: dict[str, dict]) -> None:
    """Ours against every peer, and against the service before, at this load: throughput
    ratio and p50 ratio."""
    for peer in (*PEERS, BEFORE, STOCK_GUNICORN):
        if peer in pair and OURS in pair:
            # A peer that answered nothing within a run has no ratio to state.
            answered = pair[peer]["requests_per_s"] > 0
            pair[f"ours ÷ {peer}"] = {
                "throughput": (
                    round(pair[OURS]["requests_per_s"] / pair[peer]["requests_per_s"], 2)
                    if answered
                    else None
                ),
                "p50": round(pair[OURS]["p50_ms"] / pair[peer]["p50_ms"], 3) if answered else None,
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "price_category")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs per server and load; the median is kept"
    )
    arguments = parser.parse_args()
    if not (arguments.model / "MLmodel").is_file():
        sys.exit(f"no MLflow model at {arguments.model}: run `make run` first")
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: `apt-get install wrk` (Debian) or `brew install wrk`")
    if shutil.which("nginx") is None:
        sys.exit("nginx is missing: `apt-get install nginx-light` (Debian) or `brew install nginx`")
    every_server = (OURS, FRONT_DOOR, BEFORE, STOCK_GUNICORN, *PEERS)
    batches = (OURS, FRONT_DOOR, BEFORE, *PEERS)
    scenarios = [
        ("1 listing, concurrency 1", 1, 1, every_server),
        ("1 listing, concurrency 16", 1, 16, every_server),
        ("100 listings, concurrency 4", 100, 4, batches),
        ("1,000 listings, concurrency 1", 1000, 1, batches),
        ("explain 1 listing, concurrency 1", 1, 1, (EXPLAINED,)),
        ("explain 100 listings, concurrency 1", 100, 1, (EXPLAINED,)),
    ]
    scratch = Path(tempfile.mkdtemp(prefix="mlops-lab-bench-"))
    servers, processes = start_servers(arguments.model, scratch)
    results: dict[str, dict] = {}
    try:
        for scenario, size, concurrency, names in scenarios:
            rows = [{**LISTING, "id": n} for n in range(size)]
            for name in names:
                load(servers[name], rows, concurrency, 1, scratch)  # warm-up
                runs = []
                for _ in range(arguments.rounds):
                    if not settle(servers[name], rows):
                        break
                    runs.append(load(servers[name], rows, concurrency, arguments.seconds, scratch))
                # A server that never settled again answered nothing usable at this load.
                answered = median_run(runs) if len(runs) == arguments.rounds else UNANSWERED
                results.setdefault(scenario, {})[name] = answered
                print(scenario, "|", name, "|", results[scenario][name], flush=True)
            ratios(results[scenario])
        # The prediction log's cost: the same service with it on and off, taking turns so
        # that both see the same machine; best of LOG_ROUNDS each.
        scenario = "1 listing, concurrency 16, prediction log on/off"
        for _ in range(LOG_ROUNDS):
            for name in (OURS, LOG_OFF):
                settle(servers[name], [LISTING])
                run = load(servers[name], [LISTING], 16, arguments.seconds, scratch)
                best = results.setdefault(scenario, {}).get(name)
                if best is None or run["requests_per_s"] > best["requests_per_s"]:
                    results[scenario][name] = run
        on, off = (results[scenario][name]["requests_per_s"] for name in (OURS, LOG_OFF))
        results[scenario]["log_cost"] = round(1 - on / off, 3)
        print(scenario, "|", results[scenario], flush=True)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()  # MLServer, still working through an abandoned queue
                process.wait()
        shutil.rmtree(scratch, ignore_errors=True)
    single, busy = results["1 listing, concurrency 1"], results["1 listing, concurrency 16"]
    strongest = max(PEERS, key=lambda peer: busy[peer]["requests_per_s"])
    measured = {
        "one_listing_concurrency_1_p50_ms": single[OURS]["p50_ms"],
        "one_listing_concurrency_16_requests_per_s": busy[OURS]["requests_per_s"],
        "one_listing_concurrency_16_ratio_to_strongest_peer": busy[f"ours ÷ {strongest}"][
            "throughput"
        ],
        "batch_1000_p50_ms": results["1,000 listings, concurrency 1"][OURS]["p50_ms"],
        "front_door_concurrency_16_requests_per_s": busy[FRONT_DOOR]["requests_per_s"],
    }
    results["targets"] = {
        name: {
            "target": target,
            "measured": measured[name],
            "met": measured[name] <= target if name.endswith("_ms") else measured[name] >= target,
        }
        for name, target in TARGETS.items()
    }
    results["strongest_peer"] = strongest
    results["cpu_count"] = os.cpu_count()
    write_json_atomically(ROOT / "bench" / "results" / "serving.json", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
