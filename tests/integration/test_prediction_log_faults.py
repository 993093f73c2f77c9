"""The prediction log and /feedback under what callers send and what the store does, on a real
PostgreSQL and on SQLite: nothing written is lost or forged, and every loss is counted."""

import json
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
import requests
from projects import challenge_payload
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.parser import text_string_to_metric_families
from services import PostgresCluster, Service
from sqlalchemy import create_engine, select

from mlops_lab.kernel.prediction_store import (
    FEEDBACK,
    PREDICTIONS,
    create_tables,
    latest_feedback,
    logged_losses,
    store_engine,
)
from mlops_lab.service.prediction_log import (
    AnsweredRequest,
    LogMetrics,
    PredictionLog,
    PredictionLogSettings,
)

pytestmark = pytest.mark.integration

CHALLENGE = challenge_payload()
OUTCOMES = ("written", "rejected", "dropped", "lost")


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, cluster, tmp_path) -> dict:
    """An empty store of each kind: a SQLite file, or a database of its own on PostgreSQL."""
    if request.param == "sqlite":
        return {"kind": "sqlite", "uri": f"sqlite:///{tmp_path / 'predictions.db'}"}
    name = re.sub(r"\W", "_", request.node.name).lower()[-40:]
    return {"kind": "postgresql", "uri": cluster.database(f"p_{name}", f"u_{name}")}


@pytest.fixture()
def serve(trained_lab, service_factory):
    """Start a service on the trained model that logs to this store."""

    def start(uri: str):
        model = str(Path(trained_lab.path) / "models" / "price_category")
        return service_factory({"PREDICTION_LOG_URI": uri, "MODEL_URI": model})

    return start


def post(service, body, path="/predict", **headers) -> requests.Response:
    data = body if isinstance(body, str) else json.dumps(body)
    headers = {"Content-Type": "application/json", **service.feedback_headers, **headers}
    return requests.post(f"{service.url}{path}", data=data, headers=headers, timeout=30)


def log_records(service) -> dict[str, float]:
    """prediction_log_records_total by outcome, from /metrics."""
    text = requests.get(f"{service.url}/metrics", timeout=10).text
    counts = dict.fromkeys(OUTCOMES, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "prediction_log_records_total":
                counts[sample.labels["outcome"]] += sample.value
    return counts


def settled(service, answered: int, seconds: float = 60) -> dict[str, float]:
    """The outcomes once every answered listing has one (or the deadline has passed)."""
    deadline = time.monotonic() + seconds
    counts = log_records(service)
    while sum(counts.values()) < answered and time.monotonic() < deadline:
        time.sleep(0.2)
        counts = log_records(service)
    return counts


def logged_ids(uri: str, prefix: str) -> list[str]:
    engine = create_engine(uri)
    try:
        create_tables(engine)
        with engine.connect() as connection:
            column = PREDICTIONS.c.listing_id
            return list(connection.scalars(select(column).where(column.like(f"{prefix}%"))))
    finally:
        engine.dispose()


class SteadyLoad:
    """Four clients sending single predictions without pause, counting what was answered."""

    def __init__(self, service, prefix: str):
        self.service, self.prefix = service, prefix
        self.answered: list[str] = []
        self.failures: list[object] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(n,)) for n in range(4)]

    def run(self, client: int) -> None:
        number = 0
        while not self.stop.is_set():
            listing_id = f"{self.prefix}-{client}-{number}"
            number += 1
            try:
                response = post(self.service, {**CHALLENGE, "id": listing_id})
            except requests.RequestException as error:
                self.failures.append(error)
                continue
            if response.status_code == 200:
                self.answered.append(listing_id)
            else:
                self.failures.append(response.status_code)

    def __enter__(self) -> "SteadyLoad":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


# The raw JSON of each odd id, and the field its 422 names: a lone surrogate stops the JSON
# parser itself, before any field.
HOSTILE_IDS = {
    "an id of 101 digits": ("1" + "0" * 100, "id"),
    "an id with NUL": ('"a\\u0000b"', "id"),
    "an id with a lone surrogate": ('"\\ud800x"', "body"),
    "an id of 10,000 characters": ('"' + "i" * 10_000 + '"', "id"),
}
LONG = "x" * 10_000


