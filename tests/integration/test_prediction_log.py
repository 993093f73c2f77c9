"""The prediction log and /feedback on a real PostgreSQL, under load, a SIGTERM and an outage."""

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from projects import challenge_payload
from prometheus_client.parser import text_string_to_metric_families
from services import PostgresCluster, ready_service
from sqlalchemy import create_engine, select

from mlops_lab.kernel.prediction_store import FEEDBACK, PREDICTIONS, create_tables

pytestmark = pytest.mark.integration

CHALLENGE = challenge_payload()


def post(service, body, path="/predict"):
    return requests.post(
        f"{service.url}{path}",
        data=json.dumps(body),
        headers={"Content-Type": "application/json", **service.feedback_headers},
        timeout=30,
    )


@pytest.fixture(scope="module")
def store():
    """A PostgreSQL with the prediction log's own database and role, as the stack has."""
    cluster = PostgresCluster()
    try:
        yield {"cluster": cluster, "uri": cluster.database("predictions", "predictions")}
    finally:
        cluster.remove()


@pytest.fixture(scope="module")
def shared_service(trained_lab, store, tmp_path_factory):
    """One service logging to the store, for the tests that need not stop it."""
    with ready_service(
        {
            "MODEL_URI": str(trained_lab.path / "models" / "price_category"),
            "PREDICTION_LOG_URI": store["uri"],
        },
        tmp_path_factory.mktemp("logging-service") / "service.log",
    ) as service:
        yield service


@pytest.fixture()
def logging_service(trained_lab, service_factory, store):
    def start(**environment):
        service = service_factory(
            {
                "MODEL_URI": str(trained_lab.path / "models" / "price_category"),
                "PREDICTION_LOG_URI": store["uri"],
                **environment,
            }
        )
        service.wait_ready()
        return service

    return start


def logged(store, prefix: str) -> dict[str, dict]:
    """The logged predictions whose listing id starts with `prefix`, by listing id."""
    engine = create_engine(store["uri"])
    try:
        create_tables(engine)
        with engine.connect() as connection:
            rows = connection.execute(
                select(PREDICTIONS).where(PREDICTIONS.c.listing_id.like(f"{prefix}%"))
            ).mappings()
            return {row["listing_id"]: dict(row) for row in rows}
    finally:
        engine.dispose()


def wait_for_logged(store, prefix: str, count: int, seconds: float = 20) -> dict[str, dict]:
    deadline = time.monotonic() + seconds
    while True:
        found = logged(store, prefix)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def log_records(service) -> dict[str, float]:
    """prediction_log_records_total by outcome, from /metrics."""
    text = requests.get(f"{service.url}/metrics", timeout=10).text
    counts = {"written": 0.0, "rejected": 0.0, "dropped": 0.0, "lost": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "prediction_log_records_total":
                counts[sample.labels["outcome"]] += sample.value
    return counts


def test_2000_concurrent_predictions_are_all_in_the_log(shared_service, store):
    service = shared_service

    def predict(number: int) -> int:
        return post(service, {**CHALLENGE, "id": f"load-{number}"}).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(predict, range(2000)))
    assert statuses == [200] * 2000
    found = wait_for_logged(store, "load-", 2000)
    assert len(found) == 2000
    answer = post(service, {**CHALLENGE, "id": "load-check"}).json()
    record = wait_for_logged(store, "load-check", 1)["load-check"]
    assert record["price_category"] == answer["price_category"]
    assert record["probabilities"] == answer["probabilities"]
    assert (record["model_name"], record["model_version"]) == (
        answer["model_name"],
        answer["model_version"],
    )
    # The listing as the model took it: `neighbourhood` arrives as `borough`.
    assert record["listing"]["borough"] == CHALLENGE["neighbourhood"]
    assert record["listing"]["accommodates"] == CHALLENGE["accommodates"]
    assert record["latency_ms"] > 0 and record["request_id"]
    assert log_records(service)["written"] >= 2001


def test_a_sigterm_mid_burst_loses_no_answered_prediction(logging_service, store):
    service = logging_service()
    answered: list[str] = []
    stop = threading.Event()

    def caller(worker: int) -> None:
        number = 0
        while not stop.is_set():
            listing_id = f"term-{worker}-{number}"
            number += 1
            try:
                if post(service, {**CHALLENGE, "id": listing_id}).status_code == 200:
                    answered.append(listing_id)
            except requests.RequestException:
                return

    callers = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for thread in callers:
        thread.start()
    time.sleep(1.5)
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=60) == 0
    stop.set()
    for thread in callers:
        thread.join(timeout=30)
    assert len(answered) > 100
    missing = set(answered) - set(logged(store, "term-"))
    assert not missing, f"{len(missing)} answered predictions not in the log"


