"""`mlops-lab replay` against the service, logging to each store users run (SQLite and
PostgreSQL): every listing sent is in the log once, with its true price as feedback, and a
shifted sample is what it says."""

import pandas as pd
import pytest
import yaml
from services import FEEDBACK_TOKEN
from sqlalchemy import select
from stores import logged_ids
from waiting import poll_until

from mlops_lab.common.tables import read_parquet
from mlops_lab.evaluation.prepared import split_like_notebook
from mlops_lab.serving.prediction_store import FEEDBACK, PREDICTIONS

pytestmark = pytest.mark.integration


@pytest.fixture()
def replay_service(trained_lab, service_factory, prediction_store):
    """The service logging to an empty store of each kind; the service and the store's URI."""
    service = service_factory(
        {
            "MODEL_URI": str(trained_lab.path / "models" / "price_category"),
            "PREDICTION_LOG_URI": prediction_store["uri"],
        }
    )
    service.wait_ready()
    return service, prediction_store["uri"]


def test_replaying_the_test_part_logs_each_listing_once_with_its_true_price(
    trained_lab, replay_service
):
    service, uri = replay_service
    result = trained_lab.run(
        ["mlops-lab", "replay", "--url", service.url, "--limit", "300", "--feedback"],
        {"FEEDBACK_TOKEN": FEEDBACK_TOKEN},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replayed 300 listings" in result.stdout
    assert "300 true prices posted as feedback" in result.stdout

    # Feedback is taken for logged predictions only: all 300 are in the log by now.
    ids = logged_ids(uri)
    feedback = pd.read_sql(select(FEEDBACK), uri)
    assert len(ids) == len(set(ids)) == 300
    assert len(feedback) == feedback["listing_id"].nunique() == 300
    assert set(feedback["listing_id"]) == set(ids)
    config = yaml.safe_load((trained_lab.path / "config.yaml").read_text())
    prepared = read_parquet(trained_lab.path / "data" / "prepared" / "listings.parquet")
    split = split_like_notebook(
        prepared, config["training"]["test_size"], config["training"]["split_random_state"]
    )
    test_ids = {str(listing_id) for listing_id in split.test_features["id"]}
    assert set(ids) <= test_ids
    # The service turned each true price into the category data_prep gave it.
    truth = prepared.assign(listing_id=prepared["id"].astype(str)).set_index("listing_id")
    assert (
        feedback.set_index("listing_id")["price_category"]
        == truth.loc[feedback["listing_id"], "price_category"]
    ).all()


def test_a_shifted_replay_logs_only_listings_of_the_borough_and_room_type_it_names(
    trained_lab, replay_service
):
    service, uri = replay_service
    result = trained_lab.run(
        [
            *("mlops-lab", "replay", "--url", service.url, "--part", "all", "--limit", "40"),
            # neighbourhood is the notebook's name for borough.
            *("--where", "neighbourhood=Manhattan", "--where", "room_type=Entire home/apt"),
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replayed 40 listings" in result.stdout
    # Each worker writes its answers within a second of giving them.
    poll_until(lambda: len(logged_ids(uri)) >= 40, 20, "the 40 replayed answers logged")
    logged = pd.read_sql(select(PREDICTIONS), uri)
    assert len(logged) == logged["listing_id"].nunique() == 40
    listings = pd.DataFrame(logged["listing"].tolist())
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