def hostile_bodies() -> dict[str, tuple[str, str]]:
    """Bodies with odd but valid JSON in every string field (the rest of each is the
    challenge), and the field each 422 names."""
    base = json.dumps({key: value for key, value in CHALLENGE.items() if key != "id"})[1:-1]
    bodies = {
        name: (f'{{"id": {raw}, {base}}}', field) for name, (raw, field) in HOSTILE_IDS.items()
    }
    for field in ("room_type", "neighbourhood", "property_type"):
        bodies[f"10,000 characters of {field}"] = (json.dumps({**CHALLENGE, field: LONG}), field)
    nul = json.dumps({**CHALLENGE, "property_type": "a\x00b"})
    bodies["a NUL in property_type"] = (nul, "property_type")
    return bodies


def test_odd_values_are_refused_or_written_and_every_answer_is_accounted_for(store, serve):
    service = serve(store["uri"])
    service.wait_ready()
    with SteadyLoad(service, "steady") as load:
        for name, (body, field) in hostile_bodies().items():
            response = post(service, body)
            assert response.status_code == 422, (name, response.text[:300])
            assert response.json()["details"][0]["field"] == field, (name, response.text[:300])
        # An odd request id is not stored: the service makes its own.
        odd = post(service, {**CHALLENGE, "id": "odd-request-id"}, **{"X-Request-ID": "é" * 300})
        assert odd.status_code == 200 and odd.headers["X-Request-ID"] != "é" * 300
        for name, (raw, _) in HOSTILE_IDS.items():
            feedback = post(service, f'{{"id": {raw}, "price": 100}}', path="/feedback")
            assert feedback.status_code == 422, (name, feedback.text[:300])
        time.sleep(1)  # the load goes on a while after the last odd request
    assert not load.failures, load.failures[:5]
    answered = len(load.answered) + 1
    counts = settled(service, answered)
    assert counts["written"] + counts["rejected"] + counts["dropped"] == answered, counts
    assert counts == {"written": answered, "rejected": 0, "dropped": 0, "lost": 0}
    assert sorted(logged_ids(store["uri"], "steady-")) == sorted(load.answered)
    assert requests.get(f"{service.url}/ready", timeout=10).status_code == 200


def answered_request(listing_ids: list[str]) -> AnsweredRequest:
    return AnsweredRequest(
        request_id="faults",
        predicted_at=datetime.now(UTC),
        model_name="airbnb-price-category",
        model_version="1",
        latency_ms=1.0,
        inputs=[{"accommodates": 2}] * len(listing_ids),
        predictions=[
            {"id": listing_id, "price_category": "low", "probabilities": {"low": 1.0}}
            for listing_id in listing_ids
        ],
    )


def test_a_record_the_store_refuses_is_set_aside_and_the_writer_goes_on(store):
    # Past the API's checks (a caller cannot send these): what each store itself refuses.
    refused_everywhere = ["lone\ud800surrogate"]
    refused_by_postgresql = ["nul\x00inside", "9" * 101]
    registry = CollectorRegistry()
    records = Counter("records", "records", ["outcome"], registry=registry)
    metrics = LogMetrics(
        Counter("answers", "answers", registry=registry),
        records,
        Gauge("running", "running", registry=registry),
    )
    settings = PredictionLogSettings(store["uri"], retry_seconds=0.2)
    log = PredictionLog(store_engine(store["uri"]), settings, metrics)
    try:
        good = [f"good-{n}" for n in range(1200)]
        odd = refused_everywhere + refused_by_postgresql
        log.record(answered_request(good[:600] + odd + good[600:]))
        log.record(answered_request(["good-after"]))
        assert log.flush(timeout=30)
    finally:
        log.close()
    rejected = records.labels("rejected")._value.get()
    written = records.labels("written")._value.get()
    expected_rejected = len(odd) if store["kind"] == "postgresql" else len(refused_everywhere)
    assert (written, rejected) == (1201 + len(odd) - expected_rejected, expected_rejected)
    assert sorted(logged_ids(store["uri"], "good")) == sorted([*good, "good-after"])
    assert log.failure is None


@contextmanager
def store_out_of_reach(store: dict, cluster: PostgresCluster) -> Iterator[None]:
    """SQLite under an exclusive lock (readers and writers wait), or PostgreSQL stopped, while
    the block runs."""
    if store["kind"] == "sqlite":
        connection = sqlite3.connect(store["uri"].removeprefix("sqlite:///"), timeout=60)
        connection.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            connection.rollback()
            connection.close()
    else:
        cluster.stop()
        try:
            yield
        finally:
            cluster.start()