def test_with_the_database_down_the_service_answers_counts_drops_and_resumes(
    logging_service, store
):
    service = logging_service()
    cluster: PostgresCluster = store["cluster"]
    cluster.stop()
    try:
        # More than both workers' buffers can hold: 20,000 records each, and one request
        # (1,000) in the writer's hands.
        for number in range(45):
            batch = [{**CHALLENGE, "id": f"down-{number}-{n}"} for n in range(1000)]
            assert post(service, batch).status_code == 200
        assert requests.get(f"{service.url}/ready", timeout=10).status_code == 200
        assert log_records(service)["dropped"] >= 45_000 - 2 * (20_000 + 1_000)
    finally:
        cluster.start()
    # What waited in the buffers is written once the database is back, and no record is
    # counted twice.
    deadline = time.monotonic() + 60
    counts = log_records(service)
    while counts["written"] + counts["dropped"] < 45_000 and time.monotonic() < deadline:
        time.sleep(0.5)
        counts = log_records(service)
    assert counts["written"] + counts["dropped"] == 45_000
    assert len(logged(store, "down-")) == counts["written"]
    assert post(service, {**CHALLENGE, "id": "after-outage"}).status_code == 200
    assert "after-outage" in wait_for_logged(store, "after-outage", 1)


def feedback_rows(store, listing_ids: list[str]) -> list[dict]:
    engine = create_engine(store["uri"])
    try:
        with engine.connect() as connection:
            query = select(FEEDBACK).where(FEEDBACK.c.listing_id.in_(listing_ids))
            return [dict(row) for row in connection.execute(query).mappings()]
    finally:
        engine.dispose()


def test_feedback_joins_the_log_by_listing_id(shared_service, store):
    service = shared_service
    batch = [{**CHALLENGE, "id": f"truth-{n}"} for n in range(3)]
    assert post(service, batch).status_code == 200
    wait_for_logged(store, "truth-", 3)
    response = post(
        service,
        [
            {"id": "truth-0", "price": 75},
            {"id": "truth-1", "price": 90.01},
            {"id": "truth-2", "price_category": "lux"},
        ],
        path="/feedback",
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 3}
    rows = {
        row["listing_id"]: row for row in feedback_rows(store, ["truth-0", "truth-1", "truth-2"])
    }
    assert {key: row["price_category"] for key, row in rows.items()} == {
        "truth-0": "low",
        "truth-1": "mid",
        "truth-2": "lux",
    }
    assert rows["truth-0"]["price"] == 75 and rows["truth-2"]["price"] is None
    # One record alone, right after its prediction: this worker writes its buffer first.
    assert post(service, {**CHALLENGE, "id": 77}).status_code == 200
    for _ in range(20):
        response = post(service, {"id": 77, "price": 500}, path="/feedback")
        if response.status_code == 200:
            break
        time.sleep(0.1)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "status", "field", "problem"),
    [
        ([{"id": "never-priced", "price": 100}], 404, "[0].id", "no logged prediction"),
        ({"id": "truth-0", "price": "100"}, 422, "price", "number"),
        ({"id": "truth-0"}, 422, "body", "either price or price_category"),
        ({"id": "truth-0", "price": 100, "price_category": "low"}, 422, "body", "not both"),
        ({"id": "truth-0", "price_category": "cheap"}, 422, "price_category", "not one of"),
        ({"id": "truth-0", "price": 5}, 422, "price", "no category"),
        ({"id": "truth-0", "price": 100, "note": "x"}, 422, "note", "Extra inputs"),
        ({"price": 100}, 422, "id", "Field required"),
        ([{"id": "truth-0", "price": 100}] * 1001, 413, "body", "1001 feedback records"),
        ([], 422, "body", "empty"),
    ],
)
def test_bad_feedback_is_a_4xx_naming_the_field(shared_service, body, status, field, problem):
    response = post(shared_service, body, path="/feedback")
    assert response.status_code == status, response.text
    details = response.json()["details"]
    assert any(d["field"] == field and problem in d["problem"] for d in details), details


def test_feedback_with_the_log_off_is_a_503_that_says_so(trained_lab, service_factory):
    service = service_factory(
        {"MODEL_URI": str(trained_lab.path / "models" / "price_category"), "PREDICTION_LOG": "off"}
    )
    service.wait_ready()
    assert post(service, CHALLENGE).status_code == 200
    response = post(service, {"id": 1, "price": 100}, path="/feedback")
    assert response.status_code == 503
    assert "prediction log is off" in response.json()["error"]
    assert set(log_records(service).values()) == {0.0}
