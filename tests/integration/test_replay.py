"""`mlops-lab replay` against the service: every listing sent is in the log, with
its true price as feedback, and a shifted sample is what it says."""

import time

import pandas as pd
import pytest
import yaml
from services import FEEDBACK_TOKEN
from sqlalchemy import create_engine, select

from mlops_lab.kernel.prediction_store import FEEDBACK, PREDICTIONS
from mlops_lab.kernel.prepared import split_like_notebook

pytestmark = pytest.mark.integration


def table(store, which) -> pd.DataFrame:
    engine = create_engine(f"sqlite:///{store}")
    try:
        with engine.connect() as connection:
            return pd.DataFrame(connection.execute(select(which)).mappings().all())
    finally:
        engine.dispose()


@pytest.fixture()
def replay_service(trained_lab, service_factory, tmp_path):
    store = tmp_path / "predictions.db"
    service = service_factory(
        {
            "MODEL_URI": str(trained_lab.path / "models" / "price_category"),
            "PREDICTION_LOG_URI": f"sqlite:///{store}",
        }
    )
    service.wait_ready()
    return service, store


def test_replaying_the_test_part_logs_each_listing_with_its_true_price(trained_lab, replay_service):
    service, store = replay_service
    result = trained_lab.run(
        ["mlops-lab", "replay", "--url", service.url, "--limit", "300", "--feedback"],
        {"FEEDBACK_TOKEN": FEEDBACK_TOKEN},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replayed 300 listings" in result.stdout
    assert "300 true prices posted as feedback" in result.stdout

    predictions, feedback = table(store, PREDICTIONS), table(store, FEEDBACK)
    assert len(predictions) == 300 and len(feedback) == 300
    config = yaml.safe_load((trained_lab.path / "config.yaml").read_text())
    prepared = pd.read_parquet(trained_lab.path / "data" / "prepared" / "listings.parquet")
    split = split_like_notebook(
        prepared, config["training"]["test_size"], config["training"]["split_random_state"]
    )
    test_ids = {str(listing_id) for listing_id in split.test_features["id"]}
    assert set(predictions["listing_id"]) <= test_ids
    # The service turned each true price into the category data_prep gave it.
    truth = prepared.assign(listing_id=prepared["id"].astype(str)).set_index("listing_id")
    assert (
        feedback.set_index("listing_id")["price_category"]
        == truth.loc[feedback["listing_id"], "price_category"]
    ).all()


def test_a_shifted_replay_sends_only_the_listings_it_names(trained_lab, replay_service):
    service, store = replay_service
    result = trained_lab.run(
        [
            *("mlops-lab", "replay", "--url", service.url, "--part", "all", "--limit", "40"),
            *("--where", "neighbourhood=Manhattan", "--where", "room_type=Entire home/apt"),
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Each worker writes its answers within a second of giving them.
    deadline = time.monotonic() + 20
    while len(logged := table(store, PREDICTIONS)) < 40 and time.monotonic() < deadline:
        time.sleep(0.2)
    listings = pd.DataFrame(logged["listing"].tolist())
    assert len(listings) == 40
    assert set(listings["borough"]) == {"Manhattan"}
    assert set(listings["room_type"]) == {"Entire home/apt"}


def test_replay_problems_are_one_line_and_exit_1(trained_lab):
    unreachable = trained_lab.run(["mlops-lab", "replay", "--url", "http://127.0.0.1:9"])
    assert unreachable.returncode == 1
    assert (
        "error: cannot reach the service at http://127.0.0.1:9/predict: Connection refused\n"
        in unreachable.stderr
    )
    # One line, not requests' chain of urllib3 objects.
    assert "urllib3" not in unreachable.stderr and "object at 0x" not in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
    unknown = trained_lab.run(["mlops-lab", "replay", "--where", "colour=red"])
    assert unknown.returncode == 1 and "'colour' is not a listing field" in unknown.stderr