def test_a_locked_or_stopped_store_holds_up_neither_health_nor_feedback(store, cluster, serve):
    service = serve(store["uri"])
    service.wait_ready()
    assert post(service, {**CHALLENGE, "id": "known"}).status_code == 200
    deadline = time.monotonic() + 30
    while not logged_ids(store["uri"], "known") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert post(service, {"id": "known", "price": 120}, path="/feedback").status_code == 200
    health, feedback = [], []
    with SteadyLoad(service, "locked") as load, store_out_of_reach(store, cluster):
        held_until = time.monotonic() + (12 if store["kind"] == "sqlite" else 10)
        while time.monotonic() < held_until:
            started = time.monotonic()
            assert requests.get(f"{service.url}/health", timeout=5).status_code == 200
            health.append(time.monotonic() - started)
            started = time.monotonic()
            answer = post(service, {"id": "known", "price": 120}, path="/feedback")
            feedback.append((answer.status_code, time.monotonic() - started, answer.headers))
            time.sleep(0.2)  # probes, not load: five a second
    assert not load.failures, load.failures[:5]
    assert max(health) < 1, sorted(health)[-5:]
    refused = [(status, took) for status, took, headers in feedback if status != 200]
    assert refused, "the store was never seen locked"
    assert {status for status, _ in refused} == {503}
    # Its bound (1 s) and a little: PostgreSQL's client waits at least 2 s to connect.
    bound = 1.5 if store["kind"] == "sqlite" else 2.5
    assert max(took for _, took in refused) < bound, refused
    assert all("Retry-After" in headers for status, _, headers in feedback if status == 503)
    # Every answer given meanwhile is written once the store is back, with no restart.
    counts = settled(service, len(load.answered) + 1)
    assert counts == {"written": len(load.answered) + 1, "rejected": 0, "dropped": 0, "lost": 0}
    assert sorted(logged_ids(store["uri"], "locked-")) == sorted(load.answered)
    assert post(service, {"id": "known", "price": 120}, path="/feedback").status_code == 200


def test_workers_starting_together_on_a_new_store_make_its_tables_once(store, serve):
    # Ten fresh starts, two at a time, each pair on a new store.
    for start in range(5):
        uri = fresh_uri(store, start)
        services = [serve(uri) for _ in range(2)]
        for service in services:
            service.wait_ready()
            assert post(service, {**CHALLENGE, "id": f"start-{start}"}).status_code == 200
        for service in services:
            service.stop()
            log = service.log_path.read_text()
            assert "OperationalError" not in log and "Traceback" not in log, log[-3000:]


def fresh_uri(store: dict, start: int) -> str:
    if store["kind"] == "sqlite":
        return store["uri"].replace("predictions.db", f"predictions-{start}.db")
    engine = create_engine(store["uri"])
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS feedback, predictions")
    finally:
        engine.dispose()
    return store["uri"]


def wait_logged(uri: str, listing_id: str) -> None:
    deadline = time.monotonic() + 30
    while listing_id not in logged_ids(uri, listing_id) and time.monotonic() < deadline:
        time.sleep(0.1)


def test_feedback_needs_the_token_and_keeps_every_truth_sent(store, serve):
    service = serve(store["uri"])
    service.wait_ready()
    assert post(service, {**CHALLENGE, "id": "truth"}).status_code == 200
    wait_logged(store["uri"], "truth")
    refused = {
        "no token": {"Authorization": ""},
        "another token": {"Authorization": "Bearer not-the-token"},
        "another scheme": {"Authorization": "Basic " + service.feedback_headers["Authorization"]},
    }
    for name, headers in refused.items():
        answer = post(service, {"id": "truth", "price": 50}, path="/feedback", **headers)
        assert answer.status_code == 401, (name, answer.text)
        assert answer.json()["details"][0]["field"] == "Authorization"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    for price in (50, 500):
        assert post(service, {"id": "truth", "price": price}, path="/feedback").status_code == 200
    engine = create_engine(store["uri"])
    try:
        with engine.connect() as connection:
            query = select(FEEDBACK.c.price).where(FEEDBACK.c.listing_id == "truth")
            assert sorted(connection.scalars(query)) == [50, 500]
        # Both truths are kept; monitoring believes the latest.
        assert latest_feedback(engine, ["truth"]) == {"truth": "lux"}
    finally:
        engine.dispose()


