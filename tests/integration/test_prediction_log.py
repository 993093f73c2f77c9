"""The prediction log and /feedback on PostgreSQL and on SQLite, under load, a SIGTERM and an
outage."""

import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from calls import Callers, log_outcomes, post, settled_outcomes
from projects import challenge_payload
from services import ready_service
from sqlalchemy import create_engine, select
from stores import logged_ids, store_out_of_reach, wait_for_logged
from waiting import read_until

from mlops_lab.serving.prediction_store import FEEDBACK, PREDICTIONS

pytestmark = pytest.mark.integration

CHALLENGE = challenge_payload()


@pytest.fixture(scope="module")
def store(module_prediction_store) -> dict:
    return module_prediction_store


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


def logged_rows(store, prefix: str) -> dict[str, dict]:
    """The logged predictions whose listing id starts with `prefix`, by listing id; fails if
    any is logged twice."""
    ids = logged_ids(store["uri"], prefix)
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} records logged twice"
    engine = create_engine(store["uri"])
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(PREDICTIONS).where(PREDICTIONS.c.listing_id.like(f"{prefix}%"))
            ).mappings()
            return {row["listing_id"]: dict(row) for row in rows}
    finally:
        engine.dispose()


def test_2000_concurrent_predictions_are_each_in_the_log_once(shared_service, store):
    service = shared_service
    before = settled_outcomes(service.url, 0)

    def predict(number: int) -> int:
        return post(service, {**CHALLENGE, "id": f"load-{number}"}).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(predict, range(2000)))
    assert statuses == [200] * 2000
    answer = post(service, {**CHALLENGE, "id": "load-check"}).json()
    counts = settled_outcomes(service.url, sum(before.values()) + 2001)
    assert counts["written"] - before["written"] == 2001, (before, counts)
    rows = logged_rows(store, "load-")
    assert sorted(rows) == sorted([*(f"load-{n}" for n in range(2000)), "load-check"])
    record = rows["load-check"]
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


def test_a_sigterm_mid_burst_loses_no_answered_prediction(logging_service, store):
    service = logging_service()
    callers = Callers(
        lambda client, number: post(service, {**CHALLENGE, "id": f"term-{client}-{number}"}),
        clients=8,
    )
    with callers:
        callers.wait_for_calls(300)
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(timeout=60) == 0
    # Calls after the stop find no server; every call before it is answered.
    refused = [
        failure
        for failure in callers.failures()
        if not isinstance(failure, requests.ConnectionError)
    ]
    assert not refused, refused[:5]
    answered = [answer["id"] for answer in callers.answered()]
    assert len(answered) >= 300
    logged = logged_rows(store, "term-")
    missing = set(answered) - set(logged)
    assert not missing, f"{len(missing)} answered predictions not in the log"
    assert set(logged) == set(answered)


def test_with_the_store_out_of_reach_the_service_answers_counts_drops_and_resumes(
    logging_service, store, store_cluster
):
    service = logging_service()
    with store_out_of_reach(store, store_cluster):
        # More than both workers' buffers can hold: 20,000 records each, and one request
        # (1,000) in the writer's hands.
        for number in range(45):
            batch = [{**CHALLENGE, "id": f"down-{number}-{n}"} for n in range(1000)]
            assert post(service, batch).status_code == 200
        assert requests.get(f"{service.url}/ready", timeout=10).status_code == 200
        assert log_outcomes(service.url)["dropped"] >= 45_000 - 2 * (20_000 + 1_000)
    # What waited in the buffers is written once the store is back, each record once.
    counts = settled_outcomes(service.url, 45_000)
    assert counts["written"] + counts["dropped"] == 45_000, counts
    assert len(logged_rows(store, "down-")) == counts["written"]
    assert post(service, {**CHALLENGE, "id": "after-outage"}).status_code == 200
    assert wait_for_logged(store["uri"], "after-outage") == ["after-outage"]


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
    wait_for_logged(store["uri"], "truth-", 3)
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
    # A listing is known to /feedback once its prediction is written: until then, 404.
    assert post(service, {**CHALLENGE, "id": 77}).status_code == 200
    accepted = read_until(
        lambda: post(service, {"id": 77, "price": 500}, path="/feedback"),
        lambda answer: answer.status_code == 200,
        30,
        "feedback on listing 77 to be accepted",
    )
    assert accepted.json() == {"received": 1}
    [row] = feedback_rows(store, ["77"])
    assert (row["price"], row["price_category"]) == (500, "lux")


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
    assert set(log_outcomes(service.url).values()) == {0.0}
