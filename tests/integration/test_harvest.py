"""`mlops-lab harvest` on what a real service logged, on both stores users run, and data_prep
taking the result: labelled traffic becomes data, and no listing changes part."""

from pathlib import Path

import pandas as pd
import pytest
from calls import post
from projects import challenge_payload
from stores import wait_for_logged

from mlops_lab.common.tables import read_parquet
from mlops_lab.evaluation.prepared import split_like_notebook

pytestmark = pytest.mark.integration

CHALLENGE = challenge_payload()
NEW_LISTING = 10**15 + 7


def parts(prepared: pd.DataFrame) -> tuple[set[int], set[int]]:
    """The ids of the training and the test part of the notebook's split (the lab's settings)."""
    split = split_like_notebook(prepared, 0.15, 1)
    return set(split.train_features["id"]), set(split.test_features["id"])


def test_harvest_labels_what_got_feedback_and_data_prep_adds_it(
    trained_lab, service_factory, prediction_store, small_project, tmp_path
):
    remote = tmp_path / "dvc-remote"
    add_remote = ["dvc", "remote", "add", "--local", "--default", "team", str(remote)]
    assert small_project.run(add_remote).returncode == 0
    assert small_project.run(["mlops-lab", "data-prep"]).returncode == 0
    prepared_path = small_project.path / "data" / "prepared" / "listings.parquet"
    before = read_parquet(prepared_path)
    known = int(before["id"].iloc[0])
    model = str(Path(trained_lab.path) / "models" / "price_category")
    service = service_factory({"PREDICTION_LOG_URI": prediction_store["uri"], "MODEL_URI": model})
    service.wait_ready()
    for listing_id in (known, NEW_LISTING, NEW_LISTING + 1, "caller-ref"):
        assert post(service, {**CHALLENGE, "id": listing_id}).status_code == 200
    wait_for_logged(prediction_store["uri"], "", 4)
    for listing_id, price in ((known, 500.0), (NEW_LISTING, 20.0), (NEW_LISTING, 75.0)):
        sent = post(service, {"id": listing_id, "price": price}, path="/feedback")
        assert sent.status_code == 200, sent.text
    assert post(service, {"id": "caller-ref", "price": 99.0}, path="/feedback").status_code == 200

    harvest = ["mlops-lab", "harvest"]
    harvested = small_project.run(harvest, {"PREDICTION_LOG_URI": prediction_store["uri"]})
    assert harvested.returncode == 0, harvested.stderr
    assert "2 labelled listings" in harvested.stdout
    assert "id_not_a_listing_number 1, truth_replaced 1" in harvested.stdout
    # This version is DVC's to keep: tracked, and pushed to the default remote.
    tracked = small_project.path / "data" / "harvested" / "labelled_listings.parquet.dvc"
    assert "labelled_listings.parquet" in tracked.read_text()
    assert "pushed to DVC remote team" in harvested.stdout
    status = small_project.run(["dvc", "status", "--cloud", str(tracked)])
    assert "are in sync" in status.stdout and any(remote.rglob("*")), status.stdout
    table = read_parquet(small_project.path / "data" / "harvested" / "labelled_listings.parquet")
    assert dict(zip(table["id"], table["price_category"], strict=True)) == {
        known: "lux",
        NEW_LISTING: "low",
    }
    assert table.set_index("id").loc[NEW_LISTING, "borough"] == CHALLENGE["neighbourhood"]
    # The log has nothing the file lacks: the version DVC tracks stays as it is.
    tracked_before = tracked.read_text()
    again = small_project.run(harvest, {"PREDICTION_LOG_URI": prediction_store["uri"]})
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("nothing new:"), again.stdout
    assert tracked.read_text() == tracked_before

    assert small_project.run(["mlops-lab", "data-prep"]).returncode == 0
    after = read_parquet(prepared_path).set_index("id")
    assert after.loc[known, ["price_category", "source"]].tolist() == [
        "lux",
        "raw_price_from_feedback",
    ]
    assert after.loc[NEW_LISTING, ["price", "source"]].tolist() == [75.0, "feedback"]
    assert len(after) == len(before) + 1
    # Every listing of the raw file is in the part it was in before the harvest.
    train_before, test_before = parts(before)
    train_after, test_after = parts(after.reset_index())
    assert train_after - {NEW_LISTING} == train_before and test_after - {NEW_LISTING} == test_before


def test_harvest_with_no_log_says_so_and_writes_nothing(small_project):
    result = small_project.run(["mlops-lab", "harvest"])
    assert result.returncode == 1
    assert "no prediction log at sqlite:///" in result.stderr and "Traceback" not in result.stderr
    assert not (small_project.path / "data" / "harvested" / "labelled_listings.parquet").exists()
    assert not (small_project.path / "mlruns" / "predictions.db").exists()
