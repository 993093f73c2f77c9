"""The prediction log and /feedback under what callers send and what the store does, on a real
PostgreSQL and on SQLite: nothing written is lost or forged, and every loss is counted."""

import json
import shutil
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
import requests
from calls import AVAILABLE_WITHIN_SECONDS, Callers, post, settled_outcomes
from projects import challenge_payload
from prometheus_client import CollectorRegistry, Counter, Gauge
from services import Service
from sqlalchemy import create_engine, select
from stores import answered_request, logged_ids, store_out_of_reach, wait_for_logged
from waiting import poll_until, read_until, skip_or_fail

from mlops_lab.service.prediction_log import (
    LogMetrics,
    PredictionLog,
    PredictionLogSettings,
)
from mlops_lab.serving.prediction_store import (
    FEEDBACK,
    latest_feedback,
    logged_losses,
    store_engine,
)

pytestmark = pytest.mark.integration

CHALLENGE = challenge_payload()


@pytest.fixture()
def store(prediction_store) -> dict:
    return prediction_store


@pytest.fixture()
def serve(trained_lab, service_factory):
    """Start a service on the trained model that logs to this store."""

    def start(uri: str):
        model = str(Path(trained_lab.path) / "models" / "price_category")
        return service_factory({"PREDICTION_LOG_URI": uri, "MODEL_URI": model})

    return start


def steady_load(service, prefix: str) -> Callers:
    """Four clients sending single predictions without pause, ids `prefix-client-number`."""
    return Callers(
        lambda client, number: post(service, {**CHALLENGE, "id": f"{prefix}-{client}-{number}"})
    )


def answered_ids(load: Callers) -> list[str]:
    return [answer["id"] for answer in load.answered()]


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
    with steady_load(service, "steady") as load:
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
        load.wait_for_calls(100)  # the load goes on a while after the last odd request
    assert not load.failures(), load.failures()[:5]
    answered = len(load.answered()) + 1
    counts = settled_outcomes(service.url, answered)
    assert counts == {"written": answered, "rejected": 0, "dropped": 0, "lost": 0}
    # Each answer once: a row written twice would be here twice.
    assert sorted(logged_ids(store["uri"], "steady-")) == sorted(answered_ids(load))
    assert requests.get(f"{service.url}/ready", timeout=10).status_code == 200


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


def test_a_locked_or_stopped_store_leaves_health_and_feedback_available(
    store, store_cluster, serve
):
    service = serve(store["uri"])
    service.wait_ready()
    assert post(service, {**CHALLENGE, "id": "known"}).status_code == 200
    wait_for_logged(store["uri"], "known")
    assert post(service, {"id": "known", "price": 120}, path="/feedback").status_code == 200
    feedback = []
    with steady_load(service, "locked") as load, store_out_of_reach(store, store_cluster):
        # Probes meanwhile, each answered within a client timeout or the test fails; the store
        # stays out of reach for as long as 500 predictions take.
        until = load.calls + 500
        while load.calls < until or not feedback:
            health = requests.get(f"{service.url}/health", timeout=AVAILABLE_WITHIN_SECONDS)
            assert health.status_code == 200
            feedback.append(
                post(
                    service,
                    {"id": "known", "price": 120},
                    path="/feedback",
                    timeout=AVAILABLE_WITHIN_SECONDS,
                )
            )
    assert not load.failures(), load.failures()[:5]
    refused = [answer for answer in feedback if answer.status_code != 200]
    assert refused, "the store was never seen out of reach"
    assert {answer.status_code for answer in refused} == {503}
    assert all("Retry-After" in answer.headers for answer in refused)
    # Every answer given meanwhile is written once the store is back, with no restart.
    answered = len(load.answered()) + 1
    counts = settled_outcomes(service.url, answered)
    assert counts == {"written": answered, "rejected": 0, "dropped": 0, "lost": 0}
    assert sorted(logged_ids(store["uri"], "locked-")) == sorted(answered_ids(load))
    assert post(service, {"id": "known", "price": 120}, path="/feedback").status_code == 200


def test_workers_starting_together_on_a_new_store_make_its_tables_once(store, serve):
    # Six fresh starts, two at a time, each pair on a new store.
    for start in range(3):
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


def test_feedback_needs_the_token_and_keeps_every_truth_sent(store, serve):
    service = serve(store["uri"])
    service.wait_ready()
    assert post(service, {**CHALLENGE, "id": "truth"}).status_code == 200
    wait_for_logged(store["uri"], "truth")
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