def test_without_a_token_the_service_makes_one_that_replay_uses(trained_lab, tmp_path):
    token_file = Path(trained_lab.path) / "mlruns" / "feedback-token"
    token_file.unlink(missing_ok=True)
    environment = {
        "FEEDBACK_TOKEN": "",
        "MODEL_URI": str(Path(trained_lab.path) / "models" / "price_category"),
        "PREDICTION_LOG_URI": f"sqlite:///{tmp_path / 'predictions.db'}",
    }
    service = Service(environment, tmp_path / "service.log", cwd=Path(trained_lab.path))
    try:
        service.wait_ready()
        assert token_file.stat().st_mode & 0o777 == 0o600
        assert str(token_file) in service.log_path.read_text()
        assert post(service, {"id": 1, "price": 50}, path="/feedback").status_code == 401
        replayed = trained_lab.run(
            ["mlops-lab", "replay", "--url", service.url, "--limit", "50", "--feedback"]
        )
        assert replayed.returncode == 0, replayed.stderr[-3000:]
        assert "50 true prices posted as feedback" in replayed.stdout
    finally:
        service.stop()


def test_a_worker_killed_mid_load_has_its_loss_counted(store, serve):
    service = serve(store["uri"])
    service.wait_ready()
    workers = psutil.Process(service.process.pid).children()
    assert len(workers) == 2, workers
    with SteadyLoad(service, "killed") as load:
        while len(load.answered) < 500:
            time.sleep(0.05)
        workers[0].send_signal(signal.SIGKILL)
        # The server starts another worker; the load goes on through it.
        deadline = time.monotonic() + 60
        while len(psutil.Process(service.process.pid).children()) < 2:
            assert time.monotonic() < deadline, "no worker took the killed one's place"
            time.sleep(0.1)
        service.wait_ready()
        answered_before = len(load.answered)
        while len(load.answered) < answered_before + 500:
            time.sleep(0.05)
    # Only connections the killed worker held may fail, unanswered (so never counted).
    assert all(isinstance(failure, requests.ConnectionError) for failure in load.failures)
    counts = settled(service, len(load.answered))
    logged = logged_ids(store["uri"], "killed-")
    assert set(logged) <= set(load.answered)
    # Every answer is written or counted lost: nothing went missing without a count.
    assert counts["written"] == len(logged)
    assert counts["written"] + counts["lost"] == len(load.answered), counts
    assert counts["lost"] > 0 and counts["dropped"] == counts["rejected"] == 0
    # And in the store, where `mlops-lab monitor` reports what its window misses.
    engine = create_engine(store["uri"])
    try:
        deadline = time.monotonic() + 30
        while logged_losses(engine, None, None).get("lost", 0) < counts["lost"]:
            assert time.monotonic() < deadline, logged_losses(engine, None, None)
            time.sleep(0.1)
        assert logged_losses(engine, None, None) == {"lost": counts["lost"]}
    finally:
        engine.dispose()


def chattr(flag: str, paths: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, text=True)


def test_sqlite_files_made_unwritable_for_10_s_kill_no_worker_and_the_log_resumes(serve, tmp_path):
    # Root ignores file modes; only the immutable attribute stops it writing.
    if shutil.which("chattr") is None:
        pytest.skip("chattr is missing: it makes the store unwritable, even to root")
    uri = f"sqlite:///{tmp_path / 'predictions.db'}"
    service = serve(uri)
    service.wait_ready()
    workers = {worker.pid for worker in psutil.Process(service.process.pid).children()}
    with SteadyLoad(service, "frozen") as load:
        while len(logged_ids(uri, "frozen-")) < 200:
            time.sleep(0.1)
        files = sorted(tmp_path.glob("predictions.db*"))
        made = chattr("+i", files)
        if made.returncode != 0:
            pytest.skip(f"chattr +i is refused here: {made.stderr.strip()}")
        try:
            time.sleep(10)
        finally:
            assert chattr("-i", files).returncode == 0
        answered_before = len(load.answered)
        while len(load.answered) < answered_before + 500:
            time.sleep(0.05)
    assert not load.failures, load.failures[:5]
    assert {worker.pid for worker in psutil.Process(service.process.pid).children()} == workers
    counts = settled(service, len(load.answered))
    assert sum(counts.values()) == len(load.answered), counts
    assert counts["written"] == len(logged_ids(uri, "frozen-"))
    # Written again once the files could be: the last answers are in the store.
    assert set(load.answered[-100:]) <= set(logged_ids(uri, "frozen-"))
    assert requests.get(f"{service.url}/ready", timeout=10).status_code == 200