def worker_pids(service) -> set[int]:
    return {worker.pid for worker in psutil.Process(service.process.pid).children()}


def busiest_worker(service) -> int:
    """The worker holding the most callers' connections, so its death cuts some."""
    held = {
        pid: sum(
            1
            for connection in psutil.Process(pid).net_connections(kind="tcp")
            if connection.status == psutil.CONN_ESTABLISHED
            and connection.laddr.port == service.port
        )
        for pid in worker_pids(service)
    }
    assert max(held.values()) > 0, held
    return max(held, key=held.get)


def test_a_worker_killed_mid_load_has_its_loss_counted(store, store_cluster, serve):
    service = serve(store["uri"])
    service.wait_ready()
    workers = worker_pids(service)
    assert len(workers) == 2, workers
    with steady_load(service, "killed") as load:
        load.wait_for_calls(500)
        # With the store out of reach, what a worker answers waits in its memory: the worker
        # killed then certainly holds answers it never wrote.
        with store_out_of_reach(store, store_cluster):
            load.wait_for_calls(200)
            killed = busiest_worker(service)
            psutil.Process(killed).send_signal(signal.SIGKILL)
        # The server starts another worker; the load goes on through it.
        poll_until(
            lambda: len(worker_pids(service) - {killed}) == 2,
            60,
            "a worker in the killed one's place",
        )
        service.wait_ready()
        load.wait_for_calls(500)
    # Only connections the killed worker held may fail: reset, or cut short inside an answer.
    failures = load.failures()
    cut = (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)
    assert all(isinstance(failure, cut) for failure in failures), failures
    answered = answered_ids(load)
    # The worker may have answered some of those before it died, unsent: the service counts
    # them, the client never got them.
    unsent = {f"killed-{client}-{number}" for client, number in load.unanswered}
    counts = settled_outcomes(service.url, len(answered))
    logged = logged_ids(store["uri"], "killed-")
    assert len(logged) == len(set(logged)) and set(logged) <= set(answered) | unsent
    # Every answer is written or counted lost: nothing went missing without a count.
    assert counts["written"] == len(logged)
    counted = counts["written"] + counts["lost"]
    assert len(answered) <= counted <= len(answered) + len(unsent), (counts, len(unsent))
    assert counts["lost"] > 0 and counts["dropped"] == counts["rejected"] == 0
    # And in the store, where `mlops-lab monitor` reports what its window misses.
    engine = create_engine(store["uri"])
    try:
        losses = read_until(
            lambda: logged_losses(engine, None, None),
            lambda found: found.get("lost", 0) >= counts["lost"],
            30,
            f"{counts['lost']} losses in the store",
        )
        assert losses == {"lost": counts["lost"]}
    finally:
        engine.dispose()


def chattr(flag: str, paths: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, text=True)


def test_sqlite_files_made_unwritable_under_load_kill_no_worker_and_the_log_resumes(
    serve, tmp_path
):
    # Root ignores file modes; only the immutable attribute stops it writing.
    if shutil.which("chattr") is None:
        skip_or_fail("chattr is missing: it makes the store unwritable, even to root")
    uri = f"sqlite:///{tmp_path / 'predictions.db'}"
    service = serve(uri)
    service.wait_ready()
    workers = worker_pids(service)
    with steady_load(service, "frozen") as load:
        poll_until(lambda: len(logged_ids(uri, "frozen-")) >= 200, 60, "200 records written")
        files = sorted(tmp_path.glob("predictions.db*"))
        made = chattr("+i", files)
        if made.returncode != 0:
            skip_or_fail(f"chattr +i is refused here: {made.stderr.strip()}")
        try:
            # Unwritable while 2,000 predictions are answered: the writers fail meanwhile.
            load.wait_for_calls(2000)
        finally:
            assert chattr("-i", files).returncode == 0
        load.wait_for_calls(500)
    assert not load.failures(), load.failures()[:5]
    assert worker_pids(service) == workers
    answered = answered_ids(load)
    counts = settled_outcomes(service.url, len(answered))
    assert sum(counts.values()) == len(answered), counts
    logged = logged_ids(uri, "frozen-")
    assert counts["written"] == len(logged) == len(set(logged))
    # Written again once the files could be: the last answers are in the store.
    assert set(answered[-100:]) <= set(logged)
    assert requests.get(f"{service.url}/ready", timeout=10).status_code == 200
